"""Repository functions: every function receives a `Session` and never commits.

The caller (a CLI command, a web request, a test) owns the transaction. Functions that write
several rows validate everything first and then write inside a SAVEPOINT, so a failure leaves the
database as it was even if the caller goes on to commit other work.

Banks are owned (`ItemBank`): every function on skills, items, parameters and responses works
inside one bank, named by ``bank_id``. ``bank_id=None`` means the database's only bank (a
convenience for single-bank tools and tests; with several banks it is an error naming the fix).
The web layer always passes the bank it has checked the caller's organisation may use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, Text, bindparam, cast, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from irt import POLYTOMOUS_MODELS, Bank, ItemParams, SparseResponses
from irt.io import FormatError, ItemTable
from item_bank import media as media_store
from item_bank.content import (
    SKILL_ID,
    BankDocument,
    ItemContent,
    ItemWarning,
    MediaFile,
    MediaRef,
    Option,
    ParameterRecord,
    SkillInfo,
    content_warnings,
    records_from_table,
    with_symmetric_enemies,
)
from item_bank.forensics_models import check_security
from item_bank.models import (
    ITEM_STATUSES,
    ROLES,
    SESSION_STATUSES,
    Assessment,
    Base,
    CalibrationRun,
    Candidate,
    CandidateSession,
    Invitation,
    Item,
    ItemBank,
    ItemEnemy,
    ItemMedia,
    ItemParameterVersion,
    Organisation,
    OverallResult,
    Response,
    ResponsePoolingConsent,
    Skill,
    SkillResult,
    StaffUser,
    as_utc,
    utcnow,
)
from item_bank.scoring import is_polytomous
from item_bank.security import hash_password, hash_token, new_token, verify_password

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
#: Unicode ``Bidi_Control`` characters (UAX #9: ALM, LRM, RLM, the embeddings, overrides and
#: isolates). In a name they reorder the text shown around it ("Trojan Source", CVE-2021-42574):
#: a candidate called ``evil\u202egpj.exe`` is listed as ``evilexe.jpg``.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
NAME_MAX = 200
#: Length of ``responses.raw_answer``.
RAW_ANSWER_MAX = 200


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    source: str
    skills_created: int = 0
    items_created: int = 0
    items_updated: int = 0
    parameter_versions: int = 0
    calibration_run_id: int | None = None
    #: Writing-quality warnings of the imported items (`item_bank.content.item_warnings`):
    #: the import went ahead; an author should look at each one.
    warnings: tuple[ItemWarning, ...] = ()
    #: Items of the file that were not imported (file, identifier, reason), e.g. QTI
    #: interactions Proficio does not deliver.
    skipped: tuple[str, ...] = ()
    #: Skills the import created because items named them (slugs).
    skills_implied: tuple[str, ...] = ()
    media_files: int = 0


@dataclass(frozen=True)
class ItemMeta:
    """Per-item metadata the engine needs besides the parameters (plain values)."""

    external_id: str
    skill: str
    status: str
    tags: tuple[str, ...]
    enemies: tuple[str, ...]
    difficulty: int | None
    parameter_version_id: int
    provisional: bool


@dataclass(frozen=True, eq=False)
class LoadedBank:
    """The current parameters as an `irt.Bank` plus per-item metadata in the same order.

    ``enemy_groups`` lists sets of items of which at most one may be administered in a test.
    """

    bank: Bank
    items: tuple[ItemMeta, ...]
    enemy_groups: tuple[tuple[str, ...], ...]

    @property
    def provisional(self) -> bool:
        """True when any loaded item still carries provisional parameters."""
        return any(m.provisional for m in self.items)

    def meta(self, external_id: str) -> ItemMeta:
        return self.items[self.bank.index(external_id)]


@dataclass(frozen=True, eq=False)
class ExposureCounts:
    """Administrations per item (responses recorded) and the number of sessions started."""

    item_ids: tuple[str, ...]
    counts: NDArray[np.int64]
    n_sessions: int

    @property
    def rates(self) -> NDArray[np.float64]:
        """Exposure rate per item: administrations / sessions (0 when no session started)."""
        return self.counts / self.n_sessions if self.n_sessions else np.zeros(len(self.counts))


@dataclass(frozen=True, eq=False)
class ResponseExport:
    """The response log in long format, with the extras the CSV carries."""

    person_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    data: SparseResponses
    skills: tuple[str, ...]
    session_ids: tuple[int, ...]
    answered_at: tuple[dt.datetime, ...]
    n_dropped_repeats: int = 0


@dataclass(frozen=True)
class CalibrationRunSpec:
    """What a calibration run records besides the parameters."""

    model: str
    method: str = "mml-em"
    settings: Mapping[str, Any] = field(default_factory=dict)
    response_filter: Mapping[str, Any] = field(default_factory=dict)
    n_persons: int | None = None
    n_responses: int | None = None
    log_likelihood: float | None = None
    converged: bool | None = None
    n_iterations: int | None = None
    provisional: bool = False
    notes: str = ""
    published_by_id: int | None = None


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation; ``token`` exists only here (the database keeps its hash)."""

    invitation_id: int
    candidate_public_id: str
    token: str
    expires_at: dt.datetime


# -- banks -------------------------------------------------------------------------------------


def create_bank(session: Session, organisation: Organisation, slug: str, name: str, *,
                library: bool = False, copied_from: ItemBank | None = None) -> ItemBank:
    """A new, empty bank owned by ``organisation`` (slug unique within it)."""
    if not SLUG.match(slug or ""):
        raise ValueError(f"field 'slug': expected lower-case letters, digits and '-', got "
                         f"{slug!r}")
    taken = session.scalar(select(ItemBank.id).where(ItemBank.organisation_id == organisation.id,
                                                     ItemBank.slug == slug))
    if taken is not None:
        raise ValueError(f"field 'slug': the organisation already has a bank {slug!r}")
    bank = ItemBank(organisation_id=organisation.id, slug=slug, name=check_name(name),
                    library=library, library_since=utcnow() if library else None,
                    copied_from_id=copied_from.id if copied_from else None)
    session.add(bank)
    session.flush()
    return bank


def sole_bank(session: Session) -> ItemBank:
    """The database's only bank; `ValueError` naming the fix when there are none or several."""
    rows = list(session.scalars(select(ItemBank).order_by(ItemBank.id).limit(2)))
    if not rows:
        raise ValueError("there is no item bank yet; create one with `proficio bank create "
                         "--org SLUG` (or import with --org SLUG)")
    if len(rows) > 1:
        raise ValueError("there are several item banks; name one (--org SLUG [--bank SLUG])")
    return rows[0]


def resolve_bank_id(session: Session, bank_id: int | None) -> int:
    return sole_bank(session).id if bank_id is None else bank_id


def get_bank(session: Session, bank_id: int) -> ItemBank:
    """The bank ``bank_id`` that a row refers to (banks are never deleted); `LookupError` if
    the database has no such bank."""
    bank = session.get(ItemBank, bank_id)
    if bank is None:
        raise LookupError(f"no item bank with id {bank_id}")
    return bank


def own_banks(session: Session, organisation_id: int) -> list[ItemBank]:
    """The banks ``organisation_id`` owns, oldest first."""
    return list(session.scalars(select(ItemBank).where(ItemBank.organisation_id
                                                        == organisation_id)
                                .order_by(ItemBank.id)))


