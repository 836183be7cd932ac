"""Forensics: the item CUSUM's arithmetic and dating, the answer LLR's sign under each
hypothesis, rapid-guess thresholds, and thresholds chosen from honest simulees."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from calibration.forensics import (
    IntegrityEvidence,
    IntegrityThresholds,
    answer_llr,
    choose_thresholds,
    cusum_path,
    integrity_evidence,
    integrity_notes,
    monitor_item,
    preknowledge_mixture_llr,
    rapid_guesses,
    thresholds_for,
)


def test_cusum_is_pages_recursion():
    assert cusum_path([1.0, -3.0, 2.0, 0.5, -1.0]).tolist() == [1.0, 0.0, 2.0, 2.5, 1.5]


def test_the_answer_llr_drifts_down_for_honest_and_up_for_leaked_answers():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.2, 0.9, 200_000)
    z = rng.standard_normal(p.size)
    honest = (rng.random(p.size) < p).astype(float)
    knows = rng.random(p.size) < 0.3
    leaked = np.where(knows, 1.0, honest)
    z_leaked = np.where(knows, z - 1.0, z)
    assert answer_llr(honest, p, z).mean() < -0.01
    assert answer_llr(leaked, p, z_leaked).mean() > 0.05
    # without times the evidence is weaker but still points the right way
    assert answer_llr(leaked, p, None).mean() > 0 > answer_llr(honest, p, None).mean()


def test_a_change_is_flagged_and_dated_near_where_it_began():
    rng = np.random.default_rng(5)
    n, change = 3000, 2000
    p = rng.uniform(0.3, 0.8, n)
    x = (rng.random(n) < p).astype(float)
    z = rng.standard_normal(n)
    knows = (np.arange(n) >= change) & (rng.random(n) < 0.3)
    x[knows], z[knows] = 1.0, z[knows] - 1.0
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    times = [start + dt.timedelta(hours=k) for k in range(n)]
    alarm = monitor_item("API-001", x, p, z, times)
    assert alarm is not None
    assert change <= alarm.alarm_index < change + 300
    assert abs(alarm.start_index - change) < 150
    assert alarm.started_at == times[alarm.start_index]
    assert alarm.correct_since_start > alarm.expected_correct_since_start
    assert alarm.fast_correct_since_start > 0
    assert monitor_item("API-001", x[:change], p[:change], z[:change]) is None


def test_rapid_guesses_use_the_normative_threshold():
    flags = rapid_guesses([2.0, 5.0, 0.5, np.nan], [40.0, 40.0, 3.0, 40.0])
    assert flags.tolist() == [True, False, True, False]


def test_thresholds_hold_their_false_positive_rate_and_notes_are_neutral():
    rng = np.random.default_rng(9)
    honest = [IntegrityEvidence(30, int(rng.poisson(0.1)), float(max(0, rng.normal(-2, 1.5))),
                                float(rng.normal())) for _ in range(5000)]
    th = choose_thresholds(honest, target_rate=0.01)
    assert th.false_positive_rate <= 0.012
    cheat = integrity_evidence(np.ones(30), np.full(30, 0.4), None, None, -0.5)
    notes = integrity_notes(cheat, th)
    assert [n.kind for n in notes] == ["preknowledge"]
    assert "may overstate" in notes[0].text and notes[0].false_positive_rate == \
        th.false_positive_rate
    assert th.n_answers == 30 and notes[0].measured_n_answers == 30


def _entry(n_answers: int, rate: float) -> IntegrityThresholds:
    return IntegrityThresholds(rapid_count=2, preknowledge_llr=2.0, lz_star=-2.5,
                               false_positive_rate=rate, n_simulated=10_000,
                               n_answers=n_answers)


def test_thresholds_for_takes_the_nearest_studied_length_at_or_above():
    table = (_entry(30, 0.009), _entry(10, 0.011), _entry(20, 0.008))  # order does not matter
    picked = {n: (None if (t := thresholds_for(n, table)) is None else t.n_answers)
              for n in (0, 9, 10, 11, 19, 20, 21, 29, 30, 31, 200)}
    assert picked == {0: None, 9: None, 10: 10, 11: 20, 19: 20, 20: 20, 21: 30, 29: 30,
                      30: 30, 31: None, 200: None}
    assert thresholds_for(15, ()) is None


def test_a_note_quotes_the_rate_of_the_entry_that_judged_it():
    """Same evidence, tables that differ in the entry a 25-answer session falls to: each note
    quotes that entry's rate and length, not another entry's."""
    rapid = IntegrityEvidence(25, 3, 0.0, None)
    for table, used in (((_entry(20, 0.004), _entry(25, 0.013), _entry(30, 0.007)), 25),
                        ((_entry(20, 0.004), _entry(30, 0.007)), 30)):
        th = thresholds_for(rapid.n_answers, table)
        assert th is not None and th.n_answers == used
        (note,) = integrity_notes(rapid, th)
        assert note.kind == "rapid_guessing"
        assert (note.false_positive_rate, note.measured_n_answers) == \
            ({t.n_answers: t.false_positive_rate for t in table}[used], used)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="differ in length"):
        monitor_item("X", [1, 0], [0.5], None)


def test_loo_eap_probabilities_match_an_eap_of_the_other_answers():
    """Each answer's probability is the item's at irt.eap of the group's other answers."""
    import irt as _irt
    from calibration.forensics import LOO_GRID, loo_eap_probabilities

    rng = np.random.default_rng(3)
    bank = _irt.Bank.from_params(_irt.ItemParams(f"I{k}", "3pl", a=float(rng.uniform(0.7, 2)),
                                                 b=float(rng.normal()), c=0.2, skill="s")
                                 for k in range(12))
    group = np.repeat([0, 1], 6)
    item = np.r_[np.arange(6), np.arange(6, 12)]
    correct = (rng.random(12) < 0.6).astype(float)
    got = loo_eap_probabilities(group, item, correct, bank, 2)
    prior = np.exp(-0.5 * LOO_GRID**2)
    quad = _irt.Quadrature(LOO_GRID, prior / prior.sum())  # the same N(0, 1) grid
    for r in range(12):
        others = [k for k in range(12) if group[k] == group[r] and k != r]
        resp = np.full((1, 12), np.nan)
        resp[0, item[others]] = correct[others]
        est = _irt.eap(resp, bank, quadrature=quad)
        want = _irt.probability([est.theta[0]], bank.take([item[r]]))[0, 0]
        assert got[r] == pytest.approx(want, abs=1e-9)


