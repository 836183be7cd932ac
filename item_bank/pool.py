"""The current bank as the engine's own type: `engine.ItemPool` with status, enemy groups, tags
and observed exposure rates (administrations / sessions started) from the response log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from engine import ItemPool
from item_bank.repository import exposure_counts, load_bank


def load_item_pool(session: Session, skills: Sequence[str] | None = None, *,
                   with_exposure: bool = True, bank_id: int | None = None) -> ItemPool:
    """An `engine.ItemPool` of every pretest/operational item of the bank (None: the database's
    only bank) with current parameters."""
    loaded = load_bank(session, skills=skills, bank_id=bank_id)
    rates: dict[str, float] = {}  # none observed: ItemPool treats {} and None alike
    if with_exposure:
        exp = exposure_counts(session, loaded.bank.item_ids, bank_id)
        rates = dict(zip(exp.item_ids, (float(r) for r in exp.rates), strict=True))
    return ItemPool(loaded.bank, status=[m.status for m in loaded.items],
                    enemy_groups=loaded.enemy_groups,
                    tags={m.external_id: m.tags for m in loaded.items}, exposure_rates=rates)
