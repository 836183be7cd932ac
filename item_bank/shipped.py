"""The Back-End Engineer bank shipped with Proficio (``item_bank/data/backend_engineer``).

The folder holds ``skills.json`` (the manifest), one ``<skill_id>.json`` content file per skill,
and ``parameters.csv``: **provisional** parameters produced by ``scripts/provisional_parameters.py``
(an authored difficulty level mapped to b, a simulated pretest response log from a seeded
generator, then a 3PL MML-EM calibration with a prior on c centred on 1/4, the chance of a blind
guess among four options). Every parameter row is marked ``provisional=true``; real responses
replace them through recalibration (`item_bank.repository.publish_parameters`). Each skill has a
coverage map in ``coverage/`` (`item_bank.coverage`); the writing rules are in
docs/item-writing-guide.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy.orm import Session

from item_bank.content import BankDocument, ItemContent, read_manifest_dir
from item_bank.repository import ImportReport, import_document
from item_bank.stacks import STACK_TAG_PREFIX, STACKS

SHIPPED_BANK = Path(__file__).resolve().parent / "data" / "backend_engineer"
PROVISIONAL_PARAMETERS = SHIPPED_BANK / "parameters.csv"
#: The default design for this bank with tuned exposure control and its measured feasibility
#: (scripts/default_design.py).
DEFAULT_DESIGN = SHIPPED_BANK / "default_design.json"
#: Skill id → external id prefix of its items.
PREFIXES = {"server_side": "SRV", "databases": "DB", "api_design": "API", "security": "SEC",
            "testing": "TST", "devops": "OPS", "version_control": "GIT", "cloud": "CLD"}
MIN_ITEMS_PER_SKILL = 40
#: Every shipped item has this many options: the 3PL prior on c is centred on 1/OPTIONS_PER_ITEM.
OPTIONS_PER_ITEM = 4
#: At most this share of a skill's items may have the key as the unique longest option.
MAX_LONGEST_KEY_SHARE = 0.15


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

    At least 8 skills and `MIN_ITEMS_PER_SKILL` items per skill; `OPTIONS_PER_ITEM` options;
    an explanation; an authored difficulty on every item and a spread from junior (1–2) to
    senior (4–5) in every skill; external ids carry the skill's prefix; enemies stay inside the
    bank and are listed on both sides; stack tags are known `item_bank.stacks.STACKS`; keys
    spread evenly over the option positions of each skill (counts differ by at most one); the
    key is the unique longest option in at most `MAX_LONGEST_KEY_SHARE` of a skill's items.
    The writing rules behind these checks are in docs/item-writing-guide.md.
    """
    problems = []
    if len(doc.skills) < 8:
        problems.append(f"{len(doc.skills)} skills, at least 8 expected")
    per_skill = Counter(it.skill for it in doc.items)
    by_id = {it.external_id: it for it in doc.items}
    ids = set(by_id)
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
        if len(it.options) != OPTIONS_PER_ITEM:
            problems.append(f"{where}: {len(it.options)} options, {OPTIONS_PER_ITEM} expected")
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
            elif it.external_id not in by_id[e].enemies:
                problems.append(f"{where}: enemy {e!r} does not list {it.external_id!r} back")
        for t in it.tags:
            if t.startswith(STACK_TAG_PREFIX) and t[len(STACK_TAG_PREFIX):] not in STACKS:
                problems.append(f"{where}: unknown stack tag {t!r} (known: {sorted(STACKS)})")
    for s in doc.skills:
        items = [it for it in doc.items if it.skill == s.slug]
        if not items:
            continue
        keys = Counter(it.key for it in items)
        positions = Counter({o.id: 0 for it in items for o in it.options}) + keys
        counts = [positions.get(o, 0) for o in sorted({o.id for it in items for o in it.options})]
        if max(counts) - min(counts) > 1:
            problems.append(f"skill {s.slug!r}: keys spread unevenly over positions "
                            f"{dict(sorted(keys.items()))}")
        longest = sum(key_is_unique_longest(it) for it in items)
        if longest > MAX_LONGEST_KEY_SHARE * len(items):
            problems.append(f"skill {s.slug!r}: the key is the unique longest option in "
                            f"{longest} of {len(items)} items (at most "
                            f"{MAX_LONGEST_KEY_SHARE:.0%})")
    return problems


def key_is_unique_longest(item: ItemContent) -> bool:
    """Whether the key is strictly longer (in characters) than every other option."""
    key_len = next(len(o.text.strip()) for o in item.options if o.id == item.key)
    return all(len(o.text.strip()) < key_len for o in item.options if o.id != item.key)
