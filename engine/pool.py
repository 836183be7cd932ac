"""The item pool a CAT draws from, and the per-bank tables the engine precomputes once.

`ItemPool` is built from plain values (an `irt.Bank` plus per-item status, enemy groups, tags and
observed exposure rates) so the item bank package can construct it from its rows. `compile_bank`
turns a bank into grid tables (``log P`` per item, category and node; Fisher information per node)
and per-skill parameter arrays, cached per `Bank` object and grid.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

import irt
from engine.errors import ConfigurationError
from irt import kernels

#: The statuses an item can have; only operational items are selected adaptively.
ITEM_STATUSES = ("operational", "pretest", "retired")
#: Probabilities are clipped to this floor before taking logs.
PROB_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)
class ItemPool:
    """An item bank with the per-item facts selection needs.

    Parameters
    ----------
    bank : the items (any mix of models); each item belongs to exactly one skill.
    status : per item, ``'operational'`` (default), ``'pretest'`` (served unscored only, at the
        blueprint's pretest positions) or ``'retired'`` (never served).
    enemy_groups : groups of item ids of which at most one may appear in a session.
    tags : item id → tags; a blueprint may exclude items carrying given tags.
    exposure_rates : item id → observed exposure rate (share of sessions that saw it), used by
        the hard exposure cap.
    """

    bank: irt.Bank
    _: KW_ONLY
    # None is accepted for the three below and normalized: all operational, no tags, no rates
    status: Sequence[str] = ()
    enemy_groups: Sequence[Sequence[str]] = ()
    tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    exposure_rates: Mapping[str, float] = field(default_factory=dict)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bank = self.bank
        if not isinstance(bank, irt.Bank):
            raise ConfigurationError(f"ItemPool needs an irt.Bank, got {type(bank).__name__}")
        n = len(bank)
        index = {iid: k for k, iid in enumerate(bank.item_ids)}
        object.__setattr__(self, "_index", index)
        status = ("operational",) * n if not self.status else tuple(self.status)
        if len(status) != n:
            raise ConfigurationError(f"status has {len(status)} entries for {n} items")
        for k, s in enumerate(status):
            if s not in ITEM_STATUSES:
                raise ConfigurationError(f"item {bank.item_ids[k]!r}: status {s!r} is not one of "
                                         f"{ITEM_STATUSES}")
        object.__setattr__(self, "status", status)
        groups = []
        for g, group in enumerate(self.enemy_groups):
            ids = tuple(str(i) for i in group)
            for iid in ids:
                if iid not in index:
                    raise ConfigurationError(f"enemy group {g}: unknown item {iid!r}")
            groups.append(ids)
        object.__setattr__(self, "enemy_groups", tuple(groups))
        tags = {}
        for iid, values in (self.tags or {}).items():
            if iid not in index:
                raise ConfigurationError(f"tags: unknown item {iid!r}")
            tags[iid] = tuple(str(t) for t in values)
        object.__setattr__(self, "tags", tags)
        rates = {}
        for iid, r in (self.exposure_rates or {}).items():
            if iid not in index:
                raise ConfigurationError(f"exposure_rates: unknown item {iid!r}")
            r = float(r)
            if not 0.0 <= r <= 1.0:
                raise ConfigurationError(f"exposure_rates: item {iid!r} has rate {r}, "
                                         f"expected 0 <= rate <= 1")
            rates[iid] = r
        object.__setattr__(self, "exposure_rates", rates)

    def __len__(self) -> int:
        return len(self.bank)

    def index(self, item_id: str) -> int:
        """Position of ``item_id`` in the bank; `KeyError` if unknown."""
        return self._index[item_id]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def enemies(self) -> list[NDArray[np.int64]]:
        """Per item, the positions of its enemies (empty arrays for most items)."""
        out: list[list[int]] = [[] for _ in range(len(self.bank))]
        for group in self.enemy_groups:
            pos = [self._index[i] for i in group]
            for p in pos:
                out[p].extend(q for q in pos if q != p)
        return [np.unique(np.asarray(o, dtype=np.int64)) for o in out]

    def rates_array(self) -> NDArray[np.float64]:
        """Observed exposure rates as an array over the bank (0 where unknown)."""
        out = np.zeros(len(self.bank))
        for iid, r in self.exposure_rates.items():
            out[self._index[iid]] = r
        return out


def as_pool(pool: ItemPool | irt.Bank) -> ItemPool:
    return pool if isinstance(pool, ItemPool) else ItemPool(pool)


@dataclass(frozen=True, eq=False)
class SkillTables:
    """Parameter arrays of one skill's items (positions ``idx`` in the bank, ascending)."""

    skill: str
    idx: NDArray[np.int64]
    bank: irt.Bank
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    c: NDArray[np.float64]
    d: NDArray[np.float64]
    a2: NDArray[np.float64]
    all_2pl: bool
    all_dichotomous: bool
    dich: NDArray[np.bool_]
    two_pl: NDArray[np.bool_]  # 2PL items (c = 0, d = 1): information in the logistic form
    info_grid: NDArray[np.float64]  # (n_nodes, m)
    _extra: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def information(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fisher information of the skill's items at each ``theta``: shape ``(n, m)``.
        ``theta`` is one θ per row ``(n,)``, or, for dichotomous items only, one per row and
        item ``(n, m)`` (a bank-wide criterion, each item at its own skill's θ).

        Dichotomous items through `irt.kernels` (2PL ``a² σ(x)σ(−x)``, else ``P′²/(PQ)``, Lord
        1980, eq. 5-6), polytomous items through `irt.item_information` (``Σ_k P_k′² / P_k``).
        """
        if self.all_2pl:
            return kernels.logistic_information(theta, self.a, self.b, self.a2)
        col = theta[:, None] if theta.ndim == 1 else theta
        if self.all_dichotomous and not self.two_pl.any():
            return kernels.dichotomous_information(col, self.a, self.b, self.c, self.d)
        # each item by its own model's form, whichever items share the table
        out = np.empty((theta.shape[0], len(self)))
        for sel, two in ((self.two_pl, True), (self.dich & ~self.two_pl, False)):
            if sel.any():
                t = col if col.shape[1] == 1 else col[:, sel]
                out[:, sel] = (kernels.logistic_information(t, self.a[sel], self.b[sel])
                               if two else kernels.dichotomous_information(
                                   t, self.a[sel], self.b[sel], self.c[sel], self.d[sel]))
        if not self.all_dichotomous:
            out[:, ~self.dich] = irt.item_information(theta, self._extra["poly_bank"])
        return out

    def cached(self, key: object, compute: Callable[[], Any]) -> Any:
        """A value derived from these tables, computed once (e.g. a selector's strata)."""
        if key not in self._extra:
            self._extra[key] = compute()
        return self._extra[key]

    @classmethod
    def build(cls, skill: str, idx: NDArray[np.int64], bank: irt.Bank,
              nodes: NDArray[np.float64] | None = None) -> SkillTables:
        """The tables of items ``idx`` of ``bank`` (information on ``nodes`` when given)."""
        sub = bank.take(idx)
        dich = sub.model_code == 0
        extra: dict = {}
        if not dich.all():
            extra["poly_bank"] = sub.take(np.flatnonzero(~dich))
        two_pl = dich & (sub.c == 0.0) & (sub.d == 1.0)
        tables = cls(skill=skill, idx=idx, bank=sub, a=sub.a.copy(), b=sub.b.copy(),
                     c=sub.c.copy(), d=sub.d.copy(), a2=sub.a * sub.a, all_2pl=bool(two_pl.all()),
                     all_dichotomous=bool(dich.all()), dich=dich, two_pl=two_pl,
                     info_grid=np.empty((0, 0)), _extra=extra)
        if nodes is not None:
            object.__setattr__(tables, "info_grid",
                               np.ascontiguousarray(tables.information(nodes)))
        return tables

    def category_probabilities(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """``P(X = k | θ)`` for each θ and item: shape ``(n, m, K_max)``."""
        return irt.category_probabilities(theta, self.bank)


@dataclass(frozen=True, eq=False)
class CompiledBank:
    """Grid tables of a bank: ``log_p[i, k, q] = log P_ik(θ_q)`` (clipped) and per-skill arrays."""

    nodes: NDArray[np.float64]
    log_p: NDArray[np.float64]  # (n_items, K_max, n_nodes), contiguous per (item, category)
    skills: dict[str, SkillTables]
    skill_of: NDArray[np.int64]  # position of each item's skill in `skill_names`
    skill_names: tuple[str, ...]
    _llr: dict = field(default_factory=dict, repr=False)
    _bank_ref: Callable[[], irt.Bank | None] = field(default=lambda: None, repr=False)

    def log_likelihood_ratio(self, upper: float, lower: float) -> NDArray[np.float64]:
        """``log P_ik(upper) − log P_ik(lower)`` per item and category: ``(n_items, K_max)``.

        Used by the SPRT (Wald 1947; Reckase 1983) at the cut score ± δ.
        """
        key = (float(upper), float(lower))
        if key not in self._llr:
            bank = self._bank_ref()
            if bank is None:
                raise ConfigurationError("the compiled bank is gone")
            p = np.clip(irt.category_probabilities(np.array([upper, lower]), bank),
                        PROB_FLOOR, 1.0)
            self._llr[key] = np.log(p[0]) - np.log(p[1])
        return self._llr[key]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compile_bank(bank: irt.Bank, grid: tuple[float, float, int]) -> CompiledBank:
    """The grid tables of ``bank`` (cached per Bank object and grid)."""
    per_bank = _CACHE.setdefault(bank, {})
    key = (float(grid[0]), float(grid[1]), int(grid[2]))
    hit = per_bank.get(key)
    if hit is not None:
        return hit
    nodes = np.linspace(key[0], key[1], key[2])  # validated by the Blueprint
    probs = irt.category_probabilities(nodes, bank)  # (Q, n, K)
    log_p = np.ascontiguousarray(np.log(np.clip(probs, PROB_FLOOR, 1.0)).transpose(1, 2, 0))
    names = tuple(dict.fromkeys(bank.skills))
    skill_pos = {s: k for k, s in enumerate(names)}
    skill_of = np.array([skill_pos[s] for s in bank.skills], dtype=np.int64)
    skills = {s: SkillTables.build(s, np.flatnonzero(skill_of == skill_pos[s]).astype(np.int64),
                                   bank, nodes) for s in names}
    compiled = CompiledBank(nodes, log_p, skills, skill_of, names,
                            _bank_ref=weakref.ref(bank))
    per_bank[key] = compiled
    return compiled
