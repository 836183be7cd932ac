"""Test-security forensics on operational data: compromised items and aberrant candidates.

Both detectors judge each answer against what the model expects of *this* candidate on *this*
item, with the candidate's ability and speed estimated without the answer being judged:

* ``P_ij = P_i(θ̂_j^{(−i)})``, the model probability of a correct answer, and
* ``z_ij``, the standardized log-time residual of the lognormal response-time model
  (`irt.response_time.loo_time_residuals`; van der Linden & Guo 2008).

**Item compromise** (`monitor_item`). Once an item is known to a share π of candidates, a knower
answers correctly and fast. Against that alternative the log-likelihood ratio of one answer is

    ℓ_ij = ln[(1 − π) + π · (x_ij / P_ij) · exp(−δ z_ij − δ²/2)],

(knowers' log times shifted by −δ residual SDs; without a recorded time the exponential factor is
1). Page's CUSUM ``S_k = max(0, S_{k−1} + ℓ_k)`` over the item's answers in time order flags the
item when S reaches h; the change is dated at the first answer after S last left 0 (Page 1954;
the CUSUM for item exposure and compromise: Veerkamp & Glas 2000, "Detection of known items in
adaptive testing with a statistical quality control method", J. Educ. Behav. Stat. 25(4);
van Krimpen-Stoop & Meijer 2001 for CUSUMs in CAT; Choe, Zhang & Chang 2018 on sequential
detection of compromised items with response times).

**Candidate integrity** (`integrity_evidence`). Per candidate: *rapid guesses* — answers faster
than a normative threshold, 10 % of the item's typical time (Wise & Ma 2012, "NT10"); the
*pre-knowledge* statistic — a mixture log-likelihood ratio over the candidate's answers, joint in
correctness and time, maximised over π and over the candidate's speed under the alternative
(`preknowledge_mixture_llr`); and *aberrance* — Snijders' lz* (`irt.person_fit`). Thresholds are
not asymptotic: they are the quantiles of these statistics among simulated honest candidates
taking the same adaptive test (`benchmarks/bench_forensics.py`), so the false-positive rate a
report quotes is measured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.models import probability
from irt.params import Bank

#: Design alternative of the item monitor: share of candidates who know a leaked item and how
#: much faster (in residual SDs of log time) they answer it.
LEAK_SHARE = 0.3
LEAK_SPEEDUP = 1.0
#: Default CUSUM alarm level (log-likelihood-ratio units); see benchmarks/RESULTS.md for the
#: false-alarm rate and detection delay it gives.
CUSUM_THRESHOLD = 14.0
#: Probabilities are floored here so one surprising answer cannot dominate the statistic (an
#: ability estimate that is off by a lot makes P tiny).
PROB_FLOOR = 0.1
#: Normative threshold for a rapid guess: a time below this share of the item's typical time.
RAPID_SHARE = 0.10
RAPID_MIN_SECONDS = 1.0
#: Shares of known items scanned by the candidate pre-knowledge statistic.
PREKNOWLEDGE_SHARES = (0.1, 0.2, 0.3, 0.5)


def answer_llr(correct: ArrayLike, p_correct: ArrayLike, z_time: ArrayLike | None, *,
               share: float = LEAK_SHARE, speedup: float = LEAK_SPEEDUP) -> NDArray[np.float64]:
    """ℓ = ln[(1 − π) + π (x/P) exp(−δ z − δ²/2)] per answer (NaN z: no time evidence)."""
    x = np.asarray(correct, dtype=np.float64)
    p = np.maximum(np.asarray(p_correct, dtype=np.float64), PROB_FLOOR)
    lr = x / p
    if z_time is not None:
        z = np.asarray(z_time, dtype=np.float64)
        time_lr = np.exp(np.clip(-speedup * z - 0.5 * speedup**2, -50.0, 50.0))
        lr = lr * np.where(np.isfinite(z), time_lr, 1.0)
    return np.log((1.0 - share) + share * lr)


@dataclass(frozen=True)
class CompromiseAlarm:
    """An item flagged by the monitor: when the change began (index and time of the first
    answer after the CUSUM last left 0) and the evidence since then."""

    item_id: str
    alarm_index: int
    start_index: int
    started_at: dt.datetime | None
    flagged_at: dt.datetime | None
    statistic: float
    n_since_start: int
    correct_since_start: int
    expected_correct_since_start: float
    fast_correct_since_start: int
    mean_time_residual_since_start: float | None


#: Quadrature grid of `loo_eap_probabilities` (N(0, 1) prior).
LOO_GRID = np.linspace(-5.0, 5.0, 81)


def loo_eap_probabilities(group: ArrayLike, item: ArrayLike, correct: ArrayLike, bank: Bank,
                          n_groups: int, grid: ArrayLike = LOO_GRID) -> NDArray[np.float64]:
    """``P_i(θ̂_g^{(−i)})`` for every answer: the item's probability of a correct answer at the
    EAP of θ from the *other* answers of the answer's group ``g`` (one person's answers in one
    skill) under a N(0, 1) prior (Bock & Mislevy 1982),

        θ̂_g^{(−i)} = Σ_q θ_q w_q / Σ_q w_q,
        w_q = φ(θ_q) Π_{k ∈ g, k ≠ i} P_k(θ_q)^{x_k} (1 − P_k(θ_q))^{1 − x_k},

    on the nodes θ_q of ``grid``: the ability "estimated without the answer being judged" that
    the forensics statistics need (van Krimpen-Stoop & Meijer 2001). Dichotomous items only;
    ``item`` indexes ``bank``; computed in blocks of 20,000 answers."""
    g = np.asarray(group, dtype=np.int64)
    i = np.asarray(item, dtype=np.int64)
    x = np.asarray(correct, dtype=np.float64)
    nodes = np.asarray(grid, dtype=np.float64)
    p_grid = np.clip(probability(nodes, bank), 1e-9, 1 - 1e-9)     # (nodes, items)
    out = np.empty(i.size)
    total = np.zeros((n_groups, nodes.size))
    blocks = [slice(k, k + 20_000) for k in range(0, i.size, 20_000)]

    def log_p(s: slice) -> NDArray[np.float64]:
        return np.where(x[s, None] == 1, np.log(p_grid[:, i[s]].T),
                        np.log1p(-p_grid[:, i[s]].T))

    for s in blocks:
        np.add.at(total, g[s], log_p(s))
    for s in blocks:
        loo = total[g[s]] - log_p(s) - 0.5 * nodes**2
        loo -= loo.max(axis=1, keepdims=True)
        w = np.exp(loo)
        theta = (w @ nodes) / w.sum(axis=1)
        it = bank.take(i[s])
        out[s] = it.c + (it.d - it.c) / (1.0 + np.exp(-it.a * (theta - it.b)))
    return out


def cusum_path(llr: ArrayLike) -> NDArray[np.float64]:
    """Page's one-sided CUSUM ``S_k = max(0, S_{k−1} + ℓ_k)``, S_0 = 0."""
    values = np.asarray(llr, dtype=np.float64)
    out = np.empty_like(values)
    s = 0.0
    for k, v in enumerate(values):
        s = max(0.0, s + v)
        out[k] = s
    return out


