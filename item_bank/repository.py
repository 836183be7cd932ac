"""Repository functions: every function receives a `Session` and never commits.

The caller (a CLI command, a web request, a test) owns the transaction. Functions that write
several rows validate everything first and then write inside a SAVEPOINT, so a failure leaves the
database as it was even if the caller goes on to commit other work.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from irt import Bank, ItemParams, SparseResponses
from irt.io import FormatError, ItemTable
from item_bank.content import (
    BankDocument,
    ItemContent,
    ItemWarning,
    Option,
    ParameterRecord,
    SkillInfo,
    content_warnings,
    records_from_table,
    with_symmetric_enemies,
)
from item_bank.models import (
    ITEM_STATUSES,
    ROLES,
    SESSION_STATUSES,
    Assessment,
    CalibrationRun,
    Candidate,
    CandidateSession,
    Invitation,
    Item,
    ItemEnemy,
    ItemParameterVersion,
    Organisation,
    OverallResult,
    Response,
    Skill,
    SkillResult,
    StaffUser,
    as_utc,
    utcnow,
)
from item_bank.security import hash_password, hash_token, new_token, verify_password

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
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


# -- skills and items --------------------------------------------------------------------------


def skills_by_slug(session: Session) -> dict[str, Skill]:
    return {s.slug: s for s in session.scalars(select(Skill))}


def ensure_skills(session: Session, skills: Iterable[SkillInfo]) -> int:
    """Create missing skills and update names/descriptions of existing ones; returns created."""
    existing = skills_by_slug(session)
    created = 0
    for info in skills:
        row = existing.get(info.slug)
        if row is None:
            row = Skill(slug=info.slug, name=info.name, description=info.description)
            session.add(row)
            existing[info.slug] = row
            created += 1
        else:
            row.name, row.description = info.name, info.description or row.description
    session.flush()
    return created


def _existing_ids(session: Session, external_ids: Iterable[str]) -> dict[str, Item]:
    ids = list(external_ids)
    out: dict[str, Item] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        out.update({it.external_id: it for it in
                    session.scalars(select(Item).where(Item.external_id.in_(chunk)))})
    return out


def validate_document(session: Session, doc: BankDocument, replace: bool = False) -> None:
    """Check ``doc`` against the database (skills, existing ids, enemies, parameters).

    Raises `FormatError` naming the file, the item and the field; writes nothing.
    """
    known_skills = set(skills_by_slug(session)) | {s.slug for s in doc.skills}
    existing = _existing_ids(session, [it.external_id for it in doc.items])
    in_doc = {it.external_id for it in doc.items}
    for it in doc.items:
        if it.skill not in known_skills:
            raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'skill': unknown "
                              f"skill {it.skill!r} (known: {sorted(known_skills)})")
        if it.external_id in existing and not replace:
            raise FormatError(f"{doc.source}: item {it.external_id!r}: field 'id': the bank "
                              f"already has this external id (use replace to update it)")
    enemy_ids = {e for it in doc.items for e in it.enemies} - in_doc
    found = set(_existing_ids(session, enemy_ids))
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
    missing = [i for i in param_ids if i not in skill_of]
    db_items = _existing_ids(session, missing)
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
        if not rec.params.is_dichotomous:
            raise FormatError(f"{doc.source}: item {iid!r}: field 'model': multiple-choice "
                              f"items need a dichotomous model, got {rec.params.model!r}")


def import_document(session: Session, doc: BankDocument, *, replace: bool = False,
                    run_spec: CalibrationRunSpec | None = None) -> ImportReport:
    """Validate then write ``doc``: skills, items, enemy pairs, and parameters (one run).

    Parameters
    ----------
    session : the caller's session (not committed here).
    doc : a validated `BankDocument` (see `item_bank.transfer.read_bank_file`).
    replace : update items whose external id is already in the bank (their parameter history
        is kept); without it such an item is an error.
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
    validate_document(session, doc, replace)
    with session.begin_nested():
        created_skills = ensure_skills(session, doc.skills)
        skills = skills_by_slug(session)
        existing = _existing_ids(session, [it.external_id for it in doc.items])
        created = updated = 0
        for it in doc.items:
            row = existing.get(it.external_id)
            values = _item_values(it, skills[it.skill].id)
            if row is None:
                row = Item(external_id=it.external_id, source=doc.source, **values)
                session.add(row)
                existing[it.external_id] = row
                created += 1
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                updated += 1
        session.flush()
        _write_enemies(session, doc.items)
        run_id, n_versions = None, 0
        if doc.parameters:
            spec = run_spec or CalibrationRunSpec(
                model=_common_model(doc.parameters), method="import",
                settings={"source": doc.source},
                provisional=all(r.provisional for r in doc.parameters),
                notes=f"imported from {doc.source}")
            run_id = publish_parameters(session, doc.parameters, spec)
            n_versions = len(doc.parameters)
    log.info("imported %s: %d items created, %d updated, %d parameter versions", doc.source,
             created, updated, n_versions)
    return ImportReport(doc.source, created_skills, created, updated, n_versions, run_id,
                        tuple(content_warnings(doc.items)))


