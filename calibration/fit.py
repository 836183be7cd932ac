"""Item and person fit, reliability and information curves.

**S-X² item fit** (Orlando & Thissen 2000; polytomous extension Kang & Chen 2008). On complete
forms, persons are grouped by their summed score ``s`` over the items of the skill. For item
``i`` and category ``k`` the expected proportion in score group ``s`` is

``E_ik(s) = ∫ P_ik(θ) f_{−i}(s − k | θ) g(θ) dθ / ∫ f(s | θ) g(θ) dθ``,

where ``f(s | θ)`` is the summed-score likelihood of all items and ``f_{−i}`` the one without
item ``i``, both by the Lord–Wingersky (1984) recursion
``f_{j}(s | θ) = Σ_k f_{j−1}(s − k | θ) P_jk(θ)``, and ``g`` the latent density (quadrature).
``S-X²_i = Σ_s N_s Σ_k (O_ik(s) − E_ik(s))² / E_ik(s)``. For dichotomous items the two extreme
scores carry no information and are left out. Adjacent score groups are merged (from the
low end upward, the last group into its neighbour) until every expected count ``N_s E_ik(s)``
is at least ``min_expected`` (default 1, as Orlando & Thissen); df ``G − m`` with ``G`` groups
after collapsing and ``m`` the item's free parameters (1PL 1, 2PL 2, 3PL 3, 4PL 4, GRM/GPCM
K). Polytomous items follow Kang & Chen (2008): extreme scores dropped, incomplete tail rows
pooled, sparse *categories* pooled within each score row (see `_polytomous_cells`); df is the
number of remaining category contrasts minus ``m``.

**Which statistic, per item.** For each skill, the *complete cases* are the persons who
answered every administered item of the skill. An item gets S-X² (computed on the complete cases
only) when at least `COMPLETE_SHARE` (90 %) of its responses come from complete cases. Otherwise
(sparse or adaptive data) an item whose parameters were estimated from these responses gets the
rest-posterior statistic, and an item whose parameters were held fixed (an anchor) the
sequential one. The choice and its reason are stated per item (``method``, ``reason`` and the
note): one missing response no longer moves a whole skill to another statistic.

**Rest-posterior statistic** (estimated items on sparse data), our adaptation of Stone's (2000)
posterior-based fit and Yen's (1981) Q1 to incomplete data: for each response ``x_pi`` the
posterior of θ given the person's *other* responses of the skill,
``π_{p,−i}(θ) ∝ g(θ) Π_{j≠i} P_j(x_pj | θ)``, gives the predictive mean
``E_pi = ∫ E[X_i | θ] π_{p,−i}(θ) dθ`` and variance ``V_pi``. Responses are cut into
``n_groups`` quantile groups of the rest-posterior mean θ̂_{−i}, and
``Q_i = Σ_g (Σ_{p∈g} x_pi − Σ_{p∈g} E_pi)² / Σ_{p∈g} V_pi``, df ``G − m`` (groups of fewer than
5 responses merge with a neighbour). The estimated parameters absorb about ``m`` degrees of
freedom, as in S-X².

**Sequential (prequential) statistic** (fixed items on sparse data): the same sum, but ``E_pi``
and ``V_pi`` come from the posterior given only the person's responses *before* ``x_pi`` (the
row order of the log is the administration order), groups are quantiles of that prefix
posterior mean (``G = min(n_groups, n / MIN_PER_GROUP)``), df ``G``. In an adaptive test the
choice of item ``i`` depends only on earlier answers, so with known parameters
``x_pi − E_pi`` is a martingale difference (Dawid 1984, prequential analysis): each group
residual has mean 0 and variance ``Σ V_pi`` whatever the selection rule. The rest-posterior
statistic lacks this property on adaptive logs (later items were chosen *because of* ``x_pi``):
with the true parameters it flagged 3.7 % of items at a nominal 1 %, the sequential one 0 %;
with estimated parameters the order reverses (prefix predictions do not absorb the estimation
error). Figures: benchmarks/bench_recalibration.py.

The latent density ``g`` of every statistic is the calibration's (mean and SD per skill,
``latent``), not N(0, 1): on an anchored scale the population is rarely standard.

**Infit / outfit mean-squares** (Wright & Masters 1982), at WLE θ̂ (Warm 1989):
``z²_pi = (x_pi − E_pi)² / W_pi`` with ``E_pi = Σ_k k P_ik(θ̂_p)``,
``W_pi = Σ_k (k − E_pi)² P_ik(θ̂_p)``; outfit ``= mean_p z²_pi``,
infit ``= Σ_p (x − E)² / Σ_p W_pi``. Expected 1; flagged outside ``[0.7, 1.3]`` (Wright &
Linacre 1994, "productive for measurement" range for rating scales; 0.8–1.2 is the high-stakes
MCQ range). Meant for Rasch/1PL banks; reported for every item.

**Person fit lz** (Drasgow, Levine & Williams 1985) at the person's θ̂:
``l0 = Σ_i log P_i,x(θ̂)``, ``E l0 = Σ_i Σ_k P_ik log P_ik``,
``Var l0 = Σ_i [Σ_k P_ik (log P_ik)² − (Σ_k P_ik log P_ik)²]``, ``lz = (l0 − E)/√Var``;
flagged when ``lz < −1.645``. With θ̂ estimated, lz is not exactly standard normal (Snijders 2001)
and is unreliable for fewer than 10 responses (marked).

**Reliability.** Model-based marginal reliability of a bank, in the expected-posterior-variance
form ``ρ = 1 − ∫ g(θ) / (I(θ) + 1/σ²) dθ / σ²`` (Green, Bock, Humphreys, Linn & Reckase 1984;
Thissen & Wainer 2001, ch. 4; Brown 2018): ``1/(I + 1/σ²)`` approximates the posterior variance
of a person at θ, so ρ estimates the same quantity as the empirical (EAP) reliability
``ρ = Var(θ̂) / (Var(θ̂) + mean(PSD²))`` (and ``Var(θ̂) + mean(PSD²) = σ²``). The older form
``σ² / (σ² + ∫ g/I)`` is unbounded where a test has almost no information (one flat item, or the
tails): it printed 0.022 for a data set whose empirical reliability is 0.75. Conditional SE
``1/√I(θ)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from irt import (
    Bank,
    Quadrature,
    SparseResponses,
    category_probabilities,
    expected_score,
    item_information,
    log_likelihood_grid,
    normal_grid,
    paired_category_derivatives,
    test_information,
    wle,
)
from irt.models import PROB_FLOOR

logger = logging.getLogger(__name__)

#: Free parameters per model (for degrees of freedom); polytomous: K (a and K − 1 thresholds);
#: the Rasch family's slope is common: rasch 1 (b), pcm K − 1 (its steps), rsm 1 (its location;
#: the rating-scale steps are shared by the scale's items).
N_PARAMETERS = {"1pl": 1, "2pl": 2, "3pl": 3, "4pl": 4, "rasch": 1, "rsm": 1}
FIT_ALPHA = 0.01
MIN_EXPECTED = 1.0
N_GROUPS = 10
MIN_RESPONSES = 100
MNSQ_RANGE = (0.7, 1.3)
LZ_CRIT = -1.645
MIN_PERSON_RESPONSES = 10
#: An item gets S-X² when at least this share of its responses come from complete cases.
COMPLETE_SHARE = 0.9
#: Responses per θ group of the sequential statistic.
MIN_PER_GROUP = 25


def n_parameters(model: str, n_categories: int) -> int:
    """Free parameters of one item: 1PL 1 (its b; the common a is shared), 2PL 2, … GRM/GPCM K,
    PCM K − 1, Rasch and RSM 1."""
    if model == "pcm":
        return n_categories - 1
    return N_PARAMETERS.get(model, n_categories)


# ---------------------------------------------------------------- Lord–Wingersky


def lord_wingersky(probs: NDArray[np.float64], n_categories: ArrayLike) -> NDArray[np.float64]:
    """Summed-score likelihoods ``f(s | θ_q)`` by the Lord–Wingersky (1984) recursion.

    Parameters
    ----------
    probs : ``P_ik(θ_q)``, shape ``(n_nodes, n_items, K_max)``.
    n_categories : ``K_i`` per item.

    Returns
    -------
    ``(n_nodes, S + 1)`` with ``S = Σ_i (K_i − 1)``; rows sum to 1.
    """
    ncat = np.asarray(n_categories, dtype=np.int64)
    total = int(np.sum(ncat - 1))
    f = np.zeros((probs.shape[0], total + 1))
    f[:, 0] = 1.0
    top = 0
    for i in range(probs.shape[1]):
        new = np.zeros_like(f)
        for k in range(int(ncat[i])):
            new[:, k: top + k + 1] += f[:, : top + 1] * probs[:, i, k: k + 1]
        top += int(ncat[i]) - 1
        f = new
    return f


def _collapse(n_s: NDArray, obs: NDArray, exp_p: NDArray, min_expected: float
              ) -> tuple[NDArray, NDArray, NDArray]:
    """Merge adjacent groups until every expected count ``N E_k`` reaches ``min_expected``.

    ``n_s (G,)``, ``obs (G, K)`` observed counts, ``exp_p (G, K)`` expected proportions.
    Returns merged group sizes, observed counts and expected counts.
    """
    # plain Python floats: the groups are few and the arrays tiny, numpy calls would dominate
    K = obs.shape[1]
    ns, os_, es = n_s.tolist(), obs.tolist(), (n_s[:, None] * exp_p).tolist()
    groups: list[list] = []
    acc_n, acc_o, acc_e = 0.0, [0.0] * K, [0.0] * K
    for g in range(len(ns)):
        acc_n += ns[g]
        acc_o = [u + v for u, v in zip(acc_o, os_[g], strict=True)]
        acc_e = [u + v for u, v in zip(acc_e, es[g], strict=True)]
        if acc_n > 0 and min(acc_e) >= min_expected:
            groups.append([acc_n, acc_o, acc_e])
            acc_n, acc_o, acc_e = 0.0, [0.0] * K, [0.0] * K
    if acc_n > 0:
        if groups:
            last = groups[-1]
            groups[-1] = [last[0] + acc_n, [u + v for u, v in zip(last[1], acc_o, strict=True)],
                          [u + v for u, v in zip(last[2], acc_e, strict=True)]]
        else:
            groups.append([acc_n, acc_o, acc_e])
    return (np.array([g[0] for g in groups]), np.array([g[1] for g in groups]),
            np.array([g[2] for g in groups]))


def _chi2(obs: NDArray, expected: NDArray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (obs - expected) ** 2 / expected, 0.0)
    return float(terms.sum())


# ---------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class ItemFitResult:
    """Item fit per item (arrays ``(n_items,)`` aligned with ``item_ids``).

    ``method`` is ``"S-X2"`` (complete cases) or ``"sequential"`` (sparse / adaptive data) per
    item, with the reason in ``reason``; ``statistic``, ``df``, ``p_value`` belong to that
    method (NaN: not tested, see the note). ``flag_fit`` is ``p < alpha``;
    ``flag_mnsq`` is infit or outfit outside `MNSQ_RANGE`.
    """

    item_ids: tuple[str, ...]
    skills: tuple[str, ...]
    models: tuple[str, ...]
    n_responses: NDArray[np.int64]
    method: tuple[str, ...]
    statistic: NDArray[np.float64]
    df: NDArray[np.int64]
    p_value: NDArray[np.float64]
    infit: NDArray[np.float64]
    outfit: NDArray[np.float64]
    alpha: float
    min_responses: int
    reason: tuple[str, ...] = ()

    COLUMNS = ("item_id", "skill", "model", "n", "method", "statistic", "df", "p_value",
               "infit", "outfit", "flag", "note")

    @property
    def flag_fit(self) -> NDArray[np.bool_]:
        return np.nan_to_num(self.p_value, nan=1.0) < self.alpha

    @property
    def flag_mnsq(self) -> NDArray[np.bool_]:
        lo, hi = MNSQ_RANGE
        return ((self.infit < lo) | (self.infit > hi) | (self.outfit < lo)
                | (self.outfit > hi))

    def notes(self) -> tuple[str, ...]:
        out = []
        for k in range(len(self.item_ids)):
            parts = []
            if self.n_responses[k] < self.min_responses:
                parts.append(f"unreliable: {self.n_responses[k]} < {self.min_responses} "
                             f"responses")
            if self.df[k] <= 0:
                parts.append("no degrees of freedom left after collapsing")
            if self.reason and self.reason[k]:
                parts.append(self.reason[k])
            if not np.isfinite(self.p_value[k]) and self.df[k] > 0:
                parts.append("not tested")
            out.append("; ".join(parts))
        return tuple(out)

    def to_rows(self) -> list[tuple]:
        notes = self.notes()
        rows = []
        for k, iid in enumerate(self.item_ids):
            flag = "+".join(n for n, f in (("fit", self.flag_fit[k]),
                                           ("mnsq", self.flag_mnsq[k])) if f)
            rows.append((iid, self.skills[k], self.models[k], int(self.n_responses[k]),
                         self.method[k], float(self.statistic[k]), int(self.df[k]),
                         float(self.p_value[k]), float(self.infit[k]), float(self.outfit[k]),
                         flag, notes[k]))
        return rows


@dataclass(frozen=True, eq=False)
class PersonFitResult:
    """lz person fit per person: θ̂ (WLE), lz, responses; ``flag`` is ``lz < LZ_CRIT``."""

    theta: NDArray[np.float64]
    lz: NDArray[np.float64]
    n_responses: NDArray[np.int64]
    person_ids: tuple[str, ...] | None = None

    COLUMNS = ("person_id", "theta", "n", "lz", "flag", "note")

    @property
    def flag(self) -> NDArray[np.bool_]:
        return np.nan_to_num(self.lz, nan=0.0) < LZ_CRIT

    def to_rows(self) -> list[tuple]:
        ids = self.person_ids or tuple(str(p) for p in range(self.lz.shape[0]))
        return [(ids[p], float(self.theta[p]), int(self.n_responses[p]), float(self.lz[p]),
                 "misfit" if self.flag[p] else "",
                 f"unreliable: fewer than {MIN_PERSON_RESPONSES} responses"
                 if self.n_responses[p] < MIN_PERSON_RESPONSES else "")
                for p in range(self.lz.shape[0])]


@dataclass(frozen=True, eq=False)
class InformationCurves:
    """Test information and conditional SE per skill on a θ grid.

    ``information`` and ``se`` have shape ``(n_theta, n_skills)``; ``reliability`` is the
    model-based marginal reliability of each skill under N(0, 1).
    """

    theta: NDArray[np.float64]
    skills: tuple[str, ...]
    information: NDArray[np.float64]
    se: NDArray[np.float64]
    reliability: NDArray[np.float64]

    def to_rows(self) -> list[tuple]:
        return [(skill, float(t), float(self.information[q, s]), float(self.se[q, s]))
                for s, skill in enumerate(self.skills) for q, t in enumerate(self.theta)]


# ---------------------------------------------------------------- S-X²


def s_x2(responses: SparseResponses, bank: Bank, items: ArrayLike, *,
         quadrature: Quadrature | None = None, min_expected: float = MIN_EXPECTED
         ) -> tuple[NDArray, NDArray, NDArray]:
    """Orlando–Thissen S-X² for ``items`` of a complete form (every listed item answered by
    every person who answered any).

    Returns ``(statistic, df, p_value)`` arrays aligned with ``items`` (positions in ``bank``).
    """
    idx = np.asarray(items, dtype=np.int64)
    quad = quadrature or normal_grid(61)
    sub = bank.take(idx)
    if np.any(np.diff(idx) <= 0):
        raise ValueError("s_x2 needs distinct item positions in increasing order")
    in_form = np.isin(responses.item, idx)
    person, item, resp = (responses.person[in_form], np.searchsorted(idx, responses.item[in_form]),
                          responses.response[in_form])
    counts = np.bincount(person, minlength=responses.n_persons)
    persons = np.flatnonzero(counts > 0)
    if np.any(counts[persons] != idx.size):
        raise ValueError("S-X² needs complete forms: some persons did not answer every item")
    x = np.zeros((responses.n_persons, idx.size), dtype=np.int64)
    x[person, item] = resp
    x = x[persons]
    score = x.sum(axis=1)
    ncat = sub.n_categories
    probs = category_probabilities(quad.nodes, sub)
    w = quad.weights
    full = lord_wingersky(probs, ncat)
    marg = w @ full                                       # P(s)
    S = full.shape[1] - 1
    stat = np.full(idx.size, np.nan)
    dfs = np.zeros(idx.size, dtype=np.int64)
    pval = np.full(idx.size, np.nan)
    n_s = np.bincount(score, minlength=S + 1).astype(float)
    # f_{−j} = (items before j) ⊛ (items after j): prefix and suffix recursions, then one
    # convolution per item, instead of a full recursion per item
    prefix = [np.ones((probs.shape[0], 1))]
    for j in range(idx.size - 1):
        prefix.append(_lw_step(prefix[-1], probs[:, j], int(ncat[j])))
    suffix = [np.ones((probs.shape[0], 1))]
    for j in range(idx.size - 1, 0, -1):
        suffix.append(_lw_step(suffix[-1], probs[:, j], int(ncat[j])))
    suffix.reverse()
    for j in range(idx.size):
        rest = _convolve(prefix[j], suffix[j])               # (Q, S − K_j + 2)
        K = int(ncat[j])
        expected = np.zeros((S + 1, K))
        for k in range(K):
            shifted = np.zeros_like(full)
            shifted[:, k: k + rest.shape[1]] = rest
            expected[:, k] = (w * probs[:, j, k]) @ shifted
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = np.where(marg[:, None] > 0, expected / marg[:, None], 0.0)
        obs = np.zeros((S + 1, K))
        np.add.at(obs, (score, x[:, j]), 1.0)
        m = n_parameters(sub.models[j], K)
        if K == 2:
            rng = slice(1, S)                                    # scores 1 … S − 1
            n_g, o_g, e_g = _collapse(n_s[rng], obs[rng], expected[rng], min_expected)
            stat[j] = _chi2(o_g, e_g)
            dfs[j] = n_g.shape[0] - m
        else:
            stat[j], contrasts = _polytomous_cells(obs, n_s[:, None] * expected, K,
                                                   min_expected)
            dfs[j] = contrasts - m
        pval[j] = float(special.chdtrc(dfs[j], stat[j])) if dfs[j] > 0 else np.nan
    return stat, dfs, pval


def _polytomous_cells(obs: NDArray, exp_counts: NDArray, K: int, min_expected: float
                      ) -> tuple[float, int]:
    """Pearson sum and contrasts of a polytomous item (Kang & Chen 2008).

    The extreme scores 0 and S are dropped; rows ``s < K − 1`` and ``s > S − K + 1``, where
    some categories are impossible, are pooled into the nearest row with all categories; then,
    within each score row, the category with the smallest expected count is merged into its
    adjacent category with the smaller expected count until every count is at least
    ``min_expected``. Each row contributes (categories left − 1) contrasts.
    """
    S = obs.shape[0] - 1
    first, last = K - 1, S - K + 1
    if last < first:
        return float("nan"), 0
    o = obs[first: last + 1].copy()
    e = exp_counts[first: last + 1].copy()
    o[0] += obs[1:first].sum(axis=0)
    e[0] += exp_counts[1:first].sum(axis=0)
    o[-1] += obs[last + 1: S].sum(axis=0)
    e[-1] += exp_counts[last + 1: S].sum(axis=0)
    keep = o.sum(axis=1) > 0
    total, contrasts = 0.0, 0
    for orow, erow in zip(o[keep].tolist(), e[keep].tolist(), strict=True):
        while len(erow) > 1 and min(erow) < min_expected:
            k = erow.index(min(erow))
            if k == 0:
                nb = 1
            elif k == len(erow) - 1:
                nb = k - 1
            else:
                nb = k - 1 if erow[k - 1] <= erow[k + 1] else k + 1
            o_k, e_k = orow.pop(k), erow.pop(k)
            nb -= nb > k                          # indices after k moved down by one
            orow[nb] += o_k
            erow[nb] += e_k
        cells = [(ob, ex) for ob, ex in zip(orow, erow, strict=True) if ex > 0]
        total += sum((ob - ex) ** 2 / ex for ob, ex in cells)
        contrasts += max(len(cells) - 1, 0)
    return total, contrasts


def _lw_step(f: NDArray, p: NDArray, K: int) -> NDArray:
    """One Lord–Wingersky step: add an item with category probabilities ``p (Q, ≥K)``."""
    out = np.zeros((f.shape[0], f.shape[1] + K - 1))
    for k in range(K):
        out[:, k: k + f.shape[1]] += f * p[:, k: k + 1]
    return out


def _convolve(f: NDArray, g: NDArray) -> NDArray:
    """Row-wise convolution of two summed-score distributions ``(Q, m)`` and ``(Q, n)``."""
    if f.shape[1] > g.shape[1]:
        f, g = g, f
    out = np.zeros((f.shape[0], f.shape[1] + g.shape[1] - 1))
    for t in range(f.shape[1]):
        out[:, t: t + g.shape[1]] += f[:, t: t + 1] * g
    return out


@dataclass(frozen=True, eq=False)
class RestPredictions:
    """Per response: rest-posterior mean θ̂_{−i}, predictive mean and variance of the score."""

    theta: NDArray[np.float64]
    expected: NDArray[np.float64]
    variance: NDArray[np.float64]


def rest_predictions(responses: SparseResponses, bank: Bank,
                     quadrature: Quadrature | None = None, chunk: int = 20_000
                     ) -> RestPredictions:
    """Predictive mean and variance of every response given the person's other responses.

    ``responses`` and ``bank`` should cover one skill (one θ). See the module docstring.
    """
    quad = quadrature or normal_grid(61)
    nodes = quad.nodes
    loglik = log_likelihood_grid(nodes, bank, responses)       # (persons, Q)
    probs = category_probabilities(nodes, bank)                     # (Q, items, K)
    logp = np.log(np.clip(probs, PROB_FLOOR, 1.0))
    kk = np.arange(probs.shape[2], dtype=float)
    ex = probs @ kk                                                 # (Q, items)
    ex2 = probs @ (kk * kk)
    n = responses.n_responses
    theta = np.empty(n)
    mean = np.empty(n)
    var = np.empty(n)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        p, i, x = responses.person[sl], responses.item[sl], responses.response[sl]
        lp = loglik[p] - logp[:, i, x].T + quad.log_weights[None, :]
        lp -= lp.max(axis=1, keepdims=True)
        post = np.exp(lp)
        post /= post.sum(axis=1, keepdims=True)
        theta[sl] = post @ nodes
        m1 = np.sum(post * ex[:, i].T, axis=1)
        m2 = np.sum(post * ex2[:, i].T, axis=1)
        mean[sl], var[sl] = m1, np.maximum(m2 - m1 * m1, PROB_FLOOR)
    return RestPredictions(theta, mean, var)


MIN_GROUP_SIZE = 5


def rest_group_fit(responses: SparseResponses, bank: Bank, pred: RestPredictions, item: int,
                   *, n_groups: int = N_GROUPS) -> tuple[float, int, float]:
    """``(Q, df, p)`` of one item from `rest_predictions` (see the module docstring)."""
    rows = np.flatnonzero(responses.item == item)
    if rows.size < 2:
        return float("nan"), 0, float("nan")
    t = pred.theta[rows]
    edges = np.quantile(t, np.linspace(0, 1, n_groups + 1)[1:-1])
    g = np.searchsorted(edges, t, side="right")
    G = n_groups
    size = np.bincount(g, minlength=G).astype(float)
    o = np.bincount(g, weights=responses.response[rows].astype(float), minlength=G)
    e = np.bincount(g, weights=pred.expected[rows], minlength=G)
    v = np.bincount(g, weights=pred.variance[rows], minlength=G)
    merged: list[list[float]] = []
    acc = np.zeros(4)
    for k in range(G):
        acc += (size[k], o[k], e[k], v[k])
        if acc[0] >= MIN_GROUP_SIZE:
            merged.append(list(acc))
            acc = np.zeros(4)
    if acc[0] > 0:
        if merged:
            merged[-1] = list(np.asarray(merged[-1]) + acc)
        else:
            merged.append(list(acc))
    m = np.asarray(merged)
    q = float(np.sum((m[:, 1] - m[:, 2]) ** 2 / m[:, 3]))
    df = m.shape[0] - n_parameters(bank.models[item], int(bank.n_categories[item]))
    return q, int(df), float(stats.chi2.sf(q, df)) if df > 0 else float("nan")


# ---------------------------------------------------------------- mean-squares and lz


def _residual_terms(responses: SparseResponses, bank: Bank, theta: NDArray
                    ) -> tuple[NDArray, NDArray, NDArray]:
    """Per response: expected score E, variance W and the observed score."""
    p = paired_category_derivatives(theta[responses.person], bank.rows(responses.item), 0)[0]
    k = np.arange(p.shape[1], dtype=float)
    e = p @ k
    w = np.sum(p * (k[None, :] - e[:, None]) ** 2, axis=1)
    return e, np.maximum(w, PROB_FLOOR), responses.response.astype(float)


def mean_squares(responses: SparseResponses, bank: Bank, theta: ArrayLike | None = None
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Infit and outfit mean-squares per item (Wright & Masters 1982), at WLE θ̂ by default."""
    responses.check_categories(bank)
    th = wle(responses, bank).theta if theta is None else np.asarray(theta, dtype=float)
    e, w, x = _residual_terms(responses, bank, th)
    r2 = (x - e) ** 2
    n = np.bincount(responses.item, minlength=len(bank)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        outfit = np.bincount(responses.item, weights=r2 / w, minlength=len(bank)) / n
        infit = (np.bincount(responses.item, weights=r2, minlength=len(bank))
                 / np.bincount(responses.item, weights=w, minlength=len(bank)))
    return infit, outfit


def person_fit(responses: SparseResponses, bank: Bank, theta: ArrayLike | None = None,
               person_ids: tuple[str, ...] | None = None) -> PersonFitResult:
    """lz of every person (Drasgow, Levine & Williams 1985), at WLE θ̂ by default."""
    responses.check_categories(bank)
    th = wle(responses, bank).theta if theta is None else np.asarray(theta, dtype=float)
    p = paired_category_derivatives(th[responses.person], bank.rows(responses.item), 0)[0]
    logp = np.log(np.clip(p, PROB_FLOOR, 1.0))
    j = np.arange(responses.n_responses)
    valid = p > 0
    ent = np.sum(np.where(valid, p * logp, 0.0), axis=1)
    second = np.sum(np.where(valid, p * logp * logp, 0.0), axis=1)
    n_p = responses.n_persons
    l0 = np.bincount(responses.person, weights=logp[j, responses.response], minlength=n_p)
    mean = np.bincount(responses.person, weights=ent, minlength=n_p)
    var = np.bincount(responses.person, weights=second - ent * ent, minlength=n_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        lz = np.where(var > 0, (l0 - mean) / np.sqrt(var), np.nan)
    return PersonFitResult(th, lz, responses.counts_per_person(), person_ids)


# ---------------------------------------------------------------- driver


def item_fit(responses: SparseResponses, bank: Bank, *, alpha: float = FIT_ALPHA,
             quadrature: Quadrature | None = None, min_expected: float = MIN_EXPECTED,
             n_groups: int = N_GROUPS, min_responses: int = MIN_RESPONSES,
             latent: Mapping[str, tuple[float, float]] | None = None,
             estimated: ArrayLike | None = None) -> ItemFitResult:
    """Item fit of every item, the statistic chosen per item (see the module docstring):
    S-X² on the complete cases of a skill, the sequential statistic on sparse or adaptive data,
    plus infit/outfit mean-squares.

    Parameters
    ----------
    responses : long-format responses indexed to ``bank``; a person's rows in administration
        order (the sequential statistic conditions on the earlier ones).
    bank : the calibrated item parameters.
    alpha : items with ``p < alpha`` are flagged (default 0.01).
    quadrature : latent grid (default N(mean, sd) per skill from ``latent``, 61 nodes).
    min_expected : smallest expected cell count before S-X² groups are merged.
    n_groups : at most this many θ groups for the sequential statistic.
    min_responses : rows with fewer responses are marked unreliable.
    latent : ``{skill: (mean, sd)}`` of the calibration's latent distribution (default N(0, 1)).
    estimated : per item, whether its parameters were estimated from these responses (default
        all); fixed (anchor) items keep all their degrees of freedom.
    """
    responses.check_categories(bank)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = len(bank)
    est = np.ones(n, dtype=bool) if estimated is None else np.asarray(estimated, dtype=bool)
    if est.shape != (n,):
        raise ValueError(f"estimated must have one value per item ({n})")
    stat = np.full(n, np.nan)
    dfs = np.zeros(n, dtype=np.int64)
    pval = np.full(n, np.nan)
    method = [""] * n
    reason = [""] * n
    per_item = np.bincount(responses.item, minlength=n)
    for skill in dict.fromkeys(bank.skills):
        members = bank.skill_indices(skill)
        mean, sd = (latent or {}).get(skill, (0.0, 1.0))
        quad = quadrature or normal_grid(61, mean, sd)
        # the form: the skill's items that were administered (bank items nobody saw stay NaN)
        form = members[per_item[members] > 0]
        for i in members[per_item[members] == 0]:
            method[i], reason[i] = "none", "no responses"
        in_skill = np.isin(responses.item, members)
        counts = np.bincount(responses.person[in_skill], minlength=responses.n_persons)
        complete = counts == form.size
        from_complete = np.bincount(responses.item[in_skill],
                                    weights=complete[responses.person[in_skill]].astype(float),
                                    minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = from_complete / per_item
        use_sx2 = form[share[form] >= COMPLETE_SHARE] if form.size >= 2 else form[:0]
        n_complete = int(complete[counts > 0].sum())
        if use_sx2.size and n_complete >= 2:
            keep = in_skill & complete[responses.person]
            cc = SparseResponses(responses.person[keep], responses.item[keep],
                                 responses.response[keep], responses.n_persons,
                                 responses.n_items)
            s, d, p = s_x2(cc, bank, form, quadrature=quad, min_expected=min_expected)
            pos = np.searchsorted(form, use_sx2)
            stat[use_sx2], dfs[use_sx2], pval[use_sx2] = s[pos], d[pos], p[pos]
            left = int(np.sum(counts > 0)) - n_complete
            for i in use_sx2:
                method[i] = "S-X2"
                reason[i] = (f"S-X2 on {n_complete} complete cases"
                             + (f" ({left} incomplete left out)" if left else ""))
        rest = [i for i in form if method[i] == ""]
        if not rest:
            continue
        sub = _skill_subset(responses, members)
        sub_bank = bank.take(members)
        why = (f"{share[rest[0]]:.0%} of its responses from complete cases"
               if form.size >= 2 and n_complete else "sparse data")
        if any(est[i] for i in rest):
            pred = rest_predictions(sub, sub_bank, quad)
            for i in (i for i in rest if est[i]):
                local = int(np.searchsorted(members, i))
                stat[i], dfs[i], pval[i] = rest_group_fit(sub, sub_bank, pred, local,
                                                          n_groups=n_groups)
                method[i] = "rest-theta"
                reason[i] = f"rest-theta (estimated item): {why}"
        if not all(est[i] for i in rest):
            pred = sequential_predictions(sub, sub_bank, quad)
            for i in (i for i in rest if not est[i]):
                local = int(np.searchsorted(members, i))
                stat[i], dfs[i], pval[i] = sequential_group_fit(
                    sub, sub_bank, pred, local, n_groups=n_groups, estimated=False)
                method[i] = "sequential"
                reason[i] = f"sequential (fixed item): {why}"
    infit, outfit = mean_squares(responses, bank)
    return ItemFitResult(bank.item_ids, bank.skills, bank.models, per_item, tuple(method), stat,
                         dfs, pval, infit, outfit, alpha, min_responses, tuple(reason))


def sequential_predictions(responses: SparseResponses, bank: Bank,
                           quadrature: Quadrature | None = None) -> RestPredictions:
    """Per response: the posterior mean of θ given the person's *earlier* responses, and the
    predictive mean and variance of the response (see the module docstring).

    A person's earlier responses are the rows before it in ``responses`` (administration order).
    ``responses`` and ``bank`` should cover one skill (one θ).
    """
    quad = quadrature or normal_grid(61)
    nodes = quad.nodes
    probs = category_probabilities(nodes, bank)                         # (Q, items, K)
    logp = np.log(np.clip(probs, PROB_FLOOR, 1.0))
    kk = np.arange(probs.shape[2], dtype=float)
    ex, ex2 = probs @ kk, probs @ (kk * kk)                             # (Q, items)
    order = np.argsort(responses.person, kind="stable")
    person, item = responses.person[order], responses.item[order]
    ll = logp[:, item, responses.response[order]].T                    # (n, Q)
    # prefix sums within each person: cumulative sum minus the sum before the person's first row
    before = np.cumsum(ll, axis=0) - ll
    first = np.r_[0, np.flatnonzero(np.diff(person)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, person.size]))
    lp = before - before[start] + quad.log_weights[None, :]
    lp -= lp.max(axis=1, keepdims=True)
    post = np.exp(lp)
    post /= post.sum(axis=1, keepdims=True)
    m1 = np.sum(post * ex[:, item].T, axis=1)
    m2 = np.sum(post * ex2[:, item].T, axis=1)
    theta, mean, var = (np.empty(person.size) for _ in range(3))
    theta[order], mean[order] = post @ nodes, m1
    var[order] = np.maximum(m2 - m1 * m1, PROB_FLOOR)
    return RestPredictions(theta, mean, var)


def sequential_group_fit(responses: SparseResponses, bank: Bank, pred: RestPredictions,
                         item: int, *, n_groups: int = N_GROUPS, estimated: bool = True
                         ) -> tuple[float, int, float]:
    """``(Q, df, p)`` of one item from `sequential_predictions` (module docstring); NaN when
    the item has too few responses for ``m + 1`` groups of `MIN_PER_GROUP`."""
    rows = np.flatnonzero(responses.item == item)
    m = n_parameters(bank.models[item], int(bank.n_categories[item])) if estimated else 0
    G = min(n_groups, rows.size // MIN_PER_GROUP)
    if max(m + 1, 2) > G:
        return float("nan"), 0, float("nan")
    t = pred.theta[rows]
    edges = np.quantile(t, np.linspace(0, 1, G + 1)[1:-1])
    g = np.searchsorted(edges, t, side="right")
    o = np.bincount(g, weights=responses.response[rows].astype(float), minlength=G)
    e = np.bincount(g, weights=pred.expected[rows], minlength=G)
    v = np.bincount(g, weights=pred.variance[rows], minlength=G)
    used = np.bincount(g, minlength=G) > 0
    q = float(np.sum((o[used] - e[used]) ** 2 / v[used]))
    df = int(used.sum()) - m
    return q, df, float(stats.chi2.sf(q, df)) if df > 0 else float("nan")


def _skill_subset(responses: SparseResponses, members: NDArray[np.int64]) -> SparseResponses:
    """The responses to ``members`` (sorted bank positions), re-indexed to ``0…len−1``."""
    keep = np.isin(responses.item, members)
    return SparseResponses(responses.person[keep], np.searchsorted(members, responses.item[keep]),
                           responses.response[keep], responses.n_persons, members.size)


def marginal_reliability(bank: Bank, quadrature: Quadrature | None = None) -> float:
    """Model-based marginal reliability ``1 − ∫ g(θ)/(I(θ) + 1/σ²) dθ / σ²`` (module docstring;
    Green et al. 1984, in its expected-posterior-variance form)."""
    quad = quadrature or normal_grid(61, half_width=4.0)
    info = np.maximum(test_information(quad.nodes, bank), 0.0)
    mean = quad.weights @ quad.nodes
    var = float(quad.weights @ (quad.nodes - mean) ** 2)
    return float(1.0 - (quad.weights @ (1.0 / (info + 1.0 / var))) / var)


def administered_reliability(responses: SparseResponses, bank: Bank,
                             quadrature: Quadrature | None = None) -> float:
    """Model-based marginal reliability of the tests *as administered*:
    ``1 − mean_p ∫ g(θ) / (I_p(θ) + 1/σ²) dθ / σ²`` with ``I_p`` the information of the items
    person ``p`` answered. On sparse or adaptive data this, not the reliability of the whole
    bank, is what the empirical reliability estimates. ``responses`` cover one skill."""
    quad = quadrature or normal_grid(61, half_width=4.0)
    info = item_information(quad.nodes, bank)                      # (Q, items)
    per_person = np.zeros((responses.n_persons, quad.nodes.size))
    np.add.at(per_person, responses.person, info[:, responses.item].T)
    answered = np.bincount(responses.person, minlength=responses.n_persons) > 0
    if not answered.any():
        return float("nan")
    mean = quad.weights @ quad.nodes
    var = float(quad.weights @ (quad.nodes - mean) ** 2)
    post = (1.0 / (per_person[answered] + 1.0 / var)) @ quad.weights
    return float(1.0 - np.mean(post) / var)


def empirical_reliability(theta: ArrayLike, se: ArrayLike) -> float:
    """EAP reliability ``Var(θ̂) / (Var(θ̂) + mean(PSD²))`` from data."""
    t, s = np.asarray(theta, dtype=float), np.asarray(se, dtype=float)
    v = float(np.var(t))
    return v / (v + float(np.mean(s * s)))


def information_curves(bank: Bank, theta: ArrayLike | None = None) -> InformationCurves:
    """Test information, conditional SE ``1/√I(θ)`` and marginal reliability per skill."""
    grid = np.linspace(-4, 4, 81) if theta is None else np.asarray(theta, dtype=float)
    skills = tuple(dict.fromkeys(bank.skills))
    info = np.column_stack([test_information(grid, bank.take(bank.skill_indices(s)))
                            for s in skills])
    rel = np.array([marginal_reliability(bank.take(bank.skill_indices(s))) for s in skills])
    return InformationCurves(grid, skills, info, 1.0 / np.sqrt(np.maximum(info, 1e-12)), rel)


@dataclass(frozen=True, eq=False)
class EmpiricalICC:
    """Observed mean score by θ group against the model for one item.

    Groups are quantiles of the rest-posterior mean θ̂_{−i} (the person's other responses of the
    skill). ``theta_group`` mean θ̂_{−i} per group, ``observed`` mean observed score,
    ``expected`` mean predictive score (what the model expects for exactly these persons, EAP
    shrinkage included), ``n`` group sizes; ``theta``/``model`` the model curve ``E[X | θ]``.
    """

    item_id: str
    theta_group: NDArray[np.float64]
    observed: NDArray[np.float64]
    expected: NDArray[np.float64]
    n: NDArray[np.int64]
    theta: NDArray[np.float64]
    model: NDArray[np.float64]


def empirical_icc(responses: SparseResponses, bank: Bank, item: int,
                  n_groups: int = N_GROUPS) -> EmpiricalICC:
    """Data for an empirical-vs-model ICC plot of item position ``item``."""
    members = bank.skill_indices(bank.skills[item])
    sub = _skill_subset(responses, members)
    local = int(np.searchsorted(members, item))
    rows = np.flatnonzero(sub.item == local)
    if rows.size == 0:
        raise ValueError(f"item {bank.item_ids[item]!r} has no responses")
    pred = rest_predictions(sub, bank.take(members))
    t = pred.theta[rows]
    edges = np.quantile(t, np.linspace(0, 1, n_groups + 1)[1:-1])
    g = np.searchsorted(edges, t, side="right")
    n = np.bincount(g, minlength=n_groups)
    used = n > 0
    mean = lambda v: np.bincount(g, weights=v, minlength=n_groups)[used] / n[used]  # noqa: E731
    grid = np.linspace(-4, 4, 161)
    return EmpiricalICC(bank.item_ids[item], mean(t), mean(sub.response[rows].astype(float)),
                        mean(pred.expected[rows]), n[used], grid,
                        expected_score(grid, bank.take([item]))[:, 0])