def monitor_item(item_id: str, correct: ArrayLike, p_correct: ArrayLike,
                 z_time: ArrayLike | None = None, times: Sequence[dt.datetime] | None = None, *,
                 threshold: float = CUSUM_THRESHOLD, share: float = LEAK_SHARE,
                 speedup: float = LEAK_SPEEDUP) -> CompromiseAlarm | None:
    """Run the CUSUM over one item's answers (in time order); the first alarm, or None."""
    x = np.asarray(correct, dtype=np.float64)
    p = np.asarray(p_correct, dtype=np.float64)
    z = None if z_time is None else np.asarray(z_time, dtype=np.float64)
    if not (x.shape == p.shape and (z is None or z.shape == x.shape)
            and (times is None or len(times) == x.size)):
        raise ValueError(f"item {item_id}: answers, probabilities, residuals and times differ "
                         f"in length")
    path = cusum_path(answer_llr(x, p, z, share=share, speedup=speedup))
    hits = np.flatnonzero(path >= threshold)
    if hits.size == 0:
        return None
    k = int(hits[0])
    zeros = np.flatnonzero(path[: k + 1] == 0.0)
    start = int(zeros[-1]) + 1 if zeros.size else 0
    seg = slice(start, k + 1)
    fast = 0
    mean_z = None
    if z is not None:
        zs = z[seg]
        fast = int(np.sum((x[seg] == 1) & (zs < -1.0)))
        finite = zs[np.isfinite(zs)]
        mean_z = float(finite.mean()) if finite.size else None
    return CompromiseAlarm(
        item_id, k, start, None if times is None else times[start],
        None if times is None else times[k], float(path[k]), k + 1 - start,
        int(x[seg].sum()), float(p[seg].sum()), fast, mean_z)


@dataclass(frozen=True)
class IntegrityEvidence:
    """Per-candidate statistics behind an integrity note."""

    n_answers: int
    rapid: int
    preknowledge_llr: float
    lz_star: float | None


