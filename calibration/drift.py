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

**Missing standard errors.** Without the new calibration's SE an item is *not tested* (evidence
"not tested: no SE"): the size criterion alone flags every noisy estimate of a rarely answered
item, which is how the web job once flagged 67 of 110 items where the CLI flagged 1 (the web did
not pass the current SEs, every z became NaN and the rule fell back to size only). Without the
current SE the current value is taken as exact, ``SE(Δ) = SE*_new`` (evidence "current SE
unknown"), which makes the test somewhat liberal, and says so.

**Per skill.** Every skill is its own θ scale, so `drift` links each skill separately (one
(A, B) per skill); `drift_test` is the flag rule alone, for callers that set the scale
themselves (`calibration.recalibrate`, where anchored items need no linking). Both the
``proficio drift`` command and the recalibration use these two functions.

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


@dataclass(frozen=True)
class DriftRule:
    """The flag rule of the module docstring (sizes in logits / ratio, ``z_crit`` two-sided)."""

    min_shift_b: float = MIN_SHIFT_B
    min_ratio_a: float = MIN_RATIO_A
    z_crit: float = Z_CRIT

    def __post_init__(self) -> None:
        for name in ("min_shift_b", "min_ratio_a", "z_crit"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"field {name!r} must be a number >= 0, got {v!r}")


@dataclass(frozen=True, eq=False)
class DriftTest:
    """`drift_test` per item: SE of the differences, z, flags and the evidence used."""

    se_diff_a: NDArray[np.float64]
    se_diff_b: NDArray[np.float64]
    z_a: NDArray[np.float64]
    z_b: NDArray[np.float64]
    flag_a: NDArray[np.bool_]
    flag_b: NDArray[np.bool_]
    evidence: tuple[str, ...]


def drift_test(a_current: ArrayLike, b_current: ArrayLike, a_new: ArrayLike, b_new: ArrayLike,
               se_current: ParameterErrors, se_new: ParameterErrors,
               rule: DriftRule | None = None) -> DriftTest:
    """The flag rule on parameters already on one scale (module docstring).

    ``se_new`` must be on the same (current) scale as ``a_new``/``b_new``.
    """
    rule = rule or DriftRule()
    ac, bc = np.asarray(a_current, float), np.asarray(b_current, float)
    an, bn = np.asarray(a_new, float), np.asarray(b_new, float)
    new_known = np.isfinite(se_new.a) & np.isfinite(se_new.b)
    cur_known = np.isfinite(se_current.a) & np.isfinite(se_current.b)
    sca = np.where(np.isfinite(se_current.a), se_current.a, 0.0)
    scb = np.where(np.isfinite(se_current.b), se_current.b, 0.0)
    se_a = np.sqrt(sca**2 + se_new.a**2)
    se_b = np.sqrt(scb**2 + se_new.b**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        za = np.where(new_known, (an - ac) / se_a, np.nan)
        zb = np.where(new_known, (bn - bc) / se_b, np.nan)
    flag_b = new_known & (np.abs(bn - bc) >= rule.min_shift_b) & (np.abs(zb) >= rule.z_crit)
    flag_a = new_known & (np.abs(an - ac) / ac >= rule.min_ratio_a) & (np.abs(za) >= rule.z_crit)
    evidence = tuple("not tested: no SE" if not nk else "current SE unknown" if not ck
                     else "size and z" for nk, ck in zip(new_known, cur_known, strict=True))
    return DriftTest(se_a, se_b, za, zb, flag_a, flag_b, evidence)


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
    linkings: tuple[LinkingResult, ...]
    link_skills: tuple[str, ...]
    min_shift_b: float
    min_ratio_a: float
    z_crit: float
    evidence: tuple[str, ...] = ()

    @property
    def linking(self) -> LinkingResult:
        """The linking when the banks have one skill (see `linkings` otherwise)."""
        if len(self.linkings) != 1:
            raise ValueError(f"{len(self.linkings)} skills were linked separately; use "
                             f"'linkings'")
        return self.linkings[0]

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
            evidence = self.evidence[k] if self.evidence else "size and z"
            flag = "+".join(n for n, f in (("a", self.flag_a[k]), ("b", self.flag_b[k])) if f)
            rows.append((iid, self.skills[k], "yes" if self.anchor[k] else "dropped",
                         float(self.a_current[k]), float(self.a_new[k]), float(self.diff_a[k]),
                         float(self.se_diff_a[k]), float(za[k]), float(self.b_current[k]),
                         float(self.b_new[k]), float(self.diff_b[k]), float(self.se_diff_b[k]),
                         float(zb[k]), evidence, flag))
        return rows


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
    """Link ``new`` onto ``current`` (each skill separately) and test every common item for
    drift in a and b.

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
    rule = DriftRule(min_shift_b, min_ratio_a, z_crit)
    se_cur = _aligned(se_current, len(current), "current")
    se_nw = _aligned(se_new, len(new), "new")
    wanted = None if common is None else set(np.asarray(common, dtype=object).tolist())
    in_current = set(current.item_ids)
    ids_all = [i for i in new.item_ids if i in in_current and (wanted is None or i in wanted)]
    if wanted is not None:
        for iid in wanted - set(ids_all):
            raise ValueError(f"common item {iid!r} is not in both calibrations")
    linkings, skills, ids, a_new, b_new, sa_new, sb_new = [], [], [], [], [], [], []
    kept: set[str] = set()
    for skill in dict.fromkeys(current.skills[current.index(i)] for i in ids_all):
        common_s = [i for i in ids_all if current.skills[current.index(i)] == skill]
        linking = link(new, current, method, common=common_s, purify=purify,
                       purify_threshold=purify_threshold)
        linkings.append(linking)
        skills.append(skill)
        kept.update(linking.common)
        A = linking.A
        for iid in linking.displacement_ids:
            k = new.index(iid)
            ids.append(iid)
            a_new.append(new.a[k] / A)
            b_new.append(A * new.b[k] + linking.B)
            sa_new.append(se_nw.a[k] / A)
            sb_new.append(A * se_nw.b[k])
    pc = np.array([current.index(i) for i in ids], dtype=np.int64)
    a_cur, b_cur = current.a[pc], current.b[pc]
    an, bn = np.array(a_new), np.array(b_new)
    test = drift_test(a_cur, b_cur, an, bn, ParameterErrors(se_cur.a[pc], se_cur.b[pc]),
                      ParameterErrors(np.array(sa_new), np.array(sb_new)), rule)
    anchor = np.array([i in kept for i in ids], dtype=bool)
    return DriftResult(tuple(ids), tuple(current.skills[i] for i in pc), a_cur, an, b_cur, bn,
                       test.se_diff_a, test.se_diff_b, test.flag_a, test.flag_b, anchor,
                       tuple(linkings), tuple(skills), min_shift_b, min_ratio_a, z_crit,
                       test.evidence)