def usable_banks(session: Session, organisation_id: int) -> list[ItemBank]:
    """The banks an organisation may read and build assessments on: its own and every library."""
    return list(session.scalars(select(ItemBank).where(
        (ItemBank.organisation_id == organisation_id) | ItemBank.library.is_(True))
        .order_by(ItemBank.id)))


def find_bank(session: Session, organisation: Organisation | None, bank_slug: str | None = None
              ) -> ItemBank:
    """A bank by owner and slug (the owner's only bank when ``bank_slug`` is None); with no
    organisation, the database's only bank. `ValueError` naming the fix otherwise."""
    if organisation is None:
        if bank_slug is not None:
            raise ValueError("name the organisation of the bank (--org SLUG)")
        return sole_bank(session)
    banks = own_banks(session, organisation.id)
    if bank_slug is not None:
        found = [b for b in banks if b.slug == bank_slug]
        if not found:
            raise ValueError(f"organisation {organisation.slug!r} has no bank {bank_slug!r} "
                             f"(its banks: {[b.slug for b in banks]})")
        return found[0]
    if len(banks) != 1:
        raise ValueError(f"organisation {organisation.slug!r} has {len(banks) or 'no'} banks; "
                         + ("name one with --bank SLUG" if banks else
                            "create one with `proficio bank create`"))
    return banks[0]


def set_library(session: Session, bank: ItemBank, library: bool) -> None:
    """Publish ``bank`` as a read-only library for other organisations (or withdraw it).

    A bank that other organisations' assessments draw from cannot be withdrawn."""
    if not library and bank.library:
        users = session.scalar(select(func.count(Assessment.id)).where(
            Assessment.bank_id == bank.id, Assessment.organisation_id != bank.organisation_id))
        if users:
            raise ValueError(f"{users} assessment(s) of other organisations use this library; "
                             "it cannot be withdrawn")
    if library and not bank.library:
        bank.library_since = utcnow()
    bank.library = library
    session.flush()


def copy_bank(session: Session, source: ItemBank, organisation: Organisation, slug: str,
              name: str) -> ItemBank:
    """A new bank of ``organisation`` holding a copy of ``source``'s skills, items, enemies and
    current parameters (recorded as one ``copy`` calibration run). Responses stay with the
    original items; the copy is calibrated from the responses to its own items."""
    if source.organisation_id != organisation.id and not source.library:
        raise ValueError("only a library or a bank of your own can be copied")
    target = create_bank(session, organisation, slug, name, copied_from=source)
    doc = export_document(session, bank_id=source.id, name=name)
    spec = None
    if doc.parameters:
        spec = CalibrationRunSpec(model=_common_model(doc.parameters), method="copy",
                                  settings={"copied_from_bank": source.id},
                                  provisional=all(r.provisional for r in doc.parameters),
                                  notes=f"copied from bank {source.id} ({source.name})")
    import_document(session, dataclasses.replace(doc, source=f"bank {source.id}"),
                    run_spec=spec, bank_id=target.id)
    return target


def active_consent(session: Session, organisation_id: int, bank_id: int
                   ) -> ResponsePoolingConsent | None:
    return session.scalar(select(ResponsePoolingConsent).where(
        ResponsePoolingConsent.organisation_id == organisation_id,
        ResponsePoolingConsent.bank_id == bank_id, ResponsePoolingConsent.revoked_at.is_(None)))


def grant_pooling_consent(session: Session, organisation_id: int, bank: ItemBank,
                          granted_by: StaffUser | None = None) -> ResponsePoolingConsent:
    """Record that ``organisation_id`` consents to its responses to ``bank``'s items being
    pooled into ``bank``'s calibrations (idempotent: an active consent is returned as is)."""
    if bank.organisation_id == organisation_id:
        raise ValueError("an organisation's own responses always calibrate its own banks")
    if not bank.library:
        raise ValueError("consent is given to a library bank")
    current = active_consent(session, organisation_id, bank.id)
    if current is not None:
        return current
    row = ResponsePoolingConsent(organisation_id=organisation_id, bank_id=bank.id,
                                 granted_by_id=granted_by.id if granted_by else None)
    session.add(row)
    session.flush()
    return row


def revoke_pooling_consent(session: Session, organisation_id: int, bank_id: int,
                           revoked_by: StaffUser | None = None) -> bool:
    """Withdraw the consent (kept, with who and when); False when none was active."""
    current = active_consent(session, organisation_id, bank_id)
    if current is None:
        return False
    current.revoked_at = utcnow()
    current.revoked_by_id = revoked_by.id if revoked_by else None
    session.flush()
    return True


def pooled_organisations(session: Session, bank: ItemBank) -> list[int]:
    """Organisations whose responses calibrate ``bank``: its owner and every organisation with
    an active consent, owner first."""
    consenting = session.scalars(select(ResponsePoolingConsent.organisation_id).where(
        ResponsePoolingConsent.bank_id == bank.id, ResponsePoolingConsent.revoked_at.is_(None))
        .order_by(ResponsePoolingConsent.organisation_id))
    return [bank.organisation_id, *(o for o in consenting if o != bank.organisation_id)]


# -- skills and items --------------------------------------------------------------------------


def skills_by_slug(session: Session, bank_id: int | None = None) -> dict[str, Skill]:
    bid = resolve_bank_id(session, bank_id)
    return {s.slug: s for s in session.scalars(select(Skill).where(Skill.bank_id == bid))}


def ensure_skills(session: Session, skills: Iterable[SkillInfo], bank_id: int | None = None
                  ) -> int:
    """Create missing skills and update names/descriptions of existing ones; returns created."""
    bid = resolve_bank_id(session, bank_id)
    existing = skills_by_slug(session, bid)
    created = 0
    for info in skills:
        row = existing.get(info.slug)
        if row is None:
            row = Skill(bank_id=bid, slug=info.slug, name=info.name,
                        description=info.description)
            session.add(row)
            existing[info.slug] = row
            created += 1
        else:
            row.name, row.description = info.name, info.description or row.description
    session.flush()
    return created


def create_skill(session: Session, bank_id: int, slug: str, name: str,
                 description: str = "") -> bool:
    """Create the skill ``slug`` in the bank (True), or update its name and description
    (False). `ValueError` naming the field for a bad slug or name."""
    if not SKILL_ID.match(slug or ""):
        raise ValueError(f"field 'slug': must be a skill id like 'server_side' (lower-case "
                         f"letters, digits, '_'), got {slug!r}")
    name = check_name(name)
    if not name:
        raise ValueError("field 'name': must not be empty")
    return ensure_skills(session, [SkillInfo(slug, name, description)], bank_id) == 1


def skill_counts(session: Session, bank_id: int) -> list[tuple[str, str, int]]:
    """``(slug, name, number of items)`` of every skill of the bank, by slug."""
    return [(s, n, int(c)) for s, n, c in session.execute(
        select(Skill.slug, Skill.name, func.count(Item.id))
        .outerjoin(Item, Item.skill_id == Skill.id).where(Skill.bank_id == bank_id)
        .group_by(Skill.id, Skill.slug, Skill.name).order_by(Skill.slug))]


def _existing_ids(session: Session, external_ids: Iterable[str], bank_id: int
                  ) -> dict[str, Item]:
    ids = list(external_ids)
    out: dict[str, Item] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        out.update({it.external_id: it for it in
                    session.scalars(select(Item).where(Item.bank_id == bank_id,
                                                       Item.external_id.in_(chunk)))})
    return out