@dataclass(frozen=True)
class IntegrityThresholds:
    """Where a statistic becomes a note, with the share of simulated honest candidates that
    cross it (the false-positive rate a report may quote), measured on ``n_simulated``
    simulees of tests of ``n_answers`` scored answers — the null distributions of the
    rapid-guess count and of the pre-knowledge statistic depend on the number of answers, so
    a rate holds for the test length it was measured at."""

    rapid_count: int
    preknowledge_llr: float
    lz_star: float
    false_positive_rate: float
    n_simulated: int
    n_answers: int


def rapid_guesses(seconds: ArrayLike, typical_seconds: ArrayLike) -> NDArray[np.bool_]:
    """Answers faster than the normative threshold max(1 s, 10 % of the item's typical time)
    (Wise & Ma 2012). NaN times are never rapid."""
    t = np.asarray(seconds, dtype=np.float64)
    limit = np.maximum(RAPID_SHARE * np.asarray(typical_seconds, dtype=np.float64),
                       RAPID_MIN_SECONDS)
    return np.isfinite(t) & (t < limit)


def preknowledge_llr(correct: ArrayLike, p_correct: ArrayLike, z_time: ArrayLike | None,
                     shares: Sequence[float] = PREKNOWLEDGE_SHARES,
                     speedup: float = LEAK_SPEEDUP) -> float:
    """max over π of Σ ℓ(π) over one candidate's answers (0 when no π helps), with the time
    residuals ``z_time`` taken as given (the item monitor's ℓ). Superseded for candidates by
    `preknowledge_mixture_llr`, which does not let the known answers set the speed they are
    judged against."""
    best = 0.0
    for share in shares:
        best = max(best, float(np.sum(answer_llr(correct, p_correct, z_time, share=share,
                                                 speedup=speedup))))
    return best


#: Speed-up of an answer to a known item assumed by `preknowledge_mixture_llr`: its log time is
#: shifted by −s, s = ln 2 ("half the usual time", the design alternative). Scanning ln 3 as
#: well raised the null's tail more than the power (benchmarks/RESULTS.md, issue 17).
PREKNOWLEDGE_LOG_SPEEDUPS = (float(np.log(2.0)),)
#: Speeds scanned by `preknowledge_mixture_llr` around the candidate's all-answer estimate τ̂₀:
#: known answers make τ̂₀ too fast, so the grid reaches 1 log-unit slower, 0.25 faster.
TAU_OFFSETS = np.linspace(-1.0, 0.25, 126)


