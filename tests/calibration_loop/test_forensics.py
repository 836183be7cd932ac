"""Forensics: the item CUSUM's arithmetic and dating, the answer LLR's sign under each
hypothesis, rapid-guess thresholds, and thresholds chosen from honest simulees."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from calibration.forensics import (
    IntegrityEvidence,
    answer_llr,
    choose_thresholds,
    cusum_path,
    integrity_evidence,
    integrity_notes,
    monitor_item,
    rapid_guesses,
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
    cheat = integrity_evidence(np.ones(30), np.full(30, 0.4), np.full(30, -1.5), None, None,
                               -0.5)
    notes = integrity_notes(cheat, th)
    assert [n.kind for n in notes] == ["preknowledge"]
    assert "may overstate" in notes[0].text and notes[0].false_positive_rate == \
        th.false_positive_rate


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