def validate_document(session: Session, doc: BankDocument, replace: bool = False,
                      bank_id: int | None = None) -> None:
    """Check ``doc`` against the bank (skills, existing ids, enemies, parameters).

    Raises `FormatError` naming the file, the item and the field; writes nothing.
    """
    bank_id = resolve_bank_id(session, bank_id)
    known_skills = (set(skills_by_slug(session, bank_id)) | {s.slug for s in doc.skills}
                    | set(doc.implied_skills))
    existing = _existing_ids(session, [it.external_id for it in doc.items], bank_id)
    in_doc = {it.external_id for it in doc.items}
    for it in doc.items:
        if it.skill not in known_skills:
            raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'skill': unknown "
                              f"skill {it.skill!r} (known: {sorted(known_skills)})")
        if it.external_id in existing and not replace:
            raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'id': the bank "
                              f"already has this external id (use replace to update it, or "
                              f"import a QTI package with a prefix (--prefix) to add it as a "
                              f"new item)")
    enemy_ids = {e for it in doc.items for e in it.enemies} - in_doc
    found = set(_existing_ids(session, enemy_ids, bank_id))
    for it in doc.items:
        for e in it.enemies:
            if e not in in_doc and e not in found:
                raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'enemies': "
                                  f"unknown item {e!r}")
    param_ids = [r.params.item_id for r in doc.parameters]
    seen: set[str] = set()
    for i in param_ids:
        if i in seen:
            raise FormatError(f"{doc.source}: item {i!r}: field 'item_id': parameters given "
                              f"twice")
        seen.add(i)
    skill_of = {it.external_id: it.skill for it in doc.items}
    doc_items = {it.external_id: it for it in doc.items}
    missing = [i for i in param_ids if i not in skill_of]
    db_items = _existing_ids(session, missing, bank_id)
    for rec in doc.parameters:
        iid = rec.params.item_id
        if iid in skill_of:
            skill = skill_of[iid]
        elif iid in db_items:
            skill = db_items[iid].skill.slug
        else:
            raise FormatError(f"{doc.source}: item {iid!r}: field 'item_id': no such item in the "
                              f"file or the bank")
        if rec.params.skill not in ("default", skill):
            raise FormatError(f"{doc.source}: item {iid!r}: field 'skill': parameters say "
                              f"{rec.params.skill!r} but the item belongs to {skill!r}")
        content = doc_items.get(iid)
        if content is not None:
            expected = len(content.correct) + 1 if content.polytomous else 2
        elif iid in db_items:
            row = db_items[iid]
            expected = (len(row.correct) + 1 if is_polytomous(
                row.response_type, row.scoring, len(row.correct or ())) else 2)
        else:  # pragma: no cover - refused above
            expected = 2
        if rec.params.n_categories != expected:
            kind = ("a dichotomous model" if expected == 2
                    else f"a polytomous model with {expected - 1} thresholds")
            raise FormatError(f"{doc.source}: item {iid!r}: field 'model': the item is scored "
                              f"in {expected} categories and needs {kind}, got "
                              f"{rec.params.model!r} with {rec.params.n_categories} categories")


def import_document(session: Session, doc: BankDocument, *, replace: bool = False,
                    run_spec: CalibrationRunSpec | None = None,
                    bank_id: int | None = None) -> ImportReport:
    """Validate then write ``doc``: skills, items, enemy pairs, and parameters (one run).

    Parameters
    ----------
    session : the caller's session (not committed here).
    doc : a validated `BankDocument` (see `item_bank.transfer.read_bank_file`).
    replace : update items whose external id is already in the bank (their parameter history
        is kept); without it such an item is an error.
    bank_id : the bank to import into (None: the database's only bank).
    run_spec : how to record the calibration run of ``doc.parameters`` (default: an
        ``import`` run naming the file).

    Returns
    -------
    ImportReport : counts of skills/items created and updated, parameter versions written.

    Raises
    ------
    FormatError : naming the file, the item and the field; the database is left unchanged
        (checks run before any write and the writes run in a SAVEPOINT).
    """
    bank_id = resolve_bank_id(session, bank_id)
    validate_document(session, doc, replace, bank_id)
    files = _checked_media(doc)
    with session.begin_nested():
        created_skills = ensure_skills(session, doc.skills, bank_id)
        have = skills_by_slug(session, bank_id)
        implied = [s for s in doc.implied_skills if s not in have]
        created_skills += ensure_skills(
            session, [SkillInfo(s, s.replace("_", " ").capitalize()) for s in implied], bank_id)
        skills = skills_by_slug(session, bank_id)
        existing = _existing_ids(session, [it.external_id for it in doc.items], bank_id)
        created = updated = 0
        for it in doc.items:
            row = existing.get(it.external_id)
            values = _item_values(it, skills[it.skill].id)
            if row is None:
                row = Item(bank_id=bank_id, external_id=it.external_id, source=doc.source,
                           **values)
                session.add(row)
                existing[it.external_id] = row
                created += 1
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                updated += 1
        session.flush()
        _write_enemies(session, doc.items, bank_id)
        for it in doc.items:
            row = existing[it.external_id]
            keep = {m.name for m in it.media}
            for old in media_store.item_media(session, row.id):
                if old.name not in keep:
                    session.delete(old)
            for m in it.media:
                media_store.store(session, row, m.name, m.alt, files[(it.external_id, m.name)])
        run_id, n_versions = None, 0
        if doc.parameters:
            spec = run_spec or CalibrationRunSpec(
                model=_common_model(doc.parameters), method="import",
                settings={"source": doc.source},
                provisional=all(r.provisional for r in doc.parameters),
                notes=f"imported from {doc.source}")
            run_id = publish_parameters(session, doc.parameters, spec, bank_id=bank_id)
            n_versions = len(doc.parameters)
    log.info("imported %s: %d items created, %d updated, %d parameter versions", doc.source,
             created, updated, n_versions)
    return ImportReport(doc.source, created_skills, created, updated, n_versions, run_id,
                        tuple(content_warnings(doc.items)), doc.skipped, tuple(implied),
                        sum(len(it.media) for it in doc.items))


def _checked_media(doc: BankDocument) -> dict[tuple[str, str], bytes]:
    """The image bytes of ``doc``'s items by (item, name), each checked (`item_bank.media`);
    `FormatError` naming the item when an image is missing, too large or of a refused type."""
    files = {(f.item_id, f.name): f.data for f in doc.files}
    for it in doc.items:
        if len(it.media) > media_store.MAX_MEDIA_PER_ITEM:
            raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'media': at most "
                              f"{media_store.MAX_MEDIA_PER_ITEM} images")
        for m in it.media:
            data = files.get((it.external_id, m.name))
            if data is None:
                raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'media': the "
                                  f"image {m.name!r} is not in the file")
            try:
                media_store.content_type(f"item {it.external_id!r}: image {m.name!r}", data)
            except media_store.MediaError as exc:
                raise FormatError(f"{doc.source}: {exc}") from None
    return files


