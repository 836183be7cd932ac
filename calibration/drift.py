"""Item parameter drift between the current calibration and a new one, after linking.

The new calibration is first put on the current scale by `calibration.linking.link` (Stocking–Lord
with anchor purification by default), then for every common item

``Δa = a*_new − a_cur``,  ``Δb = b*_new − b_cur``  (``b`` of a GRM/GPCM item = mean threshold),

with standard errors ``SE(Δ) = sqrt(SE_cur² + SE*_new²)``, where ``SE(a*) = SE(a)/A`` and
``SE(b*) = A SE(b)`` (the two calibrations are independent samples; the error of (A, B) itself is
ignored, which makes the test slightly liberal). ``z = Δ / SE(Δ)``.

**Flag rule** (both a practical size and statistical evidence are required, so a huge sample
does not flag trivial shifts and a tiny one does not flag noise; after Wells, Subkoviak & Serlin
2002 and Kolen & Brennan 2004 §6.7):

* b drifts when ``|Δb| ≥ min_shift_b`` (default 0.3 logits) and ``|z_b| ≥ z_crit``
  (default 2.58, two-sided 1 %);
* a drifts when ``|Δa| / a_cur ≥ min_ratio_a`` (default 25 %) and ``|z_a| ≥ z_crit``.

When standard errors are not available (NaN) only the size criterion applies; the result says so
in ``evidence`` ("size only").

References: Kolen & Brennan (2004); Wells, Subkoviak & Serlin (2002); Stocking & Lord (1983).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.linking import PURIFY_THRESHOLD, LinkingResult, link
from irt import Bank
from irt.io import ItemTable

MIN_SHIFT_B = 0.3
MIN_RATIO_A = 0.25
Z_CRIT = 2.58


@dataclass(frozen=True, eq=False)
class ParameterErrors:
    """Standard errors of ``a`` and ``b`` (mean threshold for polytomous items), aligned with a
    bank's items; NaN where unknown."""

    a: NDArray[np.float64]
    b: NDArray[np.float64]

    @classmethod
    def unknown(cls, n_items: int) -> ParameterErrors:
        return cls(np.full(n_items, np.nan), np.full(n_items, np.nan))

    @classmethod
    def from_table(cls, table: ItemTable) -> ParameterErrors:
        """Read ``se_a`` and ``se_b`` (or ``se_b1…``) columns of an items file; NaN if absent.

        For a polytomous item without ``se_b`` the SE of the mean threshold is
        ``sqrt(Σ_k SE(b_k)²)/(K − 1)`` (covariances ignored).
        """
        bank = table.bank
        n = len(bank)

        def column(name: str) -> NDArray[np.float64]:
            values = table.extra.get(name)
            if values is None:
                return np.full(n, np.nan)
            out = np.full(n, np.nan)
            for i, text in enumerate(values):
                try:
                    out[i] = float(text) if str(text).strip() else np.nan
                except ValueError:
                    raise ValueError(f"item {bank.item_ids[i]!r}: field {name!r} is not a "
                                     f"number: {text!r}") from None
                if np.isfinite(out[i]) and out[i] < 0:
                    raise ValueError(f"item {bank.item_ids[i]!r}: field {name!r} must be >= 0")
            return out

        se_a, se_b = column("se_a"), column("se_b")
        kmax = bank.max_categories
        parts = [column(f"se_b{k}") for k in range(1, kmax)]
        for i in range(n):
            k = int(bank.n_categories[i]) - 1
            if k > 1 and not np.isfinite(se_b[i]) and parts:
                vals = np.array([parts[j][i] for j in range(k)])
                if np.all(np.isfinite(vals)):
                    se_b[i] = float(np.sqrt(np.sum(vals**2)) / k)
        return cls(se_a, se_b)