def preknowledge_mixture_llr(correct: ArrayLike, p_correct: ArrayLike,
                             log_seconds: ArrayLike | None, beta: ArrayLike | None,
                             alpha: ArrayLike | None, sigma_tau: float | None, *,
                             shares: Sequence[float] = PREKNOWLEDGE_SHARES,
                             log_speedups: Sequence[float] = PREKNOWLEDGE_LOG_SPEEDUPS
                             ) -> float:
    """Person-level mixture likelihood ratio for item pre-knowledge, joint in correctness and
    time, with the candidate's speed τ re-estimated under each hypothesis.

    Null (the lognormal model, van der Linden 2006, with the IRT model): answer i is correct
    with probability P_i and ``ln t_i ~ N(β_i − τ, 1/α_i²)``. Alternative: each answer is,
    independently with probability π, to a *known* item — correct, with log time shifted by
    −s. With the residual ``e_i(τ) = ln t_i − β_i + τ`` the known/normal density ratio is

        r_i(τ, s) = (x_i / P_i) · exp(−α_i² s e_i(τ) − ½ α_i² s²)

    (answers without a time or without item time parameters: ``x_i / P_i``), and

        Λ = max_{π, s, τ} [Σ_i ln(1 − π + π r_i(τ, s)) + ℓ₀(τ)] − max_τ ℓ₀(τ),
        ℓ₀(τ) = −½ Σ_i α_i² e_i(τ)² − τ² / (2σ_τ²),

    with π over ``shares``, s over ``log_speedups`` and τ on τ̂₀ + `TAU_OFFSETS`, where τ̂₀ is
    the null's maximiser (the speed posterior mean, `irt.response_time.speed_posterior`), so
    π = 0 gives Λ ≥ 0. Profiling τ under the alternative is the point: with τ estimated from all
    answers, fast answers to known items make the candidate look fast and hide themselves
    (their residuals shrink by the known share × s), a masking that leave-one-out residuals
    only remove one answer at a time (van der Linden & Guo 2008, Psychometrika 73(3), 365–384).
    The mixture LR over π is the candidate-level form of the item monitor's ℓ; joint use of
    responses and times follows Sinharay & Johnson (2020), "The use of item scores and response
    times to detect examinees who may have benefited from item preknowledge", Brit. J. Math.
    Stat. Psych. 73(3), 397–419, and Sinharay (2017), J. Educ. Meas. 54(2); cf. the lt
    statistic of Marianti, Fox, Avetisyan, Veldkamp & Tijmstra (2014), JEBS 39(6), 426–451.
    Λ has no usable asymptotic law here (π on the boundary, adaptive items): its null
    distribution is simulated (`choose_thresholds`). P_i is floored at `PROB_FLOOR`.
    """
    x = np.asarray(correct, dtype=np.float64).reshape(-1)
    p = np.maximum(np.asarray(p_correct, dtype=np.float64).reshape(-1), PROB_FLOOR)
    if p.shape != x.shape:
        raise ValueError("answers and probabilities differ in length")
    base = x / p
    a2 = np.zeros(x.size)
    e0 = np.zeros(x.size)
    if log_seconds is not None and beta is not None and alpha is not None \
            and sigma_tau is not None:
        y = np.asarray(log_seconds, dtype=np.float64).reshape(-1)
        b = np.asarray(beta, dtype=np.float64).reshape(-1)
        a = np.asarray(alpha, dtype=np.float64).reshape(-1)
        if not (y.shape == b.shape == a.shape == x.shape):
            raise ValueError("answers, times and item time parameters differ in length")
        timed = np.isfinite(y) & np.isfinite(b) & np.isfinite(a) & (a > 0)
        a2 = np.where(timed, a, 0.0) ** 2
        e0 = np.where(timed, y - b, 0.0)
    if not np.any(a2 > 0):
        return float(max(0.0, max(float(np.sum(np.log(1.0 - s + s * base))) for s in shares)))
    assert sigma_tau is not None  # times are used only with sigma_tau (above)
    prior_precision = 1.0 / float(sigma_tau) ** 2
    tau0 = -float(np.sum(a2 * e0)) / (prior_precision + float(np.sum(a2)))
    tau = tau0 + TAU_OFFSETS                                           # (K,)
    e = e0[None, :] + tau[:, None]                                     # (K, n)
    null = -0.5 * np.sum(a2 * e**2, axis=1) - 0.5 * prior_precision * tau**2
    best_null = float(np.max(null))
    pi = np.asarray(shares, dtype=np.float64)[:, None, None, None]     # (M, 1, 1, 1)
    s = np.asarray(log_speedups, dtype=np.float64)[None, :, None, None]  # (1, S, 1, 1)
    log_time = np.clip(-a2 * s * e - 0.5 * a2 * s**2, -50.0, 50.0)     # (1, S, K, n)
    r = base * np.exp(log_time)
    mix = np.sum(np.log(1.0 - pi + pi * r), axis=-1) + null            # (M, S, K)
    return float(max(0.0, float(np.max(mix)) - best_null))


def integrity_evidence(correct: ArrayLike, p_correct: ArrayLike, seconds: ArrayLike | None,
                       typical_seconds: ArrayLike | None, lz: float | None, *,
                       alpha: ArrayLike | None = None, sigma_tau: float | None = None
                       ) -> IntegrityEvidence:
    """A candidate's statistics: rapid guesses (`rapid_guesses`), the pre-knowledge statistic
    (`preknowledge_mixture_llr`; its time part needs the items' time parameters — β = ln of
    ``typical_seconds``, ``alpha`` — and ``sigma_tau``; without them it uses correctness only)
    and lz*."""
    x = np.asarray(correct, dtype=np.float64)
    rapid = 0
    pk_time: tuple[ArrayLike, ArrayLike, ArrayLike, float] | None = None
    if seconds is not None and typical_seconds is not None:
        t = np.asarray(seconds, dtype=np.float64)
        typical = np.asarray(typical_seconds, dtype=np.float64)
        rapid = int(rapid_guesses(t, typical).sum())
        if alpha is not None and sigma_tau is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_t = np.where(np.isfinite(t) & (t > 0), np.log(t), np.nan)
                beta = np.where(np.isfinite(typical) & (typical > 0), np.log(typical), np.nan)
            pk_time = (log_t, beta, alpha, float(sigma_tau))
    lz_value = None if lz is None or not np.isfinite(lz) else float(lz)
    pk = preknowledge_mixture_llr(x, p_correct, *(pk_time or (None, None, None, None)))
    return IntegrityEvidence(int(x.size), rapid, pk, lz_value)