def _item_values(it: ItemContent, skill_id: int) -> dict[str, Any]:
    return {"skill_id": skill_id, "stem": it.stem,
            "options": [{"id": o.id, "text": o.text} for o in it.options], "key": it.key,
            "explanation": it.explanation, "model": it.model, "status": it.status,
            "difficulty_level": it.difficulty, "tags": list(it.tags), "author": it.author,
            "response_type": it.response_type, "correct": list(it.correct),
            "scoring": it.scoring}


def _write_enemies(session: Session, items: Sequence[ItemContent], bank_id: int) -> None:
    pairs: set[tuple[str, str]] = set()
    for it in items:
        for e in it.enemies:
            pairs.add((it.external_id, e))
    if not pairs:
        return
    ids = {i for p in pairs for i in p}
    pk = {iid: row.id for iid, row in _existing_ids(session, ids, bank_id).items()}
    have = {(r.item_id, r.enemy_id) for r in session.scalars(
        select(ItemEnemy).join(Item, ItemEnemy.item_id == Item.id).where(Item.bank_id == bank_id))}
    for x, y in pairs:
        lo, hi = sorted((pk[x], pk[y]))
        if (lo, hi) not in have:
            session.add(ItemEnemy(item_id=lo, enemy_id=hi))
            have.add((lo, hi))
    session.flush()


def _common_model(records: Sequence[ParameterRecord]) -> str:
    models = {r.params.model for r in records}
    return models.pop() if len(models) == 1 else "mixed"


def import_parameters(session: Session, table: ItemTable, source: str, *,
                      provisional: bool | None = None,
                      run_spec: CalibrationRunSpec | None = None,
                      bank_id: int | None = None) -> ImportReport:
    """Publish a parameters table (the DESIGN.md items CSV) for items already in the bank."""
    doc = BankDocument(source, (), (), records_from_table(table, source, provisional))
    return import_document(session, doc, run_spec=run_spec, bank_id=bank_id)


