"""Psychometrician use cases on the item banks: which banks the caller's organisation may see,
overview, item detail, import, promotion, libraries, copies and pooling consent.

Organisation-scoped like `web.services.staff`: every function takes the caller's organisation
and a bank of its own (`own_bank`; a library of another organisation only where reading is
enough, `readable_bank`); any other bank is reported as not found (`NotFound`), so that its
existence is not revealed.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

import irt
from item_bank import media as media_store
from item_bank import repository as repo
from item_bank.content import SKILL_ID
from item_bank.models import (
    Item,
    ItemBank,
    ItemMedia,
    ItemParameterVersion,
    Organisation,
    Skill,
    StaffUser,
    utcnow,
)
from item_bank.transfer import read_bank_file
from web.db import get_db, unit_of_work

ALLOWED_UPLOADS = (".json", ".csv", ".zip")


class NotFound(LookupError):
    """No such bank (or item) for the caller's organisation."""


def own_bank(org_id: int, bank_id: int | None = None, db: Session | None = None) -> ItemBank:
    """A bank the organisation owns: ``bank_id``, or its first bank when None."""
    db = db or get_db()
    if bank_id is None:
        banks = repo.own_banks(db, org_id)
        if not banks:
            raise NotFound("your organisation has no item bank yet")
        return banks[0]
    bank = db.get(ItemBank, bank_id)
    if bank is None or bank.organisation_id != org_id:
        raise NotFound("no such bank")
    return bank


def readable_bank(org_id: int, bank_id: int | None = None, db: Session | None = None
                  ) -> ItemBank:
    """A bank the organisation owns, or another organisation's library (read-only)."""
    db = db or get_db()
    if bank_id is None:
        return own_bank(org_id, None, db)
    bank = db.get(ItemBank, bank_id)
    if bank is None or (bank.organisation_id != org_id and not bank.library):
        raise NotFound("no such bank")
    return bank


@dataclass(frozen=True)
class BankRow:
    id: int
    slug: str
    name: str
    organisation: str
    own: bool
    library: bool
    pooling_consent: bool


def banks(org_id: int) -> list[BankRow]:
    """The organisation's own banks and every library it may use or copy."""
    db = get_db()
    rows = []
    for b in repo.usable_banks(db, org_id):
        owner = db.get(Organisation, b.organisation_id)
        consent = b.organisation_id != org_id and \
            repo.active_consent(db, org_id, b.id) is not None
        rows.append(BankRow(b.id, b.slug, b.name, owner.slug if owner else "?",
                            b.organisation_id == org_id, b.library, consent))
    return rows


def create_bank(org_id: int, slug: str, name: str) -> BankRow:
    with unit_of_work() as db:
        org = repo.get_organisation(db, org_id)
        b = repo.create_bank(db, org, slug, name)
        return BankRow(b.id, b.slug, b.name, org.slug, True, False, False)


def set_library(org_id: int, bank_id: int, library: bool) -> None:
    with unit_of_work() as db:
        repo.set_library(db, own_bank(org_id, bank_id, db), library)


def copy_bank(org_id: int, bank_id: int, slug: str, name: str) -> BankRow:
    """Copy a library (or an own bank) into a new bank of the organisation."""
    with unit_of_work() as db:
        source = readable_bank(org_id, bank_id, db)
        org = repo.get_organisation(db, org_id)
        b = repo.copy_bank(db, source, org, slug, name)
        return BankRow(b.id, b.slug, b.name, org.slug, True, False, False)


def set_pooling_consent(org_id: int, user_id: int, bank_id: int, consent: bool) -> None:
    """Record (or withdraw) the organisation's consent to pool its candidates' responses into
    the calibrations of another organisation's library ``bank_id``."""
    with unit_of_work() as db:
        bank = readable_bank(org_id, bank_id, db)
        if bank.organisation_id == org_id:
            raise ValueError("an organisation's own responses always calibrate its own banks; "
                             "consent is given to another organisation's library")
        user = db.get(StaffUser, user_id)
        if consent:
            repo.grant_pooling_consent(db, org_id, bank, user)
        else:
            repo.revoke_pooling_consent(db, org_id, bank.id, user)


@dataclass(frozen=True)
class ItemRow:
    external_id: str
    skill: str
    status: str
    model: str
    a: float | None
    b: float | None
    c: float | None
    se_a: float | None
    se_b: float | None
    n_responses: int | None
    provisional: bool
    exposure: float


@dataclass(frozen=True)
class SkillSummary:
    slug: str
    name: str
    counts: dict[str, int]


def overview(bank_id: int) -> tuple[list[SkillSummary], list[ItemRow]]:
    """Skills and items of a bank (checked by the caller: `own_bank`)."""
    db = get_db()
    items = list(db.scalars(select(Item).join(Skill).where(Item.bank_id == bank_id)
                            .order_by(Skill.slug, Item.external_id)))
    current = {v.item_id: v for v in db.scalars(
        select(ItemParameterVersion).join(Item, ItemParameterVersion.item_id == Item.id)
        .where(Item.bank_id == bank_id, ItemParameterVersion.is_current.is_(True)))}
    exposure = repo.exposure_counts(db, [it.external_id for it in items], bank_id)
    rates = dict(zip(exposure.item_ids, exposure.rates, strict=True))
    rows = []
    summaries: dict[str, SkillSummary] = {}
    for it in items:
        v = current.get(it.id)
        rows.append(ItemRow(it.external_id, it.skill.slug, it.status, it.model,
                            v.a if v else None, v.b if v else None, v.c if v else None,
                            v.se_a if v else None, v.se_b if v else None,
                            v.n_responses if v else None, bool(v and v.provisional),
                            float(rates.get(it.external_id, 0.0))))
        summary = summaries.setdefault(it.skill.slug, SkillSummary(it.skill.slug, it.skill.name,
                                                                   {}))
        summary.counts[it.status] = summary.counts.get(it.status, 0) + 1
    return list(summaries.values()), rows


