"""Coverage maps: which topics of a skill a bank covers, at which difficulty levels.

A bank folder may hold ``coverage/<skill_id>.json``, written by the item authors::

    {"format": "proficio-coverage/1", "skill": "server_side",
     "topics": [{"id": "retries", "name": "Retries, backoff and jitter",
                 "tags": ["retries"], "items": ["SRV-039"], "levels": [1, 2, 4, 5]}]}

A topic's items are the skill's items carrying any of its ``tags``, plus those listed in
``items``. ``levels`` is what the topic claims: it must have at least one item at each claimed
level (1 junior … 5 senior). `coverage_problems` checks that, and that every item of the skill
belongs to some topic, so the map stays true as items are added, relabelled or retired.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from irt.io import FormatError
from item_bank.content import BankDocument, ItemContent

COVERAGE_FORMAT = "proficio-coverage/1"


@dataclass(frozen=True)
class CoverageTopic:
    id: str
    name: str
    levels: tuple[int, ...]
    tags: tuple[str, ...] = ()
    items: tuple[str, ...] = ()

    def members(self, items: Sequence[ItemContent]) -> list[ItemContent]:
        """The items (of one skill) that belong to this topic."""
        tags, ids = set(self.tags), set(self.items)
        return [it for it in items if it.external_id in ids or tags.intersection(it.tags)]


@dataclass(frozen=True)
class CoverageMap:
    skill: str
    topics: tuple[CoverageTopic, ...]
    source: str = ""


def _int_levels(where: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in value):
        raise FormatError(f"{where}: field 'levels': expected a non-empty list of levels 1-5")
    return tuple(sorted(set(value)))


def _strings(where: str, fld: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FormatError(f"{where}: field {fld!r}: expected a list of non-empty strings")
    return tuple(value)


def read_coverage_map(path: str | Path) -> CoverageMap:
    """Read and validate one coverage map file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(raw, dict) or raw.get("format") != COVERAGE_FORMAT:
        raise FormatError(f"{path}: field 'format': expected {COVERAGE_FORMAT!r}")
    skill = raw.get("skill")
    if not isinstance(skill, str) or not skill:
        raise FormatError(f"{path}: field 'skill': expected a skill id")
    topics, seen = [], set()
    for k, t in enumerate(raw.get("topics") or []):
        where = f"{path}: topics[{k}]"
        if not isinstance(t, dict) or not isinstance(t.get("id"), str) or not t["id"]:
            raise FormatError(f"{where}: expected an object with an 'id'")
        if t["id"] in seen:
            raise FormatError(f"{where}: field 'id': duplicate topic {t['id']!r}")
        seen.add(t["id"])
        tags, items = _strings(where, "tags", t.get("tags")), _strings(where, "items",
                                                                        t.get("items"))
        if not tags and not items:
            raise FormatError(f"{where}: a topic needs 'tags' or 'items'")
        topics.append(CoverageTopic(t["id"], str(t.get("name") or t["id"]),
                                    _int_levels(where, t.get("levels")), tags, items))
    if not topics:
        raise FormatError(f"{path}: field 'topics': expected at least one topic")
    return CoverageMap(skill, tuple(topics), str(path))


def read_coverage_dir(folder: str | Path) -> list[CoverageMap]:
    """Every ``*.json`` map of a ``coverage/`` folder (empty list when there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [read_coverage_map(p) for p in sorted(folder.glob("*.json"))]


def coverage_problems(doc: BankDocument, maps: Sequence[CoverageMap]) -> list[str]:
    """What the maps claim and the bank does not hold (empty list = the maps are true).

    Per map: the skill exists; listed items exist in that skill; every topic has an item at
    each level it claims; every item of the skill belongs to at least one topic.
    """
    problems = []
    skills = {s.slug for s in doc.skills} | {it.skill for it in doc.items}
    for m in maps:
        if m.skill not in skills:
            problems.append(f"{m.source}: skill {m.skill!r} is not in the bank")
            continue
        items = [it for it in doc.items if it.skill == m.skill]
        ids = {it.external_id for it in items}
        covered: set[str] = set()
        for t in m.topics:
            for iid in t.items:
                if iid not in ids:
                    problems.append(f"{m.source}: topic {t.id!r}: item {iid!r} is not in "
                                    f"skill {m.skill!r}")
            members = t.members(items)
            covered.update(it.external_id for it in members)
            have = {it.difficulty for it in members}
            missing = [lv for lv in t.levels if lv not in have]
            if missing:
                problems.append(f"{m.source}: topic {t.id!r} claims level(s) {missing} but has "
                                f"no item there (its items: "
                                f"{sorted(it.external_id for it in members)})")
        orphans = sorted(ids - covered)
        if orphans:
            problems.append(f"{m.source}: items of {m.skill!r} in no topic: {orphans}")
    return problems