@dataclass(frozen=True, eq=False)
class DriftResult:
    """Per common item: the current and linked new ``a`` and ``b``, differences, SEs, z, flags.

    All arrays have shape ``(n_common,)`` aligned with ``item_ids``. ``anchor`` tells whether the
    item was kept as a linking anchor (False: dropped by purification).
    """

    item_ids: tuple[str, ...]
    skills: tuple[str, ...]
    a_current: NDArray[np.float64]
    a_new: NDArray[np.float64]
    b_current: NDArray[np.float64]
    b_new: NDArray[np.float64]
    se_diff_a: NDArray[np.float64]
    se_diff_b: NDArray[np.float64]
    flag_a: NDArray[np.bool_]
    flag_b: NDArray[np.bool_]
    anchor: NDArray[np.bool_]
    linking: LinkingResult
    min_shift_b: float
    min_ratio_a: float
    z_crit: float

    @property
    def diff_a(self) -> NDArray[np.float64]:
        return self.a_new - self.a_current

    @property
    def diff_b(self) -> NDArray[np.float64]:
        return self.b_new - self.b_current

    @property
    def z_a(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.diff_a / self.se_diff_a

    @property
    def z_b(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.diff_b / self.se_diff_b

    @property
    def flagged(self) -> NDArray[np.bool_]:
        return self.flag_a | self.flag_b

    @property
    def flagged_ids(self) -> tuple[str, ...]:
        return tuple(i for i, f in zip(self.item_ids, self.flagged, strict=True) if f)

    COLUMNS = ("item_id", "skill", "anchor", "a_current", "a_new", "diff_a", "se_diff_a", "z_a",
               "b_current", "b_new", "diff_b", "se_diff_b", "z_b", "evidence", "flag")

    def to_rows(self) -> list[tuple]:
        """One tuple per item in `COLUMNS` order."""
        rows = []
        za, zb = self.z_a, self.z_b
        for k, iid in enumerate(self.item_ids):
            evidence = "size only" if not (np.isfinite(zb[k]) and np.isfinite(za[k])) \
                else "size and z"
            flag = "+".join(n for n, f in (("a", self.flag_a[k]), ("b", self.flag_b[k])) if f)
            rows.append((iid, self.skills[k], "yes" if self.anchor[k] else "dropped",
                         float(self.a_current[k]), float(self.a_new[k]), float(self.diff_a[k]),
                         float(self.se_diff_a[k]), float(za[k]), float(self.b_current[k]),
                         float(self.b_new[k]), float(self.diff_b[k]), float(self.se_diff_b[k]),
                         float(zb[k]), evidence, flag))
        return rows


def _flag(size_ok: NDArray[np.bool_], z: NDArray[np.float64], z_crit: float) -> NDArray[np.bool_]:
    # unknown z (no SEs): the size criterion alone decides
    return size_ok & (~np.isfinite(z) | (np.abs(z) >= z_crit))


def _aligned(errors: ParameterErrors | None, n: int, name: str) -> ParameterErrors:
    if errors is None:
        return ParameterErrors.unknown(n)
    if errors.a.shape != (n,) or errors.b.shape != (n,):
        raise ValueError(f"{name} standard errors must have one value per item ({n})")
    return errors


def drift(current: Bank, new: Bank, *, se_current: ParameterErrors | None = None,
          se_new: ParameterErrors | None = None, method: str = "stocking-lord",
          purify: bool = True, purify_threshold: float = PURIFY_THRESHOLD,
          min_shift_b: float = MIN_SHIFT_B, min_ratio_a: float = MIN_RATIO_A,
          z_crit: float = Z_CRIT, common: ArrayLike | None = None) -> DriftResult:
    """Link ``new`` onto ``current`` and test every common item for drift in a and b.

    Parameters
    ----------
    current, new : the two calibrations (items matched by id).
    se_current, se_new : standard errors aligned with each bank (see `ParameterErrors`).
    method, purify, purify_threshold : passed to `calibration.linking.link`.
    min_shift_b, min_ratio_a, z_crit : the flag rule of the module docstring.
    common : the common item ids (default: every id in both banks).

    Returns
    -------
    DriftResult
    """
    if min_shift_b < 0 or min_ratio_a < 0 or z_crit < 0:
        raise ValueError("min_shift_b, min_ratio_a and z_crit must be >= 0")
    se_cur = _aligned(se_current, len(current), "current")
    se_nw = _aligned(se_new, len(new), "new")
    linking = link(new, current, method,
                   common=None if common is None else [str(c) for c in np.asarray(common)],
                   purify=purify, purify_threshold=purify_threshold)
    ids = linking.displacement_ids
    pc = np.array([current.index(i) for i in ids])
    pn = np.array([new.index(i) for i in ids])
    A = linking.A
    moved = linking.linked
    a_cur, b_cur = current.a[pc], current.b[pc]
    a_new, b_new = moved.a[pn], moved.b[pn]
    se_a = np.sqrt(se_cur.a[pc] ** 2 + (se_nw.a[pn] / A) ** 2)
    se_b = np.sqrt(se_cur.b[pc] ** 2 + (A * se_nw.b[pn]) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        za = (a_new - a_cur) / se_a
        zb = (b_new - b_cur) / se_b
    flag_b = _flag(np.abs(b_new - b_cur) >= min_shift_b, zb, z_crit)
    flag_a = _flag(np.abs(a_new - a_cur) / a_cur >= min_ratio_a, za, z_crit)
    anchor = np.array([i in linking.common for i in ids], dtype=bool)
    return DriftResult(ids, tuple(current.skills[i] for i in pc), a_cur, a_new, b_cur, b_new,
                       se_a, se_b, flag_a, flag_b, anchor, linking, min_shift_b, min_ratio_a,
                       z_crit)