@dataclass(frozen=True)
class ItemDetail:
    item: Item
    history: list[ItemParameterVersion]
    icc_theta: list[float]
    icc_p: list[float]
    media: tuple[ItemMedia, ...] = ()


def item_detail(bank_id: int, external_id: str) -> ItemDetail:
    db = get_db()
    item = db.scalar(select(Item).where(Item.bank_id == bank_id, Item.external_id == external_id))
    if item is None:
        raise NotFound(f"no item {external_id!r}")
    history = repo.parameter_history(db, external_id, bank_id)
    current = next((v for v in history if v.is_current), None)
    theta = np.linspace(-4, 4, 81)
    p: list[float] = []
    if current is not None and current.model in irt.DICHOTOMOUS_MODELS:
        bank = irt.Bank.from_params([repo.version_params(current, external_id, "default")])
        p = irt.probability(theta, bank)[:, 0].tolist()
    return ItemDetail(item, history, theta.tolist(), p,
                      tuple(media_store.item_media(db, item.id)))


def import_upload(bank_id: int, filename: str, data: bytes, *, replace: bool = False,
                  strict: bool = False, default_skill: str | None = None,
                  prefix: str | None = None) -> repo.ImportReport:
    """Import an uploaded bank file (JSON, CSV or QTI zip) into an own bank. All or nothing
    (QTI items Proficio cannot deliver are skipped and reported unless ``strict``)."""
    if default_skill is not None and not SKILL_ID.match(default_skill):
        raise ValueError(f"field 'skill': must be a skill id like 'server_side', got "
                         f"{default_skill!r}")
    safe = secure_filename(filename or "")
    suffix = Path(safe).suffix.lower()
    if suffix not in ALLOWED_UPLOADS:
        raise ValueError(f"field 'file': expected a {', '.join(ALLOWED_UPLOADS)} file, "
                         f"got {filename!r}")
    shown = Path(safe).stem[:80] + suffix
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / shown
        path.write_bytes(data)
        try:
            doc = read_bank_file(path, default_skill=default_skill, strict=strict,
                                 prefix=prefix)
        except (ValueError, OSError) as exc:
            # messages name the file read: the upload's name, never the server's temp folder
            raise ValueError(str(exc).replace(str(path), shown).replace(tmp, "")) from None
        doc = dataclasses.replace(doc, source=shown)
        with unit_of_work() as db:
            return repo.import_document(db, doc, replace=replace, bank_id=bank_id)


def item_media(bank_id: int, external_id: str, name: str) -> tuple[str, bytes]:
    """``(content type, bytes)`` of an image of an item of an own bank (`NotFound` else)."""
    found = media_store.find(get_db(), bank_id, external_id, name)
    if found is None:
        raise NotFound(f"item {external_id!r} has no image {name!r}")
    return found.content_type, media_store.read(found)


def upload_media(bank_id: int, external_id: str, filename: str | None, alt: str,
                 data: bytes) -> str:
    """Store an uploaded image with an item of an own bank; returns its stored name.

    Refused with `ValueError` naming the field: no file, no alt text, over
    `item_bank.media.MAX_MEDIA_BYTES`, or not PNG/JPEG/GIF/WebP (SVG is refused)."""
    safe = secure_filename(filename or "")
    if not safe:
        raise ValueError("field 'file': choose an image to upload")
    if not alt.strip():
        raise ValueError("field 'alt': describe the image for screen readers (alt text is "
                         "required)")
    try:
        media_store.content_type(safe, data)
    except media_store.MediaError as exc:
        raise ValueError(f"field 'file': {exc}") from None
    with unit_of_work() as db:
        item = db.scalar(select(Item).where(Item.bank_id == bank_id,
                                            Item.external_id == external_id))
        if item is None:
            raise NotFound(f"no item {external_id!r}")
        try:
            media_store.store(db, item, safe[:100], alt[:1000], data)
        except media_store.MediaError as exc:
            raise ValueError(f"field 'file': {exc}") from None
        item.updated_at = utcnow()  # the live assessments' fingerprint changes
    return safe[:100]


def set_status(bank_id: int, external_id: str, status: str) -> None:
    """Promote a pretest item to operational, hold it (not served, e.g. while it may be
    compromised), or retire it."""
    if status not in ("operational", "retired", "pretest", "held"):
        raise ValueError(f"field 'status': unknown status {status!r}")
    with unit_of_work() as db:
        item = db.scalar(select(Item).where(Item.bank_id == bank_id,
                                            Item.external_id == external_id))
        if item is None:
            raise NotFound(f"no item {external_id!r}")
        if status == "operational":
            current = db.scalar(select(ItemParameterVersion)
                                .where(ItemParameterVersion.item_id == item.id,
                                       ItemParameterVersion.is_current.is_(True)))
            if current is None:
                raise ValueError(f"item {external_id!r} has no parameters yet; calibrate it "
                                 "before promoting it")
        item.status = status
