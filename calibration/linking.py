"""Linking two calibrations through common items: mean–mean, mean–sigma, Haebara, Stocking–Lord.

Two separate calibrations put θ on two scales. For the *new* ("from") calibration and the *base*
("to") calibration the scales are related by ``θ_base = A θ_new + B``, and an item's parameters
move with the scale so that its response curves do not change (Lord 1980; Kolen & Brennan
2004, ch. 6):

``a* = a / A``,  ``b* = A b + B`` (every ``b_k`` of a GRM/GPCM item),  ``c* = c``,  ``d* = d``.

Methods, over the common items ``j = 1…n``:

* **mean–mean** (Loyd & Hoover 1980): ``A = mean(a_new) / mean(a_base)``,
  ``B = mean(b_base) − A mean(b_new)``;
* **mean–sigma** (Marco 1977): ``A = sd(b_base) / sd(b_new)``, same ``B``
  (every location parameter ``b`` or ``b_k`` of the common items enters the means and SDs);
* **Haebara** (1980): minimize over (A, B)
  ``H = Σ_q w_q Σ_j Σ_k [P_jk(θ_q; base) − P_jk(θ_q; new*)]²``;
* **Stocking–Lord** (1983): minimize over (A, B)
  ``SL = Σ_q w_q [Σ_j E_j(θ_q; base) − Σ_j E_j(θ_q; new*)]²``,

with ``new*`` the new parameters transformed by (A, B), and ``θ_q, w_q`` a grid on the base
scale (default: 41 equally spaced nodes on ±4 with N(0, 1) weights). Both criteria are minimized
with L-BFGS-B (scipy.optimize) from the mean–sigma solution, over ``(u, v) = (1/A, B/A)`` with an
analytic gradient (see `_criterion`). These are the one-directional
("non-symmetric") criteria, plink's default (Weeks 2010).

**Anchor purification.** A common item whose parameters truly changed between the two
calibrations (drift, exposure, a key change) pulls the transformation. With ``purify=True`` the
linking is repeated, each time dropping the common item with the largest displacement
``|b*_new − b_base|`` (for polytomous items the mean of the thresholds) while it exceeds
``purify_threshold`` logits and more than ``min_common`` items remain (the iterative
"drop the worst anchor and relink" rule of Candell & Drasgow 1988 in its simplest form).

References: Lord (1980); Marco (1977); Loyd & Hoover (1980); Haebara (1980); Stocking & Lord
(1983); Kolen & Brennan (2004, ch. 6); Kim & Lee (2006); Weeks (2010, R package plink);
Candell & Drasgow (1988).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize

from irt import (
    Bank,
    ItemParams,
    Quadrature,
    category_derivatives,
    category_probabilities,
    expected_score,
    normal_grid,
)

logger = logging.getLogger(__name__)

METHODS = ("mean-mean", "mean-sigma", "haebara", "stocking-lord")
#: Default criterion grid for Haebara and Stocking–Lord: 41 nodes on ±4 (base scale).
GRID_NODES = 41
GRID_HALF_WIDTH = 4.0
#: Default purification rule: drop anchors displaced by more than this many logits in b.
PURIFY_THRESHOLD = 0.5
MIN_COMMON = 5
#: Smallest admissible slope of the transformation.
MIN_A = 1e-6


@dataclass(frozen=True)
class LinkingTransform:
    """``θ_base = A θ_new + B``; `apply` moves item parameters, `theta` moves abilities."""

    A: float
    B: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.A) and np.isfinite(self.B)) or self.A <= 0:
            raise ValueError(f"linking slope A must be finite and > 0 and B finite, "
                             f"got A={self.A}, B={self.B}")

    def theta(self, theta: ArrayLike) -> NDArray[np.float64]:
        """``A θ + B``."""
        return self.A * np.asarray(theta, dtype=float) + self.B

    def apply(self, bank: Bank) -> Bank:
        """The bank on the base scale: ``a/A``, ``A b_k + B``, asymptotes unchanged."""
        return transform_bank(bank, self.A, self.B)

    def inverse(self) -> LinkingTransform:
        return LinkingTransform(1.0 / self.A, -self.B / self.A)


def transform_bank(bank: Bank, A: float, B: float) -> Bank:
    """Apply ``θ* = A θ + B`` to every item: ``a* = a/A``, ``b* = A b + B``, ``c, d`` kept."""
    if not A > 0:
        raise ValueError(f"linking slope A must be > 0, got {A}")
    items = []
    for it in bank.params():
        if it.is_dichotomous:
            items.append(ItemParams(it.item_id, it.model, it.a / A, A * it.b + B, it.c, it.d,
                                    skill=it.skill))
        else:
            items.append(ItemParams(it.item_id, it.model, it.a / A,
                                    thresholds=tuple(A * t + B for t in it.thresholds),
                                    skill=it.skill))
    return Bank.from_params(items)


@dataclass(frozen=True, eq=False)
class LinkingResult:
    """A linking of a new calibration onto a base scale.

    Attributes
    ----------
    transform : the (A, B) found.
    method : one of `METHODS`.
    common : ids of the common items used in the final linking.
    dropped : ids of common items removed by purification, in the order they were dropped.
    linked : the whole new bank transformed onto the base scale.
    displacement : ``b*_new − b_base`` of every original common item after the final linking
        (aligned with ``common + dropped`` order given by `displacement_ids`).
    displacement_ids : the item ids of ``displacement``.
    criterion : value of the minimized criterion (NaN for the moment methods).
    """

    transform: LinkingTransform
    method: str
    common: tuple[str, ...]
    dropped: tuple[str, ...]
    linked: Bank
    displacement: NDArray[np.float64]
    displacement_ids: tuple[str, ...]
    criterion: float

    @property
    def A(self) -> float:
        return self.transform.A

    @property
    def B(self) -> float:
        return self.transform.B

    def to_rows(self) -> list[tuple[str, str, float, str]]:
        """One row per original common item: ``(item_id, status, displacement, note)``."""
        rows = []
        for iid, d in zip(self.displacement_ids, self.displacement, strict=True):
            status = "dropped" if iid in self.dropped else "anchor"
            rows.append((iid, status, float(d), ""))
        return rows


def _locations(bank: Bank) -> list[NDArray[np.float64]]:
    """Per item, its location parameters (b, or b_1…b_{K−1})."""
    out = []
    for i in range(len(bank)):
        k = int(bank.n_categories[i]) - 1
        out.append(bank.thresholds[i, :k].copy())
    return out


def _moment_link(new: Bank, base: Bank, method: str) -> tuple[float, float]:
    b_new = np.concatenate(_locations(new))
    b_base = np.concatenate(_locations(base))
    if method == "mean-mean":
        A = float(np.mean(new.a) / np.mean(base.a))
    else:
        sd_new = float(np.std(b_new))
        if sd_new <= 0:
            raise ValueError("mean-sigma linking needs common items with different difficulties")
        A = float(np.std(b_base) / sd_new)
    B = float(np.mean(b_base) - A * np.mean(b_new))
    return A, B


def _criterion(new: Bank, base: Bank, grid: Quadrature, method: str):
    """Criterion and gradient in ``(u, v) = (1/A, B/A)``.

    Every model's curves depend on θ only through ``a(θ − b_k)``, so the transformed new items
    evaluated at θ equal the *original* new items evaluated at ``θ′ = uθ − v``:
    ``P_k(θ; a/A, A b_k + B) = P_k(uθ − v; a, b_k)``. The criterion is then a smooth function of
    (u, v) with ``∂θ′/∂u = θ`` and ``∂θ′/∂v = −1``, so its gradient follows from ``∂P/∂θ``.
    """
    nodes, w = grid.nodes, grid.weights
    kk = np.arange(max(new.max_categories, base.max_categories), dtype=float)
    if method == "haebara":
        target = category_probabilities(nodes, base)
    else:
        target = expected_score(nodes, base).sum(axis=1)

    def f(x: NDArray) -> tuple[float, NDArray]:
        u, v = float(x[0]), float(x[1])
        p, dp = category_derivatives(u * nodes - v, new, order=1)
        if method == "haebara":
            diff = target - p
            g_theta = -2.0 * np.sum(w[:, None, None] * diff * dp, axis=(1, 2))
            value = float(np.sum(w[:, None, None] * diff * diff))
        else:
            k = kk[: p.shape[-1]]
            diff = target - (p @ k).sum(axis=1)
            g_theta = -2.0 * w * diff * (dp @ k).sum(axis=1)
            value = float(np.sum(w * diff * diff))
        return value, np.array([float(g_theta @ nodes), -float(g_theta.sum())])

    return f


def transform_bank_arrays(bank: Bank, A: float, B: float) -> Bank:
    """Fast `transform_bank` on the arrays only (no per-item validation), for optimizers."""
    th = A * bank.thresholds + B
    return Bank(bank.item_ids, bank.skills, bank.models, bank.model_code, bank.a / A,
                A * bank.b + B, bank.c, bank.d, th, bank.n_categories)


def _link_once(new: Bank, base: Bank, method: str, grid: Quadrature
               ) -> tuple[float, float, float]:
    if method in ("mean-mean", "mean-sigma"):
        A, B = _moment_link(new, base, method)
        return A, B, float("nan")
    try:
        A0, B0 = _moment_link(new, base, "mean-sigma")
    except ValueError:
        A0, B0 = 1.0, 0.0
    if not (np.isfinite(A0) and A0 > 0 and np.isfinite(B0)):
        A0, B0 = 1.0, 0.0
    f = _criterion(new, base, grid, method)
    res = optimize.minimize(f, np.array([1.0 / A0, B0 / A0]), jac=True, method="L-BFGS-B",
                            bounds=[(MIN_A, None), (None, None)],
                            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
    u, v = float(res.x[0]), float(res.x[1])
    return 1.0 / u, v / u, float(res.fun)


def _common_positions(new: Bank, base: Bank, common: Sequence[str] | None
                      ) -> tuple[list[int], list[int], list[str]]:
    if common is None:
        ids = [iid for iid in new.item_ids if iid in set(base.item_ids)]
    else:
        ids = list(dict.fromkeys(common))
        for iid in ids:
            if iid not in new.item_ids:
                raise ValueError(f"common item {iid!r} is not in the new calibration")
            if iid not in base.item_ids:
                raise ValueError(f"common item {iid!r} is not in the base calibration")
    for iid in ids:
        i, j = new.index(iid), base.index(iid)
        if new.models[i] != base.models[j] or new.n_categories[i] != base.n_categories[j]:
            raise ValueError(f"common item {iid!r}: model {new.models[i]} "
                             f"({new.n_categories[i]} categories) in the new calibration but "
                             f"{base.models[j]} ({base.n_categories[j]}) in the base")
    return [new.index(i) for i in ids], [base.index(i) for i in ids], ids


def link(new: Bank, base: Bank, method: str = "stocking-lord", *,
         common: Sequence[str] | None = None, grid: Quadrature | None = None,
         purify: bool = False, purify_threshold: float = PURIFY_THRESHOLD,
         min_common: int = MIN_COMMON) -> LinkingResult:
    """Find ``θ_base = A θ_new + B`` from the common items and put ``new`` on the base scale.

    Parameters
    ----------
    new : the calibration to move ("from" scale).
    base : the reference calibration ("to" scale).
    method : ``mean-mean``, ``mean-sigma``, ``haebara`` or ``stocking-lord``.
    common : ids of the common items; default every item id present in both banks.
    grid : θ nodes and weights on the base scale for Haebara and Stocking–Lord.
    purify : drop drifting common items one at a time (see the module docstring).
    purify_threshold : displacement ``|b*_new − b_base|`` (logits) above which an item drifts.
    min_common : purification never leaves fewer common items than this.

    Returns
    -------
    LinkingResult with the transform, the linked bank and the common items used/dropped.

    Notes
    -----
    Formulas as in the module docstring (Kolen & Brennan 2004, ch. 6).
    """
    method = method.lower().replace("_", "-")
    if method not in METHODS:
        raise ValueError(f"unknown linking method {method!r}; expected one of {METHODS}")
    if purify_threshold <= 0:
        raise ValueError(f"purify_threshold must be > 0, got {purify_threshold}")
    pos_new, pos_base, ids = _common_positions(new, base, common)
    if len(ids) < 2:
        raise ValueError(f"linking needs at least 2 common items, found {len(ids)}")
    grid = grid or normal_grid(GRID_NODES, 0.0, 1.0, GRID_HALF_WIDTH)
    keep = list(range(len(ids)))
    dropped: list[str] = []
    while True:
        sub_new = new.take([pos_new[k] for k in keep])
        sub_base = base.take([pos_base[k] for k in keep])
        A, B, crit = _link_once(sub_new, sub_base, method, grid)
        if not (np.isfinite(A) and A > 0 and np.isfinite(B)):
            raise ValueError(f"{method} linking failed (A={A}, B={B}); check the common items")
        moved_all = transform_bank_arrays(new.take(pos_new), A, B)
        disp = moved_all.b - base.take(pos_base).b
        if not purify or len(keep) <= max(min_common, 2):
            break
        worst = max(keep, key=lambda k: abs(disp[k]))
        if abs(disp[worst]) <= purify_threshold:
            break
        logger.info("linking: dropping common item %s (displacement %.3f)", ids[worst],
                    disp[worst])
        dropped.append(ids[worst])
        keep.remove(worst)
    transform = LinkingTransform(A, B)
    return LinkingResult(transform, method, tuple(ids[k] for k in keep), tuple(dropped),
                         transform.apply(new), disp, tuple(ids), crit)
