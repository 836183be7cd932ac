"""Differential item functioning (DIF) between a reference and a focal group.

**Matching.** Persons are matched on the skill an item measures. When every person who answered
an item of the skill answered all of them (a complete form) the matching variable is the summed
score of the skill (studied item included, as Holland & Thayer 1988 recommend for MH); on sparse
(CAT) data, where summed scores of different item sets are not comparable, it is the EAP θ̂ of
the skill from the given item parameters, cut into ``n_strata`` quantile strata for MH (as in
Zwick, Thayer & Wingersky 1994 for CAT data). θ̂ from a few items carries measurement error and
prior shrinkage, which attenuates Δ_MH: in our simulation (2 × 2,000 persons, 15 of 30 items
each) a true Δ of about −1.18 came out between −0.9 and −1.2, so class B needs larger samples
on sparse data than on complete forms. By default the matching variable is purified in two
stages (Holland & Thayer 1988): items classed B or C in a first pass leave it.

**Mantel–Haenszel** (dichotomous items; Mantel & Haenszel 1959; Holland & Thayer 1988). In
stratum ``k`` with ``A_k, B_k`` the correct/incorrect counts of the reference group, ``C_k, D_k``
those of the focal group and ``N_k`` the total:

* common odds ratio ``α_MH = Σ_k (A_k D_k / N_k) / Σ_k (B_k C_k / N_k)``;
* ETS delta ``Δ_MH = −2.35 ln α_MH`` (negative: the item favours the reference group);
* ``SE(ln α_MH)`` by Robins, Breslow & Greenland (1986);
* ``χ²_MH = (|Σ A_k − Σ E A_k| − ½)² / Σ Var A_k`` with ``E A_k = n_Rk m_1k / N_k`` and
  ``Var A_k = n_Rk n_Fk m_1k m_0k / (N_k² (N_k − 1))``, df 1.

ETS classes (Zwick & Ercikan 1989; Dorans & Holland 1993): **A** when ``|Δ| < 1`` or ``χ²_MH`` is
not significant at 5 %; **C** when ``|Δ| ≥ 1.5`` and ``|Δ|`` is significantly greater than 1
(``(|Δ| − 1)/SE(Δ) > 1.645``); **B** otherwise.

**Logistic regression** (Swaminathan & Rogers 1990; ordinal/cumulative logit for polytomous items,
French & Miller 1996; Zumbo 1999). With ``m`` the standardized matching variable and ``g`` the
focal indicator, nested models for ``logit P(X ≥ k) = α_k + …``:

``M0: β₁ m``,  ``M1: β₁ m + β₂ g``,  ``M2: β₁ m + β₂ g + β₃ m g``;

``G²_uniform = 2(ℓ₁ − ℓ₀)`` (df 1), ``G²_nonuniform = 2(ℓ₂ − ℓ₁)`` (df 1), ``G²_total = 2(ℓ₂ − ℓ₀)``
(df 2). Effect size: the gain in Nagelkerke R² from M0 to M2, classified as by Jodoin & Gierl
(2001): **A** (negligible) when ``G²_total`` is not significant at 1 % or ``ΔR² < 0.035``, **C**
(large) when ``ΔR² ≥ 0.070``, **B** otherwise.

Statistics from fewer than ``min_group`` (default 100) responses in either group are computed but
marked unreliable in ``note``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from irt import Bank, SparseResponses, eap

logger = logging.getLogger(__name__)

#: ETS delta scale: Δ = −2.35 ln α (Holland & Thayer 1988).
ETS_DELTA = -2.35
MIN_GROUP = 100
N_STRATA = 10
#: Jodoin & Gierl (2001) Nagelkerke ΔR² cut-offs.
R2_MODERATE = 0.035
R2_LARGE = 0.070
LR_ALPHA = 0.01
MH_ALPHA = 0.05


@dataclass(frozen=True, eq=False)
class DIFResult:
    """DIF statistics per item (arrays of shape ``(n_items,)`` aligned with ``item_ids``).

    MH fields are NaN (class "") for polytomous items. ``matching`` is ``"score"`` or
    ``"theta"`` per item; ``purified`` the items left out of the matching variable in the
    second stage.
    """

    item_ids: tuple[str, ...]
    skills: tuple[str, ...]
    reference: str
    focal: str
    n_reference: NDArray[np.int64]
    n_focal: NDArray[np.int64]
    matching: tuple[str, ...]
    mh_alpha: NDArray[np.float64]
    mh_delta: NDArray[np.float64]
    mh_delta_se: NDArray[np.float64]
    mh_chi2: NDArray[np.float64]
    mh_p: NDArray[np.float64]
    ets_class: tuple[str, ...]
    lr_uniform: NDArray[np.float64]
    lr_nonuniform: NDArray[np.float64]
    lr_total: NDArray[np.float64]
    lr_p: NDArray[np.float64]
    delta_r2: NDArray[np.float64]
    lr_class: tuple[str, ...]
    min_group: int
    purified: tuple[str, ...] = ()

    COLUMNS = ("item_id", "skill", "n_reference", "n_focal", "matching", "mh_alpha", "mh_delta",
               "mh_delta_se", "mh_chi2", "mh_p", "ets_class", "lr_uniform", "lr_nonuniform",
               "lr_total", "lr_p", "delta_r2", "lr_class", "note")

    def notes(self) -> tuple[str, ...]:
        return tuple(f"unreliable: fewer than {self.min_group} responses in a group"
                     if min(r, f) < self.min_group else ""
                     for r, f in zip(self.n_reference, self.n_focal, strict=True))

    def to_rows(self) -> list[tuple]:
        """One tuple per item in `COLUMNS` order."""
        notes = self.notes()
        return [(iid, self.skills[k], int(self.n_reference[k]), int(self.n_focal[k]),
                 self.matching[k], float(self.mh_alpha[k]), float(self.mh_delta[k]),
                 float(self.mh_delta_se[k]), float(self.mh_chi2[k]), float(self.mh_p[k]),
                 self.ets_class[k], float(self.lr_uniform[k]), float(self.lr_nonuniform[k]),
                 float(self.lr_total[k]), float(self.lr_p[k]), float(self.delta_r2[k]),
                 self.lr_class[k], notes[k])
                for k, iid in enumerate(self.item_ids)]

    SKILL_COLUMNS = ("skill", "n_items", "ets_A", "ets_B", "ets_C", "lr_A", "lr_B", "lr_C")

    def by_skill(self) -> list[tuple]:
        """Counts of ETS (MH) and LR classes per skill, in `SKILL_COLUMNS` order."""
        rows = []
        for skill in dict.fromkeys(self.skills):
            idx = [k for k, s in enumerate(self.skills) if s == skill]
            ets = [self.ets_class[k] for k in idx]
            lr = [self.lr_class[k] for k in idx]
            rows.append((skill, len(idx), *(ets.count(c) for c in "ABC"),
                         *(lr.count(c) for c in "ABC")))
        return rows


# ---------------------------------------------------------------- Mantel–Haenszel


@dataclass(frozen=True)
class MantelHaenszel:
    """MH statistics of one dichotomous item (see the module docstring)."""

    alpha: float
    delta: float
    delta_se: float
    chi2: float
    p_value: float
    ets_class: str


def mantel_haenszel(correct: ArrayLike, focal: ArrayLike, stratum: ArrayLike) -> MantelHaenszel:
    """MH common odds ratio, ETS delta, its SE, χ² and the ETS A/B/C class.

    Parameters
    ----------
    correct : 0/1 responses ``(n,)``.
    focal : True for focal-group members ``(n,)``.
    stratum : integer stratum of each response ``(n,)``.
    """
    y = np.asarray(correct, dtype=float)
    f = np.asarray(focal, dtype=bool)
    s = np.unique(np.asarray(stratum), return_inverse=True)[1]
    if not (y.shape == f.shape == s.shape):
        raise ValueError("correct, focal and stratum must have the same length")
    n_s = int(s.max()) + 1 if s.size else 0
    cnt = lambda w: np.bincount(s, weights=w, minlength=n_s)  # noqa: E731
    A = cnt(y * ~f)
    B = cnt((1 - y) * ~f)
    C = cnt(y * f)
    D = cnt((1 - y) * f)
    N = A + B + C + D
    use = (N >= 2) & (A + B > 0) & (C + D > 0)
    A, B, C, D, N = A[use], B[use], C[use], D[use], N[use]
    R_k, S_k = A * D / N, B * C / N
    R, S = R_k.sum(), S_k.sum()
    nan = float("nan")
    if R <= 0 or S <= 0:
        return MantelHaenszel(nan, nan, nan, nan, nan, "")
    alpha = R / S
    P_k, Q_k = (A + D) / N, (B + C) / N
    var_log = (np.sum(P_k * R_k) / (2 * R * R) + np.sum(P_k * S_k + Q_k * R_k) / (2 * R * S)
               + np.sum(Q_k * S_k) / (2 * S * S))
    n_r, n_f, m1, m0 = A + B, C + D, A + C, B + D
    expected = np.sum(n_r * m1 / N)
    var = np.sum(n_r * n_f * m1 * m0 / (N * N * (N - 1)))
    chi2 = max(abs(A.sum() - expected) - 0.5, 0.0) ** 2 / var if var > 0 else nan
    p = float(stats.chi2.sf(chi2, 1)) if np.isfinite(chi2) else nan
    delta = ETS_DELTA * np.log(alpha)
    se = abs(ETS_DELTA) * np.sqrt(var_log)
    return MantelHaenszel(float(alpha), float(delta), float(se), float(chi2), p,
                          ets_class(float(delta), float(se), p))


def ets_class(delta: float, se: float, p_value: float) -> str:
    """ETS A/B/C from ``Δ_MH``, its SE and the MH χ² p-value (Zwick & Ercikan 1989)."""
    if not np.isfinite(delta):
        return ""
    if abs(delta) < 1.0 or not p_value < MH_ALPHA:
        return "A"
    if abs(delta) >= 1.5 and (abs(delta) - 1.0) / se > stats.norm.ppf(0.95):
        return "C"
    return "B"


# ---------------------------------------------------------------- ordinal logistic regression


def _ordinal_nll(params: NDArray, X: NDArray, y: NDArray, K: int):
    """Negative log-likelihood and gradient of ``logit P(Y ≥ k) = α_k + X β``, k = 1…K−1."""
    alpha, beta = params[: K - 1], params[K - 1:]
    eta = X @ beta
    n = y.shape[0]
    cum = np.ones((n, K + 1))
    cum[:, K] = 0.0
    z = alpha[None, :] + eta[:, None]
    s = 0.5 * (1.0 + np.tanh(0.5 * z))
    cum[:, 1:K] = s
    ds = np.zeros((n, K + 1))
    ds[:, 1:K] = s * (1.0 - s)
    rows = np.arange(n)
    p = np.maximum(cum[rows, y] - cum[rows, y + 1], 1e-300)
    nll = -np.sum(np.log(p))
    d_up, d_lo = ds[rows, y], ds[rows, y + 1]
    g_alpha = np.zeros(K - 1)
    # ∂ log p/∂α_k = (1{y=k} ds_k − 1{y=k−1} ds_k)/p
    np.add.at(g_alpha, y[y >= 1] - 1, d_up[y >= 1] / p[y >= 1])
    np.add.at(g_alpha, y[y <= K - 2], -d_lo[y <= K - 2] / p[y <= K - 2])
    g_beta = X.T @ ((d_up - d_lo) / p)
    return nll, -np.concatenate([g_alpha, g_beta])


def _binary_logit_loglik(X: NDArray, y: NDArray) -> float:
    """Logistic regression with an intercept by Newton–Raphson (IRLS) with step halving."""
    D = np.column_stack([np.ones(y.shape[0]), X])
    yf = y.astype(float)
    p0 = float(np.clip(yf.mean(), 1e-6, 1 - 1e-6))
    beta = np.zeros(D.shape[1])
    beta[0] = np.log(p0 / (1 - p0))

    def loglik(b: NDArray) -> float:
        z = D @ b
        return float(np.sum(yf * z - np.logaddexp(0.0, z)))

    ll = loglik(beta)
    for _ in range(100):
        z = D @ beta
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))
        grad = D.T @ (yf - prob)
        hess = (D * (prob * (1 - prob))[:, None]).T @ D
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(D.shape[1]), grad)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-6:
            cand = beta + t * step
            ll_new = loglik(cand)
            if ll_new >= ll - 1e-12:
                break
            t *= 0.5
        converged = abs(ll_new - ll) < 1e-10
        beta, ll = cand, max(ll, ll_new)
        if converged:
            break
    return ll


def ordinal_logit_loglik(X: NDArray, y: NDArray, K: int) -> float:
    """Maximized log-likelihood of the cumulative logit model (intercepts only when X has 0
    columns); binary logistic regression when ``K = 2`` (Newton–Raphson there, BFGS with an
    analytic gradient for K > 2)."""
    if K == 2:
        return _binary_logit_loglik(X, y)
    cum = np.array([(y >= k).mean() for k in range(1, K)])
    cum = np.clip(cum, 1e-4, 1 - 1e-4)
    start = np.concatenate([np.log(cum / (1 - cum)), np.zeros(X.shape[1])])
    res = optimize.minimize(_ordinal_nll, start, args=(X, y, K), jac=True, method="BFGS",
                            options={"gtol": 1e-7, "maxiter": 500})
    return -float(res.fun)


@dataclass(frozen=True)
class LogisticDIF:
    """Likelihood-ratio DIF statistics of one item (see the module docstring)."""

    uniform: float
    nonuniform: float
    total: float
    p_value: float
    delta_r2: float
    dif_class: str


def logistic_dif(response: ArrayLike, focal: ArrayLike, matching: ArrayLike,
                 n_categories: int = 2) -> LogisticDIF:
    """Nested (ordinal) logistic regressions M0 ⊂ M1 ⊂ M2 and their LR tests."""
    y = np.asarray(response, dtype=np.int64)
    g = np.asarray(focal, dtype=float)
    m = np.asarray(matching, dtype=float)
    sd = m.std()
    m = (m - m.mean()) / (sd if sd > 0 else 1.0)
    present = np.unique(y)
    # categories nobody used carry no information: recode to the observed ones
    y = np.searchsorted(present, y)
    K = present.size
    nan = float("nan")
    if K < 2 or g.min() == g.max():
        return LogisticDIF(nan, nan, nan, nan, nan, "")
    n = y.shape[0]
    ll_null = ordinal_logit_loglik(np.zeros((n, 0)), y, K)
    ll0 = ordinal_logit_loglik(m[:, None], y, K)
    ll1 = ordinal_logit_loglik(np.column_stack([m, g]), y, K)
    ll2 = ordinal_logit_loglik(np.column_stack([m, g, m * g]), y, K)
    ll1, ll2 = max(ll1, ll0), max(ll2, ll1, ll0)  # nested: optimizer noise never lowers them
    uni, non, tot = 2 * (ll1 - ll0), 2 * (ll2 - ll1), 2 * (ll2 - ll0)
    p = float(stats.chi2.sf(tot, 2))

    def nagelkerke(ll: float) -> float:
        top = 1.0 - np.exp(2.0 * (ll_null - ll) / n)
        return float(top / (1.0 - np.exp(2.0 * ll_null / n)))

    dr2 = nagelkerke(ll2) - nagelkerke(ll0)
    cls = "A" if (p >= LR_ALPHA or dr2 < R2_MODERATE) else "C" if dr2 >= R2_LARGE else "B"
    return LogisticDIF(uni, non, tot, p, dr2, cls)


# ---------------------------------------------------------------- driver


def _groups(group: ArrayLike, n_persons: int, reference: str | None, focal: str | None
            ) -> tuple[NDArray[np.bool_], NDArray[np.bool_], str, str]:
    labels = np.asarray(group, dtype=object).astype(str)
    if labels.shape != (n_persons,):
        raise ValueError(f"group must have one label per person ({n_persons}), "
                         f"got shape {labels.shape}")
    values, counts = np.unique(labels, return_counts=True)
    if reference is None or focal is None:
        if values.size != 2:
            raise ValueError(f"the group column has {values.size} values {list(values)}; "
                             f"name the reference and focal groups")
        order = np.argsort(-counts, kind="stable")
        ref_default, foc_default = str(values[order[0]]), str(values[order[1]])
        reference = reference or (ref_default if focal != ref_default else foc_default)
        focal = focal or (foc_default if reference == ref_default else ref_default)
    for name, v in (("reference", reference), ("focal", focal)):
        if v not in set(values):
            raise ValueError(f"{name} group {v!r} does not occur in the group column "
                             f"(values: {list(values)})")
    if reference == focal:
        raise ValueError("reference and focal groups must differ")
    return labels == reference, labels == focal, reference, focal


def _matching(data: SparseResponses, bank: Bank, skill_items: NDArray[np.int64],
              n_strata: int, use: NDArray[np.int64] | None = None
              ) -> tuple[NDArray, NDArray, str]:
    """Matching variable and strata per person for the items of one skill.

    ``use`` (default: all of ``skill_items``) are the items that make up the matching variable;
    whether the form is complete is judged on every administered item of the skill.
    """
    use = skill_items if use is None else np.sort(np.asarray(use, dtype=np.int64))
    in_skill = np.isin(data.item, skill_items)
    person, item = data.person[in_skill], data.item[in_skill]
    counts = np.bincount(person, minlength=data.n_persons)
    answered = counts > 0
    n_form = np.unique(item).size  # administered items of the skill
    complete = bool(np.all(counts[answered] == n_form))
    sel = np.isin(data.item, use)
    person, item, resp = data.person[sel], data.item[sel], data.response[sel]
    if complete:
        score = np.bincount(person, weights=resp, minlength=data.n_persons)
        return score, score.astype(np.int64), "score"
    sub = SparseResponses(person, np.searchsorted(use, item), resp, data.n_persons, use.size)
    theta = eap(sub, bank.take(use)).theta
    edges = np.quantile(theta[answered], np.linspace(0, 1, n_strata + 1)[1:-1])
    return theta, np.searchsorted(edges, theta, side="right"), "theta"


def _item_stats(data: SparseResponses, bank: Bank, i: int, is_foc: NDArray[np.bool_],
                m: NDArray, strata: NDArray) -> tuple[int, int, MantelHaenszel, LogisticDIF]:
    rows = np.flatnonzero(data.item == i)
    p, y = data.person[rows], data.response[rows]
    foc = is_foc[p]
    if bank.n_categories[i] == 2 and rows.size:
        mh = mantel_haenszel(y, foc, strata[p])
    else:
        nan = float("nan")
        mh = MantelHaenszel(nan, nan, nan, nan, nan, "")
    if rows.size and foc.any() and (~foc).any():
        lr = logistic_dif(y, foc, m[p], int(bank.n_categories[i]))
    else:
        nan = float("nan")
        lr = LogisticDIF(nan, nan, nan, nan, nan, "")
    return int((~foc).sum()), int(foc.sum()), mh, lr


def dif(responses: SparseResponses, bank: Bank, group: ArrayLike, *,
        reference: str | None = None, focal: str | None = None, n_strata: int = N_STRATA,
        min_group: int = MIN_GROUP, items: Sequence[str] | None = None,
        purify: bool = True) -> DIFResult:
    """MH and logistic-regression DIF for every item (or ``items``) of ``bank``.

    Parameters
    ----------
    responses : long-format responses indexed to ``bank``.
    bank : item parameters (used for θ̂ matching on sparse data and for models/skills).
    group : one label per person; persons in neither group are left out.
    reference, focal : the group labels (default with two labels: the larger group is the
        reference).
    n_strata : θ̂ strata for MH on sparse data.
    min_group : below this many responses per group a row is marked unreliable.
    purify : two-stage matching (Holland & Thayer 1988): items classed B or C (MH or LR) in a
        first pass leave the matching variable of the second pass, except that a studied
        item always counts in its own matching variable.
    """
    responses.check_categories(bank)
    if n_strata < 2:
        raise ValueError(f"n_strata must be >= 2, got {n_strata}")
    is_ref, is_foc, reference, focal = _groups(group, responses.n_persons, reference, focal)
    wanted = list(range(len(bank))) if items is None else [bank.index(i) for i in items]
    keep = is_ref[responses.person] | is_foc[responses.person]
    data = SparseResponses(responses.person[keep], responses.item[keep],
                           responses.response[keep], responses.n_persons, responses.n_items)
    skills = {bank.skills[i] for i in wanted}
    base = {s: _matching(data, bank, bank.skill_indices(s), n_strata) for s in skills}
    stats_ = {i: _item_stats(data, bank, i, is_foc, *base[bank.skills[i]][:2]) for i in wanted}
    kinds = {i: base[bank.skills[i]][2] for i in wanted}
    purified: list[str] = []
    if purify:
        flagged = {i for i, (_, _, mh, lr) in stats_.items()
                   if mh.ets_class in ("B", "C") or lr.dif_class in ("B", "C")}
        for s in skills:
            members = bank.skill_indices(s)
            out_s = [i for i in members if i in flagged]
            use = np.array([i for i in members if i not in flagged], dtype=np.int64)
            if not out_s or use.size < 2:
                continue
            purified += [bank.item_ids[i] for i in out_s]
            m0, strata0, kind = _matching(data, bank, members, n_strata, use)
            for i in (i for i in wanted if bank.skills[i] == s):
                if i not in flagged:
                    stats_[i] = _item_stats(data, bank, i, is_foc, m0, strata0)
                    continue
                # the studied item counts in its own matching variable
                m1, strata1, _ = _matching(data, bank, members, n_strata,
                                           np.append(use, i))
                stats_[i] = _item_stats(data, bank, i, is_foc, m1, strata1)
                kinds[i] = kind
    nr = np.array([stats_[i][0] for i in wanted])
    nf = np.array([stats_[i][1] for i in wanted])
    mh = [stats_[i][2] for i in wanted]
    lr = [stats_[i][3] for i in wanted]
    arr = lambda xs, f: np.array([getattr(x, f) for x in xs], dtype=float)  # noqa: E731
    return DIFResult(
        tuple(bank.item_ids[i] for i in wanted), tuple(bank.skills[i] for i in wanted),
        reference, focal, nr, nf, tuple(kinds[i] for i in wanted),
        arr(mh, "alpha"), arr(mh, "delta"), arr(mh, "delta_se"), arr(mh, "chi2"),
        arr(mh, "p_value"), tuple(x.ets_class for x in mh), arr(lr, "uniform"),
        arr(lr, "nonuniform"), arr(lr, "total"), arr(lr, "p_value"), arr(lr, "delta_r2"),
        tuple(x.dif_class for x in lr), min_group, tuple(purified))
