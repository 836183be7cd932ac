"""Technology stacks that some items assume, as item tags ``stack:<id>``.

Most items of the shipped bank are stack-neutral. An item whose key depends on one product's
behaviour (CPython's GIL, PostgreSQL's MVCC, an AWS pricing rule, a Kubernetes object) carries a
``stack:<id>`` tag instead (docs/item-writing-guide.md, "Stack neutrality"). An assessment can
leave a stack out: its blueprint's ``exclude_tags`` then holds ``stack:<id>`` and the engine never
serves those items (`engine.Blueprint.exclude_tags`). The candidate's welcome page lists the
stacks that the remaining items assume (`assumed_stacks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import Blueprint
from item_bank.models import Item, Skill

STACK_TAG_PREFIX = "stack:"
#: Stack id → the name shown to people.
STACKS = {
    "python": "Python",
    "postgresql": "PostgreSQL",
    "aws": "AWS",
    "kubernetes": "Kubernetes",
    "terraform": "Terraform",
}


def stack_tag(stack: str) -> str:
    """The tag of ``stack`` (``python`` → ``stack:python``); `ValueError` for an unknown id."""
    stack = stack.strip().lower()
    if stack.startswith(STACK_TAG_PREFIX):
        stack = stack[len(STACK_TAG_PREFIX):]
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}; known stacks: {', '.join(sorted(STACKS))}")
    return STACK_TAG_PREFIX + stack


def stacks_of(tags: Iterable[str]) -> set[str]:
    """The stack ids named by ``tags``."""
    return {t[len(STACK_TAG_PREFIX):] for t in tags if t.startswith(STACK_TAG_PREFIX)}


def stack_names(stacks: Iterable[str]) -> tuple[str, ...]:
    """Display names of stack ids, sorted (unknown ids shown as given)."""
    return tuple(sorted(STACKS.get(s, s) for s in set(stacks)))


def assumed_stacks(session: Session, skills: Sequence[str] | None = None,
                   exclude_tags: Iterable[str] = ()) -> tuple[str, ...]:
    """Display names of the stacks that the servable items of ``skills`` (all skills when
    None) assume, leaving out items that carry any of ``exclude_tags`` (the blueprint's)."""
    excluded = set(exclude_tags)
    query = select(Item.tags).where(Item.status.in_(("operational", "pretest")))
    if skills:
        query = query.join(Skill, Skill.id == Item.skill_id).where(Skill.slug.in_(list(skills)))
    found: set[str] = set()
    for tags in session.scalars(query):
        tags = tuple(tags or ())
        if excluded.intersection(tags):
            continue
        found |= stacks_of(tags)
    return stack_names(found)


def excluding_stacks(blueprint: Blueprint, stacks: Iterable[str]) -> Blueprint:
    """``blueprint`` with the items of ``stacks`` excluded (their ``stack:`` tags added to
    ``exclude_tags``); `ValueError` naming an unknown stack. The CLI (`proficio assessment
    create --exclude-stack`) and any form that creates an assessment call this."""
    tags = [stack_tag(s) for s in stacks]
    if not tags:
        return blueprint
    return replace(blueprint, exclude_tags=tuple(dict.fromkeys((*blueprint.exclude_tags,
                                                                 *tags))))