def _candidates(rng: np.random.Generator, n: int, known_share: float, m: int = 30):
    """n candidates × m answers under the lognormal + IRT model; a share of the answers is to
    known items: correct, in half the usual time."""
    p = rng.uniform(0.3, 0.7, (n, m))
    alpha = rng.uniform(1.5, 2.5, (n, m))
    beta = rng.normal(3.9, 0.35, (n, m))
    tau = rng.normal(0.0, 0.3, (n, 1))
    x = (rng.random((n, m)) < p).astype(float)
    log_t = beta - tau + rng.standard_normal((n, m)) / alpha
    known = rng.random((n, m)) < known_share
    x[known] = 1.0
    log_t[known] += np.log(0.5)
    return p, x, log_t, beta, alpha


def _mixture(p, x, log_t, beta, alpha):
    return np.array([preknowledge_mixture_llr(x[j], p[j], log_t[j], beta[j], alpha[j], 0.3)
                     for j in range(x.shape[0])])


def test_the_mixture_llr_without_times_is_the_correctness_mixture():
    """No time evidence: Λ = max(0, max_π Σ ln(1 − π + π x/P)); all answers wrong: Λ = 0."""
    x = np.array([1, 1, 0, 1, 1, 0, 1, 1.0])
    p = np.array([0.3, 0.5, 0.6, 0.2, 0.45, 0.5, 0.35, 0.05])
    pf = np.maximum(p, 0.1)
    want = max(0.0, max(float(np.sum(np.log(1 - s + s * x / pf))) for s in (0.1, 0.2, 0.3, 0.5)))
    assert want > 0
    assert preknowledge_mixture_llr(x, p, None, None, None, None) == pytest.approx(want)
    times = np.full(x.size, np.nan)
    assert preknowledge_mixture_llr(x, p, times, np.full(8, 3.9), np.full(8, 2.0), 0.3) \
        == pytest.approx(want)
    assert preknowledge_mixture_llr(np.zeros(8), p, np.full(8, 3.0), np.full(8, 3.9),
                                    np.full(8, 2.0), 0.3) == 0.0


def test_a_uniformly_fast_candidate_is_not_evidence_of_preknowledge():
    """Speed is the candidate's own: all answers faster by the same factor are absorbed by τ,
    while the same speed-up on a quarter of the (correct) answers is evidence."""
    rng = np.random.default_rng(11)
    p, x, log_t, beta, alpha = _candidates(rng, 1, 0.0)
    x[0, ::4] = 1.0
    base = preknowledge_mixture_llr(x[0], p[0], log_t[0], beta[0], alpha[0], 0.3)
    # 0.6 log-units faster everywhere (2 SD of speed) ...
    fast = preknowledge_mixture_llr(x[0], p[0], log_t[0] - 0.6, beta[0], alpha[0], 0.3)
    assert fast < base + 1.0
    # ... or only on a quarter of the answers, all of them correct
    some = log_t[0].copy()
    some[::4] -= 0.6 * 4
    assert preknowledge_mixture_llr(x[0], p[0], some, beta[0], alpha[0], 0.3) > base + 5.0


def test_the_mixture_llr_separates_preknowledge_at_a_calibrated_one_percent():
    """Null calibration and power on seeded simulation: the honest 99th percentile, chosen on
    one sample, flags about 1 % of a fresh honest sample and half of the candidates who know a
    quarter of the items."""
    rng = np.random.default_rng(17)
    train = _mixture(*_candidates(rng, 3000, 0.0))
    fresh = _mixture(*_candidates(rng, 3000, 0.0))
    cheat = _mixture(*_candidates(rng, 1000, 0.25))
    limit = np.quantile(train, 0.99)
    assert np.mean(fresh >= limit) < 0.018     # binomial: 1 % ± 2.6 SE of 3,000
    assert np.mean(cheat >= limit) > 0.45    # 57 % here; the oracle (τ known) 73 %
    assert np.all(train >= 0.0)
