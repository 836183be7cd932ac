"""Issue 22: a simulated bank of multiple-response items scored as partial credit calibrates
with GPCM and recovers its parameters about as well as the dichotomous path does at the same N
(benchmarks/bench_multiple_response.py has the figures over seeds and sample sizes)."""

from __future__ import annotations

import numpy as np

import irt
from calibration import MMLCalibrator


def rmse(x: np.ndarray, y: np.ndarray) -> float:
    m = np.isfinite(x) & np.isfinite(y)
    return float(np.sqrt(np.mean((x[m] - y[m]) ** 2)))


def mr_bank(n_items: int, rng: np.random.Generator) -> irt.Bank:
    """As in benchmarks/bench_multiple_response.py: GPCM items, half with 2 correct options
    (categories 0-2), half with 3 (0-3)."""
    half = n_items // 2
    a = irt.generate_items(half, "gpcm", rng, n_categories=3, prefix="m")
    b = irt.generate_items(n_items - half, "gpcm", rng, n_categories=4, prefix="n")
    return irt.Bank.from_params([*a.params(), *b.params()])


def test_partial_credit_multiple_response_bank_recovers_with_gpcm() -> None:
    rng = np.random.default_rng(7)
    bank = mr_bank(20, rng)  # 10 items with 2 correct options (0-2), 10 with 3 (0-3)
    assert sorted(set(bank.n_categories.tolist())) == [3, 4]
    x = irt.simulate_responses(rng.normal(size=1000), bank, rng)
    fit = MMLCalibrator("gpcm", standard_errors=False).fit(x, bank)
    assert fit.converged_
    gpcm_a, gpcm_steps = rmse(fit.items_.a, bank.a), rmse(fit.items_.thresholds, bank.thresholds)
    dich = irt.generate_items(20, "2pl", rng)
    y = irt.simulate_responses(rng.normal(size=1000), dich, rng)
    two = MMLCalibrator("2pl", standard_errors=False).fit(y)
    pl2_a, pl2_b = rmse(two.items_.a, dich.a), rmse(two.items_.b, dich.b)
    # measured at this seed: GPCM a 0.092, steps 0.149; 2PL a 0.116, b 0.096 (N = 1000)
    assert gpcm_a <= 0.12 and gpcm_steps <= 0.20
    assert gpcm_a <= pl2_a + 0.03  # slopes: as well as the dichotomous path
    assert gpcm_steps <= 2 * pl2_b  # two to three steps per item from the same persons


def test_recalibration_fits_new_multiple_response_items_with_their_own_model() -> None:
    """The calibration job's path: new partial-credit items (no current parameters) are fitted
    as GPCM with every category, beside 2PL items, whatever the job's model says."""
    from calibration.drift import ParameterErrors
    from calibration.recalibrate import CurrentParameters, RecalibrationSettings, recalibrate
    from irt import SparseResponses
    from irt.io import ResponseLog

    rng = np.random.default_rng(11)
    mr = mr_bank(8, rng)
    dich = irt.generate_items(12, "2pl", rng, prefix="d")
    bank = irt.Bank.from_params([*dich.params(), *mr.params()])
    x = irt.simulate_responses(rng.normal(size=800), bank, rng)
    top = x[:, 12:]
    top[top == 3] = 2  # no one reaches the top of the 4-category items: they keep 4 anyway
    person, item = np.nonzero(np.ones_like(x, dtype=bool))
    log = ResponseLog(tuple(f"p{k}" for k in range(x.shape[0])), bank.item_ids,
                      SparseResponses(person, item, x[person, item], x.shape[0],
                                      len(bank)))
    empty = irt.Bank.from_params([])
    current = CurrentParameters(empty, ParameterErrors(np.zeros(0), np.zeros(0)),
                                np.zeros(0, dtype=np.int64), (), np.zeros(0, dtype=bool))
    scored_as = {iid: ("gpcm", int(k)) for iid, k in zip(mr.item_ids, mr.n_categories,
                                                         strict=True)}
    result = recalibrate(log, current, RecalibrationSettings(model="2pl", mode="free"),
                         skills=dict.fromkeys(bank.item_ids, "default"), scored_as=scored_as)
    new = {it.item_id: it.new for it in result.items}
    for iid, k in zip(mr.item_ids, mr.n_categories, strict=True):
        assert new[iid].model == "gpcm" and new[iid].n_categories == k
    assert all(new[iid].model == "2pl" for iid in dich.item_ids)
