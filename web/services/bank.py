"""Psychometrician use cases on the item bank: overview, item detail, import, promotion."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from werkzeug.utils import secure_filename

import irt
from item_bank import repository as repo
from item_bank.models import Item, ItemParameterVersion, Skill
from item_bank.transfer import read_bank_file
from web.db import get_db, unit_of_work

ALLOWED_UPLOADS = (".json", ".csv", ".zip")


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


def overview() -> tuple[list[SkillSummary], list[ItemRow]]:
    db = get_db()
    items = list(db.scalars(select(Item).join(Skill).order_by(Skill.slug, Item.external_id)))
    current = {v.item_id: v for v in db.scalars(
        select(ItemParameterVersion).where(ItemParameterVersion.is_current.is_(True)))}
    exposure = repo.exposure_counts(db, [it.external_id for it in items])
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


def item_detail(external_id: str) -> ItemDetail:
    db = get_db()
    item = db.scalar(select(Item).where(Item.external_id == external_id))
    if item is None:
        raise LookupError(f"no item {external_id!r}")
    history = repo.parameter_history(db, external_id)
    current = next((v for v in history if v.is_current), None)
    theta = np.linspace(-4, 4, 81)
    p: list[float] = []
    if current is not None and current.model in irt.DICHOTOMOUS_MODELS:
        bank = irt.Bank.from_params([irt.ItemParams(external_id, current.model, current.a,
                                                    current.b, current.c or 0.0,
                                                    current.d if current.d is not None else 1.0)])
        p = irt.probability(theta, bank)[:, 0].tolist()
    return ItemDetail(item, history, theta.tolist(), p)


def import_upload(filename: str, data: bytes, *, replace: bool = False) -> repo.ImportReport:
    """Import an uploaded bank file (JSON, CSV or QTI zip). All or nothing."""
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
            doc = read_bank_file(path)
        except (ValueError, OSError) as exc:
            # messages name the file read: the upload's name, never the server's temp folder
            raise ValueError(str(exc).replace(str(path), shown).replace(tmp, "")) from None
        doc = dataclasses.replace(doc, source=shown)
        with unit_of_work() as db:
            return repo.import_document(db, doc, replace=replace)


def set_status(external_id: str, status: str) -> None:
    """Promote a pretest item to operational, or retire an item."""
    if status not in ("operational", "retired", "pretest"):
        raise ValueError(f"field 'status': unknown status {status!r}")
    with unit_of_work() as db:
        item = db.scalar(select(Item).where(Item.external_id == external_id))
        if item is None:
            raise LookupError(f"no item {external_id!r}")
        if status == "operational":
            current = db.scalar(select(ItemParameterVersion)
                                .where(ItemParameterVersion.item_id == item.id,
                                       ItemParameterVersion.is_current.is_(True)))
            if current is None:
                raise ValueError(f"item {external_id!r} has no parameters yet; calibrate it "
                                 "before promoting it")
        item.status = status