@dataclass(frozen=True)
class IntegrityNote:
    """A neutral note for the report, with the measured false-positive rate behind it and the
    test length (number of answers) it was measured at."""

    kind: str          # 'rapid_guessing' | 'preknowledge' | 'aberrant_pattern'
    text: str
    false_positive_rate: float
    measured_n_answers: int


def integrity_notes(evidence: IntegrityEvidence, thresholds: IntegrityThresholds
                    ) -> tuple[IntegrityNote, ...]:
    """The notes ``evidence`` earns at ``thresholds``, each quoting their false-positive rate.
    Which thresholds fit a candidate's number of answers is the caller's choice
    (`thresholds_for`)."""
    measured = thresholds.false_positive_rate, thresholds.n_answers
    notes = []
    if evidence.rapid >= thresholds.rapid_count:
        notes.append(IntegrityNote(
            "rapid_guessing",
            f"{evidence.rapid} of {evidence.n_answers} answers were much faster than anyone "
            f"usually needs to read the question; the score may understate ability.", *measured))
    if evidence.preknowledge_llr >= thresholds.preknowledge_llr:
        notes.append(IntegrityNote(
            "preknowledge",
            "Several answers were correct and much faster than usual on questions this "
            "candidate would often miss; the score may overstate ability.", *measured))
    if evidence.lz_star is not None and evidence.lz_star <= thresholds.lz_star:
        notes.append(IntegrityNote(
            "aberrant_pattern",
            "The pattern of right and wrong answers is unusual for this score (for example "
            "hard questions right and easy ones wrong); the score may be less reliable.",
            *measured))
    return tuple(notes)


def choose_thresholds(honest: Sequence[IntegrityEvidence], *, target_rate: float = 0.01
                      ) -> IntegrityThresholds:
    """Thresholds from simulated honest candidates so that the share of them with any note —
    measured on the same simulees and returned — is at most about ``target_rate``.

    The budget is split by how rare each statistic is among honest candidates: rapid guesses
    (a count that is almost always 0) get a tenth, pre-knowledge six tenths, lz* three tenths.
    The simulees should all have the same number of answers (one test length: the thresholds'
    ``n_answers``, the smallest if they differ).
    """
    if len(honest) < 100:
        raise ValueError("choose thresholds from at least 100 simulated honest candidates")
    rapid = np.array([e.rapid for e in honest])
    pk = np.array([e.preknowledge_llr for e in honest])
    lz = np.array([np.nan if e.lz_star is None else e.lz_star for e in honest])
    rapid_count = 1
    while np.mean(rapid >= rapid_count) > 0.1 * target_rate:
        rapid_count += 1
    pk_limit = max(float(np.quantile(pk, 1.0 - 0.6 * target_rate)), 1e-6) + 1e-9
    lz_limit = float(np.nanquantile(lz, 0.3 * target_rate)) if np.isfinite(lz).any() \
        else -np.inf
    flagged = (rapid >= rapid_count) | (pk >= pk_limit) | (np.nan_to_num(lz, nan=np.inf)
                                                           <= lz_limit)
    return IntegrityThresholds(rapid_count, pk_limit, lz_limit, float(flagged.mean()),
                               len(honest), min(e.n_answers for e in honest))


def thresholds_for(n_answers: int, table: Sequence[IntegrityThresholds]
                   ) -> IntegrityThresholds | None:
    """The entry of ``table`` (thresholds per studied test length) that judges a candidate with
    ``n_answers`` scored answers: the one studied at the *nearest length at or above*
    ``n_answers``; None — no note — below the shortest or above the longest studied length,
    where no false-positive rate has been measured.

    Why at or above: of the three statistics, two have null tails that grow with the number of
    answers — the chance of ≥ k rapid guesses, and lz*'s lower quantile (its thresholds fall from
    about −1.9 at 10 answers to −2.7 at 60 in the study) — so thresholds chosen for a longer test
    flag a shorter one's honest candidates no more often; the pre-knowledge limit shows no trend
    with length. The per-length study checks the rule at nine lengths between the studied ones
    (`benchmarks/bench_forensics.py --between`, 10,000 honest simulees each; benchmarks/
    RESULTS.md): the share noted there is at most 1 % at all nine, and the rate the entry
    quotes is inside its 95 % interval or above it at eight (at 27 answers 0.2 points under)."""
    entries = sorted(table, key=lambda t: t.n_answers)
    if not entries or n_answers < entries[0].n_answers:
        return None
    return next((t for t in entries if t.n_answers >= n_answers), None)
