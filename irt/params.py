"""Item parameters: one validated item (`ItemParams`) and a vectorized bank of them (`Bank`).

Parameterization (logistic, D = 1), see ``irt/__init__.py``:

* dichotomous (``1pl``, ``2pl``, ``3pl``, ``4pl``):
  ``P(θ) = c + (d − c) / (1 + exp(−a(θ − b)))``;
* graded response (``grm``): ``P(X ≥ k) = 1 / (1 + exp(−a(θ − b_k)))``, ``b_1 < … < b_{K−1}``;
* generalized partial credit (``gpcm``): ``P(X = k) ∝ exp(Σ_{v≤k} a(θ − b_v))``.
* the Rasch family, whose items share one slope (usually ``a = 1``, with the latent variance
  estimated instead): ``rasch`` (dichotomous, the 2PL formula with the common ``a``), the
  partial credit model ``pcm`` (Masters 1982; the GPCM formula with the common ``a``) and the
  rating scale model ``rsm`` (Andrich 1978; a PCM whose steps are ``b_ik = b_i + τ_k`` with
  ``τ`` shared by the items of a scale and ``Σ_k τ_k = 0``, so ``b_i`` is the mean step). A bank
  stores an RSM item by its steps ``b_i1 … b_iK``, so it is evaluated exactly as a PCM item.

A slope may be negative: the item then runs against the scale (a reverse-worded or miskeyed
item), which calibration reports; it may not be 0 (``b = −δ/a`` would be undefined).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

DICHOTOMOUS_MODELS = ("1pl", "2pl", "3pl", "4pl", "rasch")
POLYTOMOUS_MODELS = ("grm", "gpcm", "pcm", "rsm")
MODELS = DICHOTOMOUS_MODELS + POLYTOMOUS_MODELS
#: Models whose items share one slope per scale (the Rasch family: latent variance estimated).
RASCH_MODELS = ("rasch", "pcm", "rsm")
#: Partial-credit style models (evaluated by the GPCM formula).
PARTIAL_CREDIT_MODELS = ("gpcm", "pcm", "rsm")

#: Integer codes used in the vectorized kernels.
DICHOTOMOUS, GRM, GPCM = 0, 1, 2
MODEL_CODE = {"1pl": DICHOTOMOUS, "2pl": DICHOTOMOUS, "3pl": DICHOTOMOUS, "4pl": DICHOTOMOUS,
              "rasch": DICHOTOMOUS, "grm": GRM, "gpcm": GPCM, "pcm": GPCM, "rsm": GPCM}


def _finite(item_id: str, name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"item {item_id!r}: field {name!r} is not a number: {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"item {item_id!r}: field {name!r} must be finite, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ItemParams:
    """Parameters of one item, validated on construction.

    Parameters
    ----------
    item_id : stable identifier of the item.
    model : one of ``1pl, 2pl, 3pl, 4pl, rasch, grm, gpcm, pcm, rsm``.
    a : discrimination (finite and non-zero; negative for an item that runs against the scale).
    b : difficulty (dichotomous models; ignored for polytomous ones).
    c, d : lower and upper asymptotes, ``0 <= c < d <= 1`` (dichotomous models).
    thresholds : ``b_1 … b_{K−1}`` for ``grm`` (strictly increasing) and ``gpcm``, ``pcm``,
        ``rsm`` (any order).
    skill : the skill (θ scale) the item measures.
    """

    item_id: str
    model: str = "2pl"
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 1.0
    thresholds: tuple[float, ...] = field(default_factory=tuple)
    skill: str = "default"

    def __post_init__(self) -> None:
        iid = self.item_id
        if not isinstance(iid, str) or not iid:
            raise ValueError(f"item id must be a non-empty string, got {iid!r}")
        model = str(self.model).lower()
        if model not in MODELS:
            raise ValueError(f"item {iid!r}: field 'model' must be one of {MODELS}, "
                             f"got {self.model!r}")
        object.__setattr__(self, "model", model)
        a = _finite(iid, "a", self.a)
        if a == 0:
            raise ValueError(f"item {iid!r}: field 'a' must be non-zero, got {a}")
        object.__setattr__(self, "a", a)
        if model in DICHOTOMOUS_MODELS:
            b = _finite(iid, "b", self.b)
            c = _finite(iid, "c", self.c)
            d = _finite(iid, "d", self.d)
            if model in ("1pl", "2pl", "rasch") and (c != 0.0 or d != 1.0):
                raise ValueError(f"item {iid!r}: model {model} requires c = 0 and d = 1")
            if model == "3pl" and d != 1.0:
                raise ValueError(f"item {iid!r}: model 3pl requires d = 1")
            if not 0.0 <= c < d <= 1.0:
                raise ValueError(f"item {iid!r}: fields 'c', 'd' must satisfy 0 <= c < d <= 1, "
                                 f"got c={c}, d={d}")
            if self.thresholds:
                raise ValueError(f"item {iid!r}: dichotomous model {model} takes no thresholds")
            object.__setattr__(self, "b", b)
            object.__setattr__(self, "c", c)
            object.__setattr__(self, "d", d)
        else:
            th = tuple(_finite(iid, f"b{k + 1}", v) for k, v in enumerate(self.thresholds))
            if len(th) < 1:
                raise ValueError(f"item {iid!r}: model {model} needs at least one threshold b1")
            # P(X ≥ k) = σ(a(θ − b_k)) must fall with k: b_k increasing for a > 0, and
            # decreasing for a negative slope (an item reversed against the scale)
            if model == "grm" and any((th[k] - th[k + 1]) * a >= 0 for k in range(len(th) - 1)):
                order = "increasing" if a > 0 else "decreasing (the slope is negative)"
                raise ValueError(f"item {iid!r}: field 'b1..b{len(th)}' (GRM thresholds) must be "
                                 f"strictly {order}, got {th}")
            object.__setattr__(self, "thresholds", th)
            object.__setattr__(self, "b", float(np.mean(th)))
            object.__setattr__(self, "c", 0.0)
            object.__setattr__(self, "d", 1.0)
        if not isinstance(self.skill, str) or not self.skill:
            raise ValueError(f"item {iid!r}: field 'skill' must be a non-empty string")

    @property
    def n_categories(self) -> int:
        return 2 if self.model in DICHOTOMOUS_MODELS else len(self.thresholds) + 1

    @property
    def is_dichotomous(self) -> bool:
        return self.model in DICHOTOMOUS_MODELS


@dataclass(frozen=True, eq=False)
class Bank:
    """A vectorized set of items, possibly mixing models.

    Arrays have shape ``(n_items,)`` except ``thresholds`` with shape ``(n_items, K_max − 1)``
    (NaN-padded; for dichotomous items column 0 holds ``b``). Build with `Bank.from_params`.
    """

    item_ids: tuple[str, ...]
    skills: tuple[str, ...]
    models: tuple[str, ...]
    model_code: NDArray[np.int8]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    c: NDArray[np.float64]
    d: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    n_categories: NDArray[np.int64]

    @classmethod
    def from_params(cls, items: Iterable[ItemParams]) -> Bank:
        items = list(items)
        ids = tuple(it.item_id for it in items)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            # set.add returns None, so `or` records i and goes on: the first repeated id
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"duplicate item id {dup!r}")
        n = len(items)
        ncat = np.array([it.n_categories for it in items], dtype=np.int64)
        kmax = int(ncat.max()) if n else 2
        th = np.full((n, kmax - 1), np.nan)
        for i, it in enumerate(items):
            if it.is_dichotomous:
                th[i, 0] = it.b
            else:
                th[i, : len(it.thresholds)] = it.thresholds
        return cls(
            item_ids=ids,
            skills=tuple(it.skill for it in items),
            models=tuple(it.model for it in items),
            model_code=np.array([MODEL_CODE[it.model] for it in items], dtype=np.int8),
            a=np.array([it.a for it in items], dtype=float),
            b=np.array([it.b for it in items], dtype=float),
            c=np.array([it.c for it in items], dtype=float),
            d=np.array([it.d for it in items], dtype=float),
            thresholds=th,
            n_categories=ncat,
        )

    @classmethod
    def dichotomous(cls, a: Sequence[float] | NDArray, b: Sequence[float] | NDArray,
                    c: Sequence[float] | NDArray | None = None,
                    d: Sequence[float] | NDArray | None = None,
                    item_ids: Sequence[str] | None = None, skill: str = "default") -> Bank:
        """A dichotomous bank from parameter arrays (model chosen from which of c, d are given)."""
        a = np.asarray(a, dtype=float)
        n = a.shape[0]
        b = np.broadcast_to(np.asarray(b, dtype=float), (n,))
        cc = np.zeros(n) if c is None else np.broadcast_to(np.asarray(c, dtype=float), (n,))
        dd = np.ones(n) if d is None else np.broadcast_to(np.asarray(d, dtype=float), (n,))
        model = "4pl" if d is not None else "3pl" if c is not None else "2pl"
        ids = item_ids if item_ids is not None else [f"i{k + 1:04d}" for k in range(n)]
        return cls.from_params(
            ItemParams(str(ids[k]), model, a[k], b[k], cc[k], dd[k], skill=skill) for k in range(n)
        )

    def __len__(self) -> int:
        return int(self.a.shape[0])

    @property
    def max_categories(self) -> int:
        return int(self.n_categories.max()) if len(self) else 2

    @property
    def all_dichotomous(self) -> bool:
        return bool(np.all(self.model_code == DICHOTOMOUS))

    def params(self) -> list[ItemParams]:
        """The items as validated `ItemParams` values."""
        out = []
        for i in range(len(self)):
            if self.model_code[i] == DICHOTOMOUS:
                out.append(ItemParams(self.item_ids[i], self.models[i], self.a[i], self.b[i],
                                      self.c[i], self.d[i], skill=self.skills[i]))
            else:
                k = int(self.n_categories[i]) - 1
                out.append(ItemParams(self.item_ids[i], self.models[i], self.a[i],
                                      thresholds=tuple(self.thresholds[i, :k]),
                                      skill=self.skills[i]))
        return out

    def take(self, indices: Sequence[int] | NDArray[np.integer]) -> Bank:
        """The sub-bank of the given item positions (order kept)."""
        idx = np.asarray(indices, dtype=np.int64)
        ncat = self.n_categories[idx]
        kmax = int(ncat.max()) if idx.size else 2
        return Bank(
            item_ids=tuple(self.item_ids[i] for i in idx),
            skills=tuple(self.skills[i] for i in idx),
            models=tuple(self.models[i] for i in idx),
            model_code=self.model_code[idx],
            a=self.a[idx], b=self.b[idx], c=self.c[idx], d=self.d[idx],
            thresholds=self.thresholds[idx][:, : kmax - 1],
            n_categories=ncat,
        )

    def rows(self, indices: NDArray[np.integer]) -> Bank:
        """Parameter rows at ``indices`` (repeats allowed), without ids or skills.

        For vectorized evaluation over long-format responses (one row per response); the result
        is for computation only and has empty ``item_ids``/``skills``/``models``.
        """
        idx = np.asarray(indices, dtype=np.int64)
        ncat = self.n_categories[idx]
        kmax = int(ncat.max()) if idx.size else 2
        return Bank((), (), (), self.model_code[idx], self.a[idx], self.b[idx], self.c[idx],
                    self.d[idx], self.thresholds[idx][:, : kmax - 1], ncat)

    def index(self, item_id: str) -> int:
        try:
            return self.item_ids.index(item_id)
        except ValueError:
            raise KeyError(f"unknown item {item_id!r}") from None

    def skill_indices(self, skill: str) -> NDArray[np.int64]:
        return np.flatnonzero(np.asarray(self.skills, dtype=object) == skill)