def publish_parameters(session: Session, records: Sequence[ParameterRecord],
                       spec: CalibrationRunSpec, *, bank_id: int | None = None) -> int:
    """Record a calibration run and make its parameters the current versions (one SAVEPOINT).

    Parameters
    ----------
    session : the caller's session.
    records : one `ParameterRecord` per item (external ids must be in the bank).
    spec : the run's model, method, settings, response filter, fit statistics and publisher.
    bank_id : the bank of the items (None: the database's only bank).

    Returns
    -------
    int : the id of the new ``calibration_runs`` row. Previous versions stay in the table with
        ``is_current`` false; a partial unique index guarantees one current version per item.

    Raises
    ------
    ValueError : naming the item when an external id is not in the bank or appears twice.
    """
    if not records:
        raise ValueError("no parameters to publish")
    bank_id = resolve_bank_id(session, bank_id)
    ids = [r.params.item_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("an item appears twice in the parameters to publish")
    items = _existing_ids(session, ids, bank_id)
    for iid in ids:
        if iid not in items:
            raise ValueError(f"item {iid!r}: not in the bank")
    for r in records:  # calibration lets slopes turn negative; the bank keeps a > 0
        if not r.params.a > 0:
            raise ValueError(f"item {r.params.item_id!r}: field 'a' = {r.params.a:.3g} is not "
                             f"positive: the item runs against the scale (a wrong key, or a "
                             f"reverse-worded item to reverse-score); fix it and recalibrate "
                             f"before publishing")
    with session.begin_nested():
        now = utcnow()
        run = CalibrationRun(bank_id=bank_id, model=spec.model, method=spec.method,
                             settings=dict(spec.settings),
                             response_filter=dict(spec.response_filter), n_persons=spec.n_persons,
                             n_responses=spec.n_responses, log_likelihood=spec.log_likelihood,
                             converged=spec.converged, n_iterations=spec.n_iterations,
                             provisional=spec.provisional, notes=spec.notes, published_at=now,
                             published_by_id=spec.published_by_id)
        session.add(run)
        session.flush()
        item_pks = [items[i].id for i in ids]
        for k in range(0, len(item_pks), 500):
            session.execute(update(ItemParameterVersion)
                            .where(ItemParameterVersion.item_id.in_(item_pks[k:k + 500]),
                                   ItemParameterVersion.is_current.is_(True))
                            .values(is_current=False))
        for rec in records:
            p = rec.params
            item = items[p.item_id]
            item.model = p.model
            session.add(ItemParameterVersion(
                item_id=item.id, calibration_run_id=run.id, model=p.model, a=p.a, b=p.b, c=p.c,
                d=p.d, thresholds=list(p.thresholds), se_a=rec.se_a, se_b=rec.se_b,
                se_c=rec.se_c, se_d=rec.se_d, se_thresholds=[], n_responses=rec.n_responses,
                provisional=rec.provisional or spec.provisional, is_current=True, created_at=now))
        session.flush()
    log.info("published calibration run %d (%d items, provisional=%s)", run.id, len(records),
             spec.provisional)
    return run.id


def publish_calibration(session: Session, table: ItemTable, spec: CalibrationRunSpec, *,
                        bank_id: int | None = None) -> int:
    """Publish a calibration's output table (`irt.io.ItemTable` with ``se_*``/``n_responses``)."""
    return publish_parameters(session, records_from_table(table, spec.method,
                                                          provisional=spec.provisional), spec,
                              bank_id=bank_id)


# -- reading the bank --------------------------------------------------------------------------


def _current_versions(session: Session, item_pks: Sequence[int]
                      ) -> dict[int, ItemParameterVersion]:
    out: dict[int, ItemParameterVersion] = {}
    for k in range(0, len(item_pks), 500):
        stmt = select(ItemParameterVersion).where(
            ItemParameterVersion.item_id.in_(item_pks[k:k + 500]),
            ItemParameterVersion.is_current.is_(True))
        out.update({v.item_id: v for v in session.scalars(stmt)})
    return out


def _enemy_map(session: Session, bank_id: int) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for r in session.scalars(select(ItemEnemy).join(Item, ItemEnemy.item_id == Item.id)
                             .where(Item.bank_id == bank_id)):
        out.setdefault(r.item_id, set()).add(r.enemy_id)
        out.setdefault(r.enemy_id, set()).add(r.item_id)
    return out


def _select_items(session: Session, skills: Sequence[str] | None,
                  statuses: Sequence[str] | None, bank_id: int) -> list[Item]:
    stmt = (select(Item).join(Skill).where(Item.bank_id == bank_id)
            .order_by(Skill.slug, Item.external_id))
    if skills is not None:
        known = skills_by_slug(session, bank_id)
        for s in skills:
            if s not in known:
                raise ValueError(f"unknown skill {s!r} (known: {sorted(known)})")
        stmt = stmt.where(Skill.slug.in_(list(skills)))
    if statuses is not None:
        for s in statuses:
            if s not in ITEM_STATUSES:
                raise ValueError(f"unknown item status {s!r}; expected one of {ITEM_STATUSES}")
        stmt = stmt.where(Item.status.in_(list(statuses)))
    return list(session.scalars(stmt))


def load_bank(session: Session, skills: Sequence[str] | None = None,
              statuses: Sequence[str] = ("pretest", "operational"), *,
              bank_id: int | None = None) -> LoadedBank:
    """The current bank for the engine: parameters of every item with a current version.

    Parameters
    ----------
    session : the caller's session.
    skills : skill ids to load (None: all); an unknown id raises `ValueError`.
    statuses : item statuses to load (retired items are left out by default).
    bank_id : the bank (None: the database's only bank).

    Returns
    -------
    LoadedBank : ``bank`` (`irt.Bank`, ordered by skill then external id), ``items``
        (`ItemMeta` in the same order, including the ``parameter_version_id`` to record with
        each answer) and ``enemy_groups``. Items without parameters are skipped (logged).
    """
    bank_id = resolve_bank_id(session, bank_id)
    items = _select_items(session, skills, statuses, bank_id)
    versions = _current_versions(session, [it.id for it in items])
    enemies = _enemy_map(session, bank_id)
    ext = {it.id: it.external_id for it in items}
    params: list[ItemParams] = []
    metas: list[ItemMeta] = []
    skipped = 0
    for it in items:
        v = versions.get(it.id)
        if v is None:
            skipped += 1
            continue
        params.append(version_params(v, it.external_id, it.skill.slug))
        metas.append(ItemMeta(it.external_id, it.skill.slug, it.status, tuple(it.tags or ()),
                              tuple(sorted(ext[e] for e in enemies.get(it.id, ()) if e in ext
                                           and e in versions)),
                              it.difficulty_level, v.id, v.provisional))
    if skipped:
        log.info("load_bank: %d items have no parameters yet and were left out", skipped)
    loaded = {m.external_id for m in metas}
    groups = sorted({tuple(sorted((m.external_id, e))) for m in metas for e in m.enemies
                     if e in loaded})
    return LoadedBank(Bank.from_params(params), tuple(metas), tuple(groups))


def version_params(v: ItemParameterVersion, external_id: str, skill: str) -> ItemParams:
    """The `ItemParams` of a stored parameter version (thresholds for polytomous models)."""
    if v.model in POLYTOMOUS_MODELS:
        return ItemParams(external_id, v.model, v.a, thresholds=tuple(v.thresholds or ()),
                          skill=skill)
    return ItemParams(external_id, v.model, v.a, v.b if v.b is not None else 0.0,
                      v.c if v.c is not None else 0.0, v.d if v.d is not None else 1.0,
                      skill=skill)


def item_content(item: Item, enemies: Iterable[str] = (),
                 media: Sequence[MediaRef] = ()) -> ItemContent:
    return ItemContent(item.external_id, item.skill.slug, item.stem,
                       tuple(Option(o["id"], o["text"]) for o in item.options), item.key,
                       item.explanation, item.difficulty_level, tuple(item.tags or ()),
                       tuple(sorted(enemies)), item.status, item.model, item.author,
                       item.response_type or "single", tuple(item.correct or ()),
                       item.scoring or "partial", tuple(media))


def export_document(session: Session, skills: Sequence[str] | None = None,
                    statuses: Sequence[str] | None = None, name: str = "", *,
                    bank_id: int | None = None) -> BankDocument:
    """The bank (content and current parameters) as a `BankDocument` for the writers."""
    bank_id = resolve_bank_id(session, bank_id)
    items = _select_items(session, skills, statuses, bank_id)
    enemies = _enemy_map(session, bank_id)
    ext = {it.id: it.external_id for it in items}
    # Enemies outside the exported selection are left out so that the file imports on its own.
    media: dict[int, list[ItemMedia]] = {it.id: [] for it in items}
    for m in session.scalars(select(ItemMedia).join(Item, ItemMedia.item_id == Item.id)
                             .where(Item.bank_id == bank_id).order_by(ItemMedia.id)):
        if m.item_id in media:
            media[m.item_id].append(m)
    contents = [item_content(it, (ext[e] for e in enemies.get(it.id, ()) if e in ext),
                             [MediaRef(m.name, m.alt) for m in media[it.id]])
                for it in items]
    files = tuple(MediaFile(it.external_id, m.name, media_store.read(m))
                  for it in items for m in media[it.id])
    skill_of = {it.id: it.skill.slug for it in items}
    versions = _current_versions(session, [it.id for it in items])
    records = tuple(
        ParameterRecord(version_params(v, ext[v.item_id], skill_of[v.item_id]),
                        v.se_a, v.se_b, v.se_c, v.se_d, v.n_responses, v.provisional)
        for v in sorted(versions.values(), key=lambda v: ext[v.item_id]))
    used = {c.skill for c in contents}
    skill_rows = [s for s in session.scalars(select(Skill).where(Skill.bank_id == bank_id)
                                             .order_by(Skill.slug))
                  if skills is None or s.slug in used or s.slug in skills]
    return BankDocument("database", tuple(SkillInfo(s.slug, s.name, s.description)
                                          for s in skill_rows),
                        tuple(with_symmetric_enemies(contents)), records, name, files)


def parameter_history(session: Session, external_id: str, bank_id: int | None = None
                      ) -> list[ItemParameterVersion]:
    """Every parameter version of an item, oldest first."""
    bid = resolve_bank_id(session, bank_id)
    stmt = (select(ItemParameterVersion).join(Item)
            .where(Item.bank_id == bid, Item.external_id == external_id)
            .order_by(ItemParameterVersion.id))
    return list(session.scalars(stmt))


def exposure_counts(session: Session, item_ids: Sequence[str], bank_id: int | None = None
                    ) -> ExposureCounts:
    """Administrations per item of the bank (every organisation's sessions: exposure is a
    property of the items, not of who asked them), aligned with ``item_ids``."""
    bid = resolve_bank_id(session, bank_id)
    stmt = (select(Item.external_id, func.count(Response.id)).join(Response)
            .where(Item.bank_id == bid).group_by(Item.external_id))
    counts = dict(session.execute(stmt).all())
    n_sessions = session.scalar(select(func.count(CandidateSession.id))
                                .join(Assessment, CandidateSession.assessment_id == Assessment.id)
                                .where(Assessment.bank_id == bid)) or 0
    return ExposureCounts(tuple(item_ids),
                          np.array([counts.get(i, 0) for i in item_ids], dtype=np.int64),
                          int(n_sessions))


# -- response log ------------------------------------------------------------------------------


def _utc(t: dt.datetime) -> dt.datetime:
    """``t`` in UTC (naive values are taken to be UTC), so SQLite's text comparison is right."""
    return as_utc(t).astimezone(dt.UTC)


def export_responses(session: Session, *, skills: Sequence[str] | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None,
                     session_statuses: Sequence[str] | None = None,
                     item_statuses: Sequence[str] | None = None,
                     bank_id: int | None = None,
                     organisation_ids: Sequence[int] | None = None) -> ResponseExport:
    """The response log of one bank's items in long format (``person_id`` = the candidate's
    public id).

    ``organisation_ids``: only responses of these organisations' candidates (None: every
    organisation's — for operators; the web and calibration jobs always pass the owner and the
    organisations that consented, see `pooled_organisations`).
    Filters: skills, answered in ``[since, until)``, session status, item status. A candidate who
    met the same item in two sessions keeps only the first answer (the long format holds one
    response per person and item; later exposures are no longer naive) and the number dropped is
    reported in ``n_dropped_repeats``.
    """
    stmt = (select(Candidate.public_id, Item.external_id, Response.score, Skill.slug,
                   Response.session_id, Response.answered_at)
            .select_from(Response)
            .join(CandidateSession, Response.session_id == CandidateSession.id)
            .join(Candidate, CandidateSession.candidate_id == Candidate.id)
            .join(Item, Response.item_id == Item.id)
            .join(Skill, Item.skill_id == Skill.id)
            .where(Item.bank_id == resolve_bank_id(session, bank_id))
            .order_by(Response.answered_at, Response.id))
    if organisation_ids is not None:
        stmt = stmt.where(Candidate.organisation_id.in_(list(organisation_ids)))
    if skills is not None:
        stmt = stmt.where(Skill.slug.in_(list(skills)))
    if since is not None:
        stmt = stmt.where(Response.answered_at >= _utc(since))
    if until is not None:
        stmt = stmt.where(Response.answered_at < _utc(until))
    if session_statuses is not None:
        for s in session_statuses:
            if s not in SESSION_STATUSES:
                raise ValueError(f"unknown session status {s!r}; expected one of "
                                 f"{SESSION_STATUSES}")
        stmt = stmt.where(CandidateSession.status.in_(list(session_statuses)))
    if item_statuses is not None:
        stmt = stmt.where(Item.status.in_(list(item_statuses)))
    persons: dict[str, int] = {}
    items: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    p, i, r, sk, sid, at = [], [], [], [], [], []
    dropped = 0
    for pub, ext, score, skill, session_id, answered in session.execute(stmt):
        pk = persons.setdefault(pub, len(persons))
        ik = items.setdefault(ext, len(items))
        if (pk, ik) in seen:
            dropped += 1
            continue
        seen.add((pk, ik))
        p.append(pk)
        i.append(ik)
        r.append(score)
        sk.append(skill)
        sid.append(session_id)
        at.append(as_utc(answered))
    if dropped:
        log.warning("export_responses: dropped %d repeated (candidate, item) answers", dropped)
    data = SparseResponses(np.array(p, dtype=np.int64), np.array(i, dtype=np.int64),
                           np.array(r, dtype=np.int64), len(persons), len(items))
    return ResponseExport(tuple(persons), tuple(items), data, tuple(sk), tuple(sid), tuple(at),
                          dropped)


# -- organisations, staff, assessments ---------------------------------------------------------


def check_name(value: str, where: str = "field 'name'") -> str:
    """A display name: at most `NAME_MAX` characters, no control or bidi control characters.

    Returns it stripped; raises `ValueError` starting with ``where``."""
    value = value.strip()
    if len(value) > NAME_MAX:
        raise ValueError(f"{where} is longer than {NAME_MAX} characters")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError(f"{where} contains control characters")
    bidi = next((ch for ch in value if ch in BIDI_CONTROLS), None)
    if bidi is not None:
        raise ValueError(f"{where} contains the bidirectional control character "
                         f"U+{ord(bidi):04X}")
    return value


def create_organisation(session: Session, slug: str, name: str) -> Organisation:
    """A new organisation; raises `ValueError` when ``slug`` is taken or malformed."""
    if not SLUG.match(slug or ""):
        raise ValueError(f"field 'slug': expected lower-case letters, digits and '-', got "
                         f"{slug!r}")
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise ValueError(f"field 'slug': an organisation {slug!r} already exists")
    org = Organisation(slug=slug, name=check_name(name))
    session.add(org)
    session.flush()
    return org


def get_organisation(session: Session, organisation_id: int) -> Organisation:
    """The organisation ``organisation_id`` of a signed-in user or of a row referring to it
    (organisations are never deleted); `LookupError` if the database has no such row."""
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise LookupError(f"no organisation with id {organisation_id}")
    return org


def create_staff_user(session: Session, organisation: Organisation, email: str, role: str,
                      password: str, name: str = "") -> StaffUser:
    """A staff account with an argon2 password hash; ``role`` ∈ admin/psychometrician/recruiter."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValueError(f"field 'email': not an e-mail address: {email!r}")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise ValueError(f"field 'email': {email!r} already has an account")
    user = StaffUser(organisation_id=organisation.id, email=email, role=role,
                     name=check_name(name), password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active user with this e-mail and password, else None."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        return None
    return user


def validate_blueprint(session: Session, blueprint: Mapping[str, Any],
                       bank_id: int | None = None) -> None:
    """A blueprint needs ``skills``: a non-empty list of known skill ids, or of objects naming
    one in ``skill`` (the engine's `Blueprint.to_dict` form); other keys (limits, rules…) belong
    to the engine and are stored as given."""
    skills = blueprint.get("skills")
    if not isinstance(skills, list) or not skills:
        raise ValueError("blueprint: field 'skills' must be a non-empty list of skill ids")
    known = skills_by_slug(session, bank_id)
    for s in skills:
        sid = s.get("skill", s.get("id")) if isinstance(s, Mapping) else s
        if sid not in known:
            raise ValueError(f"blueprint: field 'skills': unknown skill {sid!r}")


def create_assessment(session: Session, organisation: Organisation, slug: str, name: str,
                      blueprint: Mapping[str, Any], *, cut_score: float | None = None,
                      time_limit_minutes: int | None = None,
                      created_by: StaffUser | None = None,
                      bank: ItemBank | None = None,
                      security: Mapping[str, Any] | None = None) -> Assessment:
    """A named blueprint owned by ``organisation``; the slug is unique within it.

    ``bank``: the organisation's own bank or a library (None: the database's only bank).
    ``security``: test-security settings (`item_bank.forensics_models.check_security`)."""
    bank = bank or sole_bank(session)
    if bank.organisation_id != organisation.id and not bank.library:
        raise ValueError("field 'bank': the bank belongs to another organisation and is not a "
                         "library")
    if not SLUG.match(slug or ""):
        raise ValueError(f"field 'slug': expected lower-case letters, digits and '-', got "
                         f"{slug!r}")
    taken = session.scalar(select(Assessment.id).where(
        Assessment.organisation_id == organisation.id, Assessment.slug == slug))
    if taken is not None:
        raise ValueError(f"field 'slug': the organisation already has an assessment {slug!r}")
    validate_blueprint(session, blueprint, bank.id)
    settings = None if security is None else check_security(dict(security))
    a = Assessment(organisation_id=organisation.id, bank_id=bank.id, slug=slug, security=settings,
                   name=check_name(name),
                   blueprint=dict(blueprint), cut_score=cut_score,
                   time_limit_minutes=time_limit_minutes,
                   created_by_id=created_by.id if created_by else None)
    session.add(a)
    session.flush()
    return a


def find_assessment(session: Session, slug: str | None = None,
                    organisation: str | None = None) -> Assessment:
    """The assessment with ``slug`` (of the organisation with slug ``organisation`` when
    given), or the only one when ``slug`` is None."""
    base = select(Assessment)
    if organisation is not None:
        base = base.join(Organisation, Assessment.organisation_id == Organisation.id).where(
            Organisation.slug == organisation)
    if slug is None:
        rows = list(session.scalars(base.limit(2)))
        if len(rows) != 1:
            raise ValueError(f"there are {'no' if not rows else 'several'} assessments; "
                             "name one with --assessment SLUG")
        return rows[0]
    rows = list(session.scalars(base.where(Assessment.slug == slug)))
    if not rows:
        raise ValueError(f"no assessment with slug {slug!r}")
    if len(rows) > 1:
        raise ValueError(f"several organisations have an assessment {slug!r}; name one "
                         "with --org SLUG")
    return rows[0]


# -- invitations, sessions, responses ----------------------------------------------------------


def create_invitations(session: Session, assessment: Assessment, count: int, *,
                       expires_in: dt.timedelta = dt.timedelta(days=14),
                       created_by: StaffUser | None = None,
                       candidate_names: Sequence[str | None] | None = None
                       ) -> list[IssuedInvitation]:
    """``count`` invitations, each for a new candidate; tokens are returned once, stored hashed."""
    if count < 1 or count > 10_000:
        raise ValueError(f"count must be between 1 and 10000, got {count}")
    if expires_in <= dt.timedelta(0):
        raise ValueError("expires_in must be positive")
    names = list(candidate_names) if candidate_names is not None else [None] * count
    if len(names) != count:
        raise ValueError("candidate_names must have one entry per invitation")
    names = [None if n is None else check_name(n, f"row {k + 1}: field 'name'") or None
             for k, n in enumerate(names)]
    expires = utcnow() + expires_in
    out = []
    for name in names:
        cand = Candidate(public_id=uuid.uuid4().hex, organisation_id=assessment.organisation_id,
                         name=name)
        session.add(cand)
        session.flush()
        token = new_token()
        inv = Invitation(assessment_id=assessment.id, candidate_id=cand.id,
                         token_hash=hash_token(token), expires_at=expires,
                         created_by_id=created_by.id if created_by else None)
        session.add(inv)
        session.flush()
        out.append(IssuedInvitation(inv.id, cand.public_id, token, expires))
    return out


def find_invitation(session: Session, token: str) -> Invitation | None:
    """The invitation for ``token`` (looked up by hash), or None."""
    if not token:
        return None
    return session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))




def start_session(session: Session, invitation: Invitation, *,
                  engine_state: Mapping[str, Any] | None = None,
                  deadline: dt.datetime | None = None,
                  blueprint: Mapping[str, Any] | None = None) -> tuple[CandidateSession, str]:
    """Open the session of an invitation; returns it and its bearer token (stored hashed).

    Raises `ValueError` for an expired, revoked or already-used invitation. ``blueprint``: the
    session's own copy (default: the assessment's; a retake adds the items seen before). The
    session also keeps a copy of the assessment's test-security settings (`check_security`) and
    of its time limit, so that a change made while it runs applies only to sessions that start
    afterwards.
    """
    if invitation.status not in ("pending",):
        raise ValueError(f"invitation is {invitation.status}")
    if as_utc(invitation.expires_at) <= utcnow():
        invitation.status = "expired"
        session.flush()
        raise ValueError("invitation has expired")
    token = new_token()
    now = utcnow()
    row = CandidateSession(invitation_id=invitation.id, candidate_id=invitation.candidate_id,
                           assessment_id=invitation.assessment_id, token_hash=hash_token(token),
                           deadline=deadline, engine_state=dict(engine_state or {}),
                           blueprint=dict(blueprint if blueprint is not None
                                          else invitation.assessment.blueprint), started_at=now,
                           item_served_at=now,
                           security=check_security(invitation.assessment.security),
                           time_limit_minutes=invitation.assessment.time_limit_minutes)
    invitation.status = "started"
    session.add(row)
    session.flush()
    return row, token


def find_session_by_token(session: Session, token: str) -> CandidateSession | None:
    if not token:
        return None
    return session.scalar(select(CandidateSession)
                          .where(CandidateSession.token_hash == hash_token(token)))


def save_engine_state(session: Session, test_session: CandidateSession,
                      state: Mapping[str, Any] | str, expected_version: int, *,
                      served_at: dt.datetime | None = None) -> int:
    """Store the engine's serialized state (its ``to_dict()`` or JSON text) if nobody saved
    since ``expected_version``.

    An optimistic check on ``state_version`` (a conditional UPDATE), so two workers answering
    for the same session cannot overwrite each other; raises `ValueError` on a conflict.
    Returns the new version. ``served_at``: when the state's pending item was served (stored
    in the same statement).
    """
    session.flush()  # pending ORM changes first (the statement below bypasses autoflush)
    postgresql = session.get_bind().dialect.name == "postgresql"
    stmt = _state_update(isinstance(state, str), postgresql, served_at is not None)
    result = session.connection().execute(
        stmt, _state_params(test_session.id, state, expected_version, served_at))
    if result.rowcount != 1:
        raise ValueError(f"session {test_session.id} was updated concurrently "
                         f"(expected state version {expected_version})")
    # the row now holds exactly these values: record them without another round trip
    _saved_state(session, test_session, state, expected_version, served_at)
    return expected_version + 1


_STATE_UPDATES: dict[tuple[bool, bool, bool], Any] = {}


def _table(model: type[Base]) -> Table:
    return typing.cast(Table, model.__table__)


def _state_update(text: bool, postgresql: bool, served: bool) -> Any:
    """The conditional UPDATE of a session's state (built once per shape: the answer hot path
    runs it on every answer), parameters as `_state_params`. ``text``: the state is bound as
    its JSON text (on PostgreSQL cast to the column's type: the server checks it is JSON)."""
    key = (text, postgresql, served)
    stmt = _STATE_UPDATES.get(key)
    if stmt is None:
        sessions = _table(CandidateSession)
        value: Any = bindparam("s_state", type_=Text() if text else sessions.c.engine_state.type)
        if text and postgresql:
            value = cast(value, sessions.c.engine_state.type)
        values = {"engine_state": value, "state_version": bindparam("s_new_version")}
        if served:
            values["item_served_at"] = bindparam("s_served_at",
                                                 type_=sessions.c.item_served_at.type)
        stmt = _STATE_UPDATES[key] = (
            update(sessions).where(sessions.c.id == bindparam("s_id"),
                                   sessions.c.state_version == bindparam("s_version"))
            .values(values))
    return stmt


def _state_params(session_id: int, state: Mapping[str, Any] | str, expected_version: int,
                  served_at: dt.datetime | None) -> dict[str, Any]:
    return {"s_id": session_id, "s_version": expected_version,
            "s_state": state if isinstance(state, str) else dict(state),
            "s_new_version": expected_version + 1, "s_served_at": served_at}


def _saved_state(session: Session, test_session: CandidateSession,
                 state: Mapping[str, Any] | str, expected_version: int,
                 served_at: dt.datetime | None) -> None:
    """Record in ``test_session`` what its row holds now (a JSON text state: reloaded if it is
    read again)."""
    if isinstance(state, str):
        if "engine_state" in test_session.__dict__:
            session.expire(test_session, ["engine_state"])
    else:
        set_committed_value(test_session, "engine_state", dict(state))
    set_committed_value(test_session, "state_version", expected_version + 1)
    if served_at is not None:
        set_committed_value(test_session, "item_served_at", served_at)


_ANSWER_INSERTS: dict[bool, Any] = {}


def _answer_write(text: bool) -> Any:
    """PostgreSQL's one-statement answer write of `record_answer` (built once per shape): the
    state UPDATE as a data-modifying CTE whose RETURNING feeds the response INSERT."""
    stmt = _ANSWER_INSERTS.get(text)
    if stmt is None:
        saved = _state_update(text, True, True).returning(
            CandidateSession.__table__.c.id).cte("saved")
        responses = _table(Response)
        cols = responses.c
        taken = [bindparam(f"r_{k}", type_=cols[k].type).label(k) for k in _ANSWER_COLUMNS]
        stmt = _ANSWER_INSERTS[text] = (
            insert(responses)
            .from_select(["session_id", *_ANSWER_COLUMNS], select(saved.c.id, *taken))
            .add_cte(saved).returning(cols.id))
    return stmt


_ANSWER_COLUMNS = ("item_id", "position", "raw_answer", "score", "latency_ms", "answered_at",
                   "parameter_version_id")


def record_answer(session: Session, test_session: CandidateSession,
                  state: Mapping[str, Any] | str, expected_version: int, *, item_id: int,
                  position: int, raw_answer: str, score: int, latency_ms: int | None,
                  answered_at: dt.datetime, parameter_version_id: int | None) -> int:
    """Store one answer (a `Response` row) and the engine state after it, if nobody saved the
    state since ``expected_version`` (as `save_engine_state`); returns the new version.
    ``state`` is the engine's ``to_dict()`` or its JSON text (``to_json_after``).

    On PostgreSQL both writes are one statement (one round trip): a data-modifying CTE updates
    the session row and the INSERT takes its values from the CTE's RETURNING, so the answer is
    inserted only when the conditional update matched. Elsewhere: the INSERT, then
    `save_engine_state`. The next item is served now: ``answered_at`` is stored as the session's
    ``item_served_at`` in the same update (the next answer's latency is measured from it).
    Either way, in the caller's transaction: a duplicate answer raises
    `IntegrityError` (unique session/position and session/item) and a version conflict raises
    `ValueError`, and the caller's rollback undoes both writes. Core statements built once,
    on the transaction's connection (no ORM bookkeeping: the row's attributes are set here).
    """
    values = {"item_id": item_id, "position": position, "raw_answer": raw_answer,
              "score": score, "latency_ms": latency_ms, "answered_at": answered_at,
              "parameter_version_id": parameter_version_id}
    session.flush()  # pending ORM changes first (the statements below bypass autoflush)
    conn = session.connection()
    if session.get_bind().dialect.name != "postgresql":
        conn.execute(insert(_table(Response)), {"session_id": test_session.id, **values})
        return save_engine_state(session, test_session, state, expected_version,
                                 served_at=answered_at)
    params = _state_params(test_session.id, state, expected_version, answered_at)
    params.update({f"r_{k}": v for k, v in values.items()})
    inserted = conn.execute(_answer_write(isinstance(state, str)), params).all()
    if len(inserted) != 1:
        raise ValueError(f"session {test_session.id} was updated concurrently "
                         f"(expected state version {expected_version})")
    _saved_state(session, test_session, state, expected_version, answered_at)
    return expected_version + 1


def record_response(session: Session, session_id: int, item_external_id: str, position: int,
                    raw_answer: str, score: int, *, latency_ms: int | None = None,
                    answered_at: dt.datetime | None = None) -> Response:
    """Append one answer; the item's current parameter version is recorded with it.

    The database rejects a second answer to the same item or position in a session
    (`sqlalchemy.exc.IntegrityError`).
    """
    if position < 1:
        raise ValueError(f"position must be >= 1, got {position}")
    if not isinstance(raw_answer, str) or len(raw_answer) > RAW_ANSWER_MAX:
        raise ValueError(f"raw answer must be text of at most {RAW_ANSWER_MAX} characters")
    if score < 0:
        raise ValueError(f"score must be >= 0, got {score}")
    item = session.scalar(select(Item).join(Assessment, Assessment.bank_id == Item.bank_id)
                          .join(CandidateSession, CandidateSession.assessment_id == Assessment.id)
                          .where(CandidateSession.id == session_id,
                                 Item.external_id == item_external_id))
    if item is None:
        raise ValueError(f"unknown item {item_external_id!r}")
    version = _current_versions(session, [item.id]).get(item.id)
    row = Response(session_id=session_id, item_id=item.id, position=position,
                   raw_answer=raw_answer, score=score, latency_ms=latency_ms,
                   parameter_version_id=version.id if version else None,
                   answered_at=_utc(answered_at) if answered_at else utcnow())
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class SkillOutcome:
    """A skill's result to store (`record_skill_results`)."""

    skill: str
    theta: float
    se: float
    n_items: int
    stop_reason: str
    decision: str | None = None
    decision_rule: str | None = None


def record_skill_results(session: Session, session_id: int,
                         outcomes: Sequence[SkillOutcome]) -> None:
    """Store the results of a session's skills: one lookup of the skills of the session's
    bank, one INSERT of every row (a bulk insert, no objects built); ``decision`` and
    ``decision_rule`` only when the engine's own classification rule decided the skill (both
    or neither)."""
    skills: dict[str, int] = {slug: skill_id for slug, skill_id in session.execute(
        select(Skill.slug, Skill.id).join(Assessment, Assessment.bank_id == Skill.bank_id)
        .join(CandidateSession, CandidateSession.assessment_id == Assessment.id)
        .where(CandidateSession.id == session_id))}
    if not skills and session.get(CandidateSession, session_id) is None:
        raise ValueError(f"no session {session_id}")
    rows = []
    for o in outcomes:
        if o.skill not in skills:
            raise ValueError(f"unknown skill {o.skill!r}")
        if (o.decision is None) != (o.decision_rule is None) \
                or o.decision not in (None, "pass", "fail"):
            raise ValueError(f"skill {o.skill!r}: decision {o.decision!r} needs its rule and "
                             "vice versa")
        rows.append({"session_id": session_id, "skill_id": skills[o.skill],
                     "theta": float(o.theta), "se": float(o.se), "n_items": int(o.n_items),
                     "stop_reason": o.stop_reason, "decision": o.decision,
                     "decision_rule": o.decision_rule})
    if rows:
        session.execute(insert(SkillResult), rows)


def record_skill_result(session: Session, session_id: int, skill: str, theta: float, se: float,
                        n_items: int, stop_reason: str, *, decision: str | None = None,
                        decision_rule: str | None = None) -> SkillResult:
    """Store a skill's result (`record_skill_results` for one skill) and return its row."""
    record_skill_results(session, session_id, [SkillOutcome(
        skill, theta, se, n_items, stop_reason, decision, decision_rule)])
    return session.scalars(select(SkillResult).join(Skill).where(
        SkillResult.session_id == session_id, Skill.slug == skill)).one()  # unique per session


def record_overall_result(session: Session, session_id: int, theta: float, se: float,
                          weights: dict[str, float]) -> None:
    """Store a session's composite (overall) score with the weights that defined it (one
    INSERT)."""
    if not (math.isfinite(theta) and math.isfinite(se) and se >= 0):
        raise ValueError(f"overall result: theta {theta} and se {se} must be finite, se >= 0")
    session.execute(insert(OverallResult), [{
        "session_id": session_id, "theta": float(theta), "se": float(se),
        "weights": {str(k): float(v) for k, v in weights.items()}}])


def finish_session(session: Session, test_session: CandidateSession,
                   status: str = "completed") -> None:
    """Close ``test_session`` with ``status``; a completed one completes its invitation too
    (one UPDATE, the invitation not loaded)."""
    if status not in SESSION_STATUSES or status == "in_progress":
        raise ValueError(f"cannot finish a session with status {status!r}")
    test_session.status = status
    test_session.finished_at = utcnow()
    session.flush()
    if status == "completed":
        session.execute(update(Invitation).where(Invitation.id == test_session.invitation_id)
                        .values(status="completed"))


def session_responses(session: Session, session_id: int) -> list[Response]:
    return list(session.scalars(select(Response).where(Response.session_id == session_id)
                                .order_by(Response.position)))