def _item_values(it: ItemContent, skill_id: int) -> dict[str, Any]:
    return {"skill_id": skill_id, "stem": it.stem,
            "options": [{"id": o.id, "text": o.text} for o in it.options], "key": it.key,
            "explanation": it.explanation, "model": it.model, "status": it.status,
            "difficulty_level": it.difficulty, "tags": list(it.tags), "author": it.author}


def _write_enemies(session: Session, items: Sequence[ItemContent]) -> None:
    pairs: set[tuple[str, str]] = set()
    for it in items:
        for e in it.enemies:
            pairs.add((it.external_id, e))
    if not pairs:
        return
    ids = {i for p in pairs for i in p}
    pk = {iid: row.id for iid, row in _existing_ids(session, ids).items()}
    have = {(r.item_id, r.enemy_id) for r in session.scalars(select(ItemEnemy))}
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
                      run_spec: CalibrationRunSpec | None = None) -> ImportReport:
    """Publish a parameters table (the DESIGN.md items CSV) for items already in the bank."""
    doc = BankDocument(source, (), (), records_from_table(table, source, provisional))
    return import_document(session, doc, run_spec=run_spec)


def publish_parameters(session: Session, records: Sequence[ParameterRecord],
                       spec: CalibrationRunSpec) -> int:
    """Record a calibration run and make its parameters the current versions (one SAVEPOINT).

    Parameters
    ----------
    session : the caller's session.
    records : one `ParameterRecord` per item (external ids must be in the bank).
    spec : the run's model, method, settings, response filter, fit statistics and publisher.

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
    ids = [r.params.item_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("an item appears twice in the parameters to publish")
    items = _existing_ids(session, ids)
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
        run = CalibrationRun(model=spec.model, method=spec.method, settings=dict(spec.settings),
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
                d=p.d, thresholds=[], se_a=rec.se_a, se_b=rec.se_b, se_c=rec.se_c, se_d=rec.se_d,
                se_thresholds=[], n_responses=rec.n_responses,
                provisional=rec.provisional or spec.provisional, is_current=True, created_at=now))
        session.flush()
    log.info("published calibration run %d (%d items, provisional=%s)", run.id, len(records),
             spec.provisional)
    return run.id


def publish_calibration(session: Session, table: ItemTable, spec: CalibrationRunSpec) -> int:
    """Publish a calibration's output table (`irt.io.ItemTable` with ``se_*``/``n_responses``)."""
    return publish_parameters(session, records_from_table(table, spec.method,
                                                          provisional=spec.provisional), spec)


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


def _enemy_map(session: Session) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for r in session.scalars(select(ItemEnemy)):
        out.setdefault(r.item_id, set()).add(r.enemy_id)
        out.setdefault(r.enemy_id, set()).add(r.item_id)
    return out


