"""The Back-End Engineer bank shipped with Proficio (``item_bank/data/backend_engineer``).

The folder holds ``skills.json`` (the manifest), one ``<skill_id>.json`` content file per skill,
and ``parameters.csv``: **provisional** parameters produced by ``scripts/provisional_parameters.py``
(an authored difficulty level mapped to b, a simulated pretest response log from a seeded
generator, then an MML-EM calibration). Every parameter row is marked ``provisional=true``; real
responses replace them through recalibration (`item_bank.repository.publish_parameters`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy.orm import Session

from item_bank.content import BankDocument, read_manifest_dir
from item_bank.repository import ImportReport, import_document

SHIPPED_BANK = Path(__file__).resolve().parent / "data" / "backend_engineer"
PROVISIONAL_PARAMETERS = SHIPPED_BANK / "parameters.csv"
#: Skill id → external id prefix of its items.
PREFIXES = {"server_side": "SRV", "databases": "DB", "api_design": "API", "security": "SEC",
            "testing": "TST", "devops": "OPS", "version_control": "GIT", "cloud": "CLD"}
MIN_ITEMS_PER_SKILL = 25


def read_shipped() -> BankDocument:
    """The shipped content with its provisional parameters (validated).

    The manifest sets ``"item_status": "operational"``: shipped items are scored from the start,
    on parameters that ``parameters.csv`` marks provisional until real responses recalibrate them.
    """
    return read_manifest_dir(SHIPPED_BANK)


def import_shipped(session: Session, bank_id: int | None = None) -> ImportReport:
    """Import the shipped bank (content and provisional parameters) into an empty bank."""
    return import_document(session, read_shipped(), bank_id=bank_id)


def quality_problems(doc: BankDocument) -> list[str]:
    """Checks beyond validity that the shipped bank promises (empty list = all good).

    At least 8 skills and 25 items per skill; 4 or 5 options; an explanation; an authored
    difficulty on every item and a spread from junior (1–2) to senior (4–5) in every skill;
    external ids carry the skill's prefix; enemies stay inside the bank.
    """
    problems = []
    if len(doc.skills) < 8:
        problems.append(f"{len(doc.skills)} skills, at least 8 expected")
    per_skill = Counter(it.skill for it in doc.items)
    ids = {it.external_id for it in doc.items}
    for s in doc.skills:
        n = per_skill.get(s.slug, 0)
        if n < MIN_ITEMS_PER_SKILL:
            problems.append(f"skill {s.slug!r}: {n} items, at least {MIN_ITEMS_PER_SKILL} "
                            f"expected")
        levels = {it.difficulty for it in doc.items if it.skill == s.slug}
        if n and not (levels & {1, 2} and levels & {4, 5}):
            problems.append(f"skill {s.slug!r}: difficulty levels {sorted(levels, key=str)} do "
                            f"not span junior (1-2) to senior (4-5)")
    for it in doc.items:
        where = f"item {it.external_id!r} ({it.skill})"
        if not 4 <= len(it.options) <= 5:
            problems.append(f"{where}: {len(it.options)} options, 4 or 5 expected")
        if not it.explanation.strip():
            problems.append(f"{where}: no explanation")
        if it.difficulty is None:
            problems.append(f"{where}: no difficulty level")
        prefix = PREFIXES.get(it.skill)
        if prefix and not it.external_id.startswith(prefix + "-"):
            problems.append(f"{where}: id should start with {prefix}-")
        for e in it.enemies:
            if e not in ids:
                problems.append(f"{where}: enemy {e!r} is not in the bank")
    return problems