def _select_items(session: Session, skills: Sequence[str] | None,
                  statuses: Sequence[str] | None) -> list[Item]:
    stmt = select(Item).join(Skill).order_by(Skill.slug, Item.external_id)
    if skills is not None:
        known = skills_by_slug(session)
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
              statuses: Sequence[str] = ("pretest", "operational")) -> LoadedBank:
    """The current bank for the engine: parameters of every item with a current version.

    Parameters
    ----------
    session : the caller's session.
    skills : skill ids to load (None: all); an unknown id raises `ValueError`.
    statuses : item statuses to load (retired items are left out by default).

    Returns
    -------
    LoadedBank : ``bank`` (`irt.Bank`, ordered by skill then external id), ``items``
        (`ItemMeta` in the same order, including the ``parameter_version_id`` to record with
        each answer) and ``enemy_groups``. Items without parameters are skipped (logged).
    """
    items = _select_items(session, skills, statuses)
    versions = _current_versions(session, [it.id for it in items])
    enemies = _enemy_map(session)
    ext = {it.id: it.external_id for it in items}
    params: list[ItemParams] = []
    metas: list[ItemMeta] = []
    skipped = 0
    for it in items:
        v = versions.get(it.id)
        if v is None:
            skipped += 1
            continue
        params.append(ItemParams(it.external_id, v.model, v.a, v.b, v.c, v.d,
                                 skill=it.skill.slug))
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


def item_content(item: Item, enemies: Iterable[str] = ()) -> ItemContent:
    return ItemContent(item.external_id, item.skill.slug, item.stem,
                       tuple(Option(o["id"], o["text"]) for o in item.options), item.key,
                       item.explanation, item.difficulty_level, tuple(item.tags or ()),
                       tuple(sorted(enemies)), item.status, item.model, item.author)


def export_document(session: Session, skills: Sequence[str] | None = None,
                    statuses: Sequence[str] | None = None, name: str = "") -> BankDocument:
    """The bank (content and current parameters) as a `BankDocument` for the writers."""
    items = _select_items(session, skills, statuses)
    enemies = _enemy_map(session)
    ext = {it.id: it.external_id for it in items}
    # Enemies outside the exported selection are left out so that the file imports on its own.
    contents = [item_content(it, (ext[e] for e in enemies.get(it.id, ()) if e in ext))
                for it in items]
    skill_of = {it.id: it.skill.slug for it in items}
    versions = _current_versions(session, [it.id for it in items])
    records = tuple(
        ParameterRecord(ItemParams(ext[v.item_id], v.model, v.a, v.b, v.c, v.d,
                                   skill=skill_of[v.item_id]),
                        v.se_a, v.se_b, v.se_c, v.se_d, v.n_responses, v.provisional)
        for v in sorted(versions.values(), key=lambda v: ext[v.item_id]))
    used = {c.skill for c in contents}
    skill_rows = [s for s in session.scalars(select(Skill).order_by(Skill.slug))
                  if skills is None or s.slug in used or s.slug in skills]
    return BankDocument("database", tuple(SkillInfo(s.slug, s.name, s.description)
                                          for s in skill_rows),
                        tuple(with_symmetric_enemies(contents)), records, name)


def parameter_history(session: Session, external_id: str) -> list[ItemParameterVersion]:
    """Every parameter version of an item, oldest first."""
    stmt = (select(ItemParameterVersion).join(Item).where(Item.external_id == external_id)
            .order_by(ItemParameterVersion.id))
    return list(session.scalars(stmt))


def exposure_counts(session: Session, item_ids: Sequence[str]) -> ExposureCounts:
    """Administrations per item from the response log, aligned with ``item_ids``."""
    stmt = (select(Item.external_id, func.count(Response.id)).join(Response)
            .group_by(Item.external_id))
    counts = dict(session.execute(stmt).all())
    n_sessions = session.scalar(select(func.count(CandidateSession.id))) or 0
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
                     item_statuses: Sequence[str] | None = None) -> ResponseExport:
    """The response log in long format (``person_id`` = the candidate's public id).

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
            .order_by(Response.answered_at, Response.id))
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


def create_organisation(session: Session, slug: str, name: str) -> Organisation:
    """A new organisation; raises `ValueError` when ``slug`` is taken or malformed."""
    if not SLUG.match(slug or ""):
        raise ValueError(f"field 'slug': expected lower-case letters, digits and '-', got "
                         f"{slug!r}")
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise ValueError(f"field 'slug': an organisation {slug!r} already exists")
    org = Organisation(slug=slug, name=name)
    session.add(org)
    session.flush()
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
                     name=name, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active user with this e-mail and password, else None."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        return None
    return user


def validate_blueprint(session: Session, blueprint: Mapping[str, Any]) -> None:
    """A blueprint needs ``skills``: a non-empty list of known skill ids, or of objects naming
    one in ``skill`` (the engine's `Blueprint.to_dict` form); other keys (limits, rules…) belong
    to the engine and are stored as given."""
    skills = blueprint.get("skills")
    if not isinstance(skills, list) or not skills:
        raise ValueError("blueprint: field 'skills' must be a non-empty list of skill ids")
    known = skills_by_slug(session)
    for s in skills:
        sid = s.get("skill", s.get("id")) if isinstance(s, Mapping) else s
        if sid not in known:
            raise ValueError(f"blueprint: field 'skills': unknown skill {sid!r}")


def create_assessment(session: Session, organisation: Organisation, slug: str, name: str,
                      blueprint: Mapping[str, Any], *, cut_score: float | None = None,
                      time_limit_minutes: int | None = None,
                      created_by: StaffUser | None = None) -> Assessment:
    """A named blueprint owned by ``organisation``; the slug is unique within it."""
    if not SLUG.match(slug or ""):
        raise ValueError(f"field 'slug': expected lower-case letters, digits and '-', got "
                         f"{slug!r}")
    taken = session.scalar(select(Assessment.id).where(
        Assessment.organisation_id == organisation.id, Assessment.slug == slug))
    if taken is not None:
        raise ValueError(f"field 'slug': the organisation already has an assessment {slug!r}")
    validate_blueprint(session, blueprint)
    a = Assessment(organisation_id=organisation.id, slug=slug, name=name,
                   blueprint=dict(blueprint), cut_score=cut_score,
                   time_limit_minutes=time_limit_minutes,
                   created_by_id=created_by.id if created_by else None)
    session.add(a)
    session.flush()
    return a


def find_assessment(session: Session, slug: str | None = None) -> Assessment:
    """The assessment with ``slug``, or the only one when ``slug`` is None."""
    if slug is None:
        rows = list(session.scalars(select(Assessment).limit(2)))
        if len(rows) != 1:
            raise ValueError(f"there are {'no' if not rows else 'several'} assessments; "
                             "name one with --assessment SLUG")
        return rows[0]
    rows = list(session.scalars(select(Assessment).where(Assessment.slug == slug)))
    if not rows:
        raise ValueError(f"no assessment with slug {slug!r}")
    if len(rows) > 1:
        raise ValueError(f"several organisations have an assessment {slug!r}")
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
                  deadline: dt.datetime | None = None) -> tuple[CandidateSession, str]:
    """Open the session of an invitation; returns it and its bearer token (stored hashed).

    Raises `ValueError` for an expired, revoked or already-used invitation.
    """
    if invitation.status not in ("pending",):
        raise ValueError(f"invitation is {invitation.status}")
    if as_utc(invitation.expires_at) <= utcnow():
        invitation.status = "expired"
        session.flush()
        raise ValueError("invitation has expired")
    token = new_token()
    row = CandidateSession(invitation_id=invitation.id, candidate_id=invitation.candidate_id,
                           assessment_id=invitation.assessment_id, token_hash=hash_token(token),
                           deadline=deadline, engine_state=dict(engine_state or {}),
                           blueprint=dict(invitation.assessment.blueprint))
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
                      state: Mapping[str, Any], expected_version: int) -> int:
    """Store the engine's serialized state if nobody saved since ``expected_version``.

    An optimistic check on ``state_version`` (a conditional UPDATE), so two workers answering
    for the same session cannot overwrite each other; raises `ValueError` on a conflict.
    Returns the new version.
    """
    result = session.execute(
        update(CandidateSession)
        .where(CandidateSession.id == test_session.id,
               CandidateSession.state_version == expected_version)
        .values(engine_state=dict(state), state_version=expected_version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ValueError(f"session {test_session.id} was updated concurrently "
                         f"(expected state version {expected_version})")
    # the row now holds exactly these values: record them without another round trip
    set_committed_value(test_session, "engine_state", dict(state))
    set_committed_value(test_session, "state_version", expected_version + 1)
    return expected_version + 1


def record_answer(session: Session, test_session: CandidateSession, state: Mapping[str, Any],
                  expected_version: int, *, item_id: int, position: int, raw_answer: str,
                  score: int, latency_ms: int | None, answered_at: dt.datetime,
                  parameter_version_id: int | None) -> int:
    """Store one answer (a `Response` row) and the engine state after it, if nobody saved the
    state since ``expected_version`` (as `save_engine_state`); returns the new version.

    On PostgreSQL both writes are one statement (one round trip): a data-modifying CTE updates
    the session row and the INSERT takes its values from the CTE's RETURNING, so the answer is
    inserted only when the conditional update matched. Elsewhere: the INSERT, then
    `save_engine_state`. Either way, in the caller's transaction: a duplicate answer raises
    `IntegrityError` (unique session/position and session/item) and a version conflict raises
    `ValueError`, and the caller's rollback undoes both writes.
    """
    values = {"session_id": test_session.id, "item_id": item_id, "position": position,
              "raw_answer": raw_answer, "score": score, "latency_ms": latency_ms,
              "answered_at": answered_at, "parameter_version_id": parameter_version_id}
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(Response).values(**values))
        return save_engine_state(session, test_session, state, expected_version)
    saved = (update(CandidateSession)
             .where(CandidateSession.id == test_session.id,
                    CandidateSession.state_version == expected_version)
             .values(engine_state=dict(state), state_version=expected_version + 1)
             .returning(CandidateSession.id).cte("saved"))
    cols = Response.__table__.c
    taken = [literal(v, cols[k].type).label(k) for k, v in values.items() if k != "session_id"]
    stmt = (insert(Response.__table__)
            .from_select(["session_id", *[c.name for c in taken]], select(saved.c.id, *taken))
            .add_cte(saved))
    inserted = session.execute(stmt.returning(Response.__table__.c.id)).all()
    if len(inserted) != 1:
        raise ValueError(f"session {test_session.id} was updated concurrently "
                         f"(expected state version {expected_version})")
    set_committed_value(test_session, "engine_state", dict(state))
    set_committed_value(test_session, "state_version", expected_version + 1)
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
    item = session.scalar(select(Item).where(Item.external_id == item_external_id))
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


def record_skill_result(session: Session, session_id: int, skill: str, theta: float, se: float,
                        n_items: int, stop_reason: str, *, decision: str | None = None,
                        decision_rule: str | None = None) -> SkillResult:
    """Store a skill's result; ``decision``/``decision_rule`` only when the engine's own
    classification rule decided the skill (both or neither)."""
    skills = skills_by_slug(session)
    if skill not in skills:
        raise ValueError(f"unknown skill {skill!r}")
    if (decision is None) != (decision_rule is None) or decision not in (None, "pass", "fail"):
        raise ValueError(f"skill {skill!r}: decision {decision!r} needs its rule and vice versa")
    row = SkillResult(session_id=session_id, skill_id=skills[skill].id, theta=float(theta),
                      se=float(se), n_items=int(n_items), stop_reason=stop_reason,
                      decision=decision, decision_rule=decision_rule)
    session.add(row)
    session.flush()
    return row


def record_overall_result(session: Session, session_id: int, theta: float, se: float,
                          weights: dict[str, float]) -> OverallResult:
    """Store a session's composite (overall) score with the weights that defined it."""
    if not (math.isfinite(theta) and math.isfinite(se) and se >= 0):
        raise ValueError(f"overall result: theta {theta} and se {se} must be finite, se >= 0")
    row = OverallResult(session_id=session_id, theta=float(theta), se=float(se),
                        weights={str(k): float(v) for k, v in weights.items()})
    session.add(row)
    session.flush()
    return row


def finish_session(session: Session, test_session: CandidateSession,
                   status: str = "completed") -> None:
    if status not in SESSION_STATUSES or status == "in_progress":
        raise ValueError(f"cannot finish a session with status {status!r}")
    test_session.status = status
    test_session.finished_at = utcnow()
    if status == "completed":
        test_session.invitation.status = "completed"
    session.flush()


def session_responses(session: Session, session_id: int) -> list[Response]:
    return list(session.scalars(select(Response).where(Response.session_id == session_id)
                                .order_by(Response.position)))
