"""MML-EM calibration: agreement with published estimates, recovery of known truth, standard
errors against replication, not-at-random sparse data, anchors, and problem reporting."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import irt
from calibration import CalibrationIssue, ItemSpec, MMLCalibrator, Priors
from calibration import _kernels as K
from calibration.simulate import simulate_adaptive_responses
from irt import Bank, ItemParams, SparseResponses
from irt.io import read_responses_csv

DATA = Path(__file__).parent / "data"


def rmse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(x) - np.asarray(y)) ** 2)))


@pytest.fixture(scope="module")
def lsat6():
    log = read_responses_csv(DATA / "responses_long.csv")
    with open(DATA / "reference_2pl_rasch.csv", newline="") as f:
        ref = {row["item_id"]: row for row in csv.DictReader(f)}
    return log, ref


def _ref(ref, ids, col):
    return np.array([float(ref[i][col]) for i in ids])


# ---------------------------------------------------------------- real data, published values
def test_lsat6_2pl_matches_r_mirt_and_ltm(lsat6) -> None:
    log, ref = lsat6
    fit = MMLCalibrator("2pl").fit(log)
    ids = fit.items_.item_ids
    assert fit.converged_
    np.testing.assert_allclose(fit.items_.a, _ref(ref, ids, "a_2pl"), atol=0.01)
    np.testing.assert_allclose(fit.items_.b, _ref(ref, ids, "b_2pl"), atol=0.01)
    # mirt reports logLik = -2466.653 for this model (Chalmers 2012, LSAT6 example)
    assert fit.loglik_ == pytest.approx(-2466.653, abs=0.01)
    assert fit.n_parameters_ == 10
    assert fit.bic_ == pytest.approx(-2 * fit.loglik_ + 10 * np.log(1000))


def test_lsat6_1pl_and_fixed_a_match_ltm(lsat6) -> None:
    log, ref = lsat6
    common = MMLCalibrator("1pl").fit(log)
    ids = common.items_.item_ids
    assert np.ptp(common.items_.a) == 0
    assert common.items_.a[0] == pytest.approx(0.755, abs=0.01)
    np.testing.assert_allclose(common.items_.b, _ref(ref, ids, "b_1pl_common_a"), atol=0.01)
    assert common.n_parameters_ == 6
    rasch = MMLCalibrator("1pl", common_a=1.0).fit(log)
    np.testing.assert_allclose(rasch.items_.a, 1.0)
    np.testing.assert_allclose(rasch.items_.b, _ref(ref, ids, "b_rasch_a1"), atol=0.01)
    assert np.all(np.isnan(rasch.se_.a)) and np.all(rasch.se_.b > 0)


def test_sparse_and_dense_paths_agree(lsat6) -> None:
    log, _ = lsat6
    dense = MMLCalibrator("2pl", dense=True).fit(log)
    sparse = MMLCalibrator("2pl", dense=False).fit(log)
    np.testing.assert_allclose(dense.items_.a, sparse.items_.a, atol=1e-8)
    np.testing.assert_allclose(dense.se_.b, sparse.se_.b, rtol=1e-6)
    assert dense.loglik_ == pytest.approx(sparse.loglik_, abs=1e-8)


def test_em_is_monotone_and_squarem_reaches_the_same_optimum(lsat6) -> None:
    log, _ = lsat6
    plain = MMLCalibrator("2pl", accelerate="none", tol=1e-6).fit(log)
    fast = MMLCalibrator("2pl", tol=1e-6).fit(log)
    trace = np.array(plain.skills_[0].loglik_trace)
    assert np.all(np.diff(trace) >= -1e-9)
    assert fast.skills_[0].n_em_steps < plain.skills_[0].n_em_steps
    np.testing.assert_allclose(fast.items_.a, plain.items_.a, atol=2e-4)
    assert fast.loglik_ == pytest.approx(plain.loglik_, abs=1e-6)


def test_person_scores_are_the_eap_of_the_final_items(lsat6) -> None:
    log, _ = lsat6
    fit = MMLCalibrator("2pl").fit(log)
    quad = irt.normal_grid(41, 0.0, 1.0, 6.0)
    expected = irt.eap(log.data, fit.items_, quadrature=quad)
    np.testing.assert_allclose(fit.scores_.theta[:, 0], expected.theta, atol=1e-10)
    np.testing.assert_allclose(fit.scores_.se[:, 0], expected.se, atol=1e-10)
    assert fit.scores_.person_ids == log.person_ids
    assert fit.scores_.n_responses.sum() == 5000


# ---------------------------------------------------------------- recovery of known truth
def _dense_data(model: str, n_items: int, n_persons: int, seed: int, **kw):
    rng = np.random.default_rng(seed)
    bank = irt.generate_items(n_items, model, rng, **kw)
    theta = rng.normal(size=n_persons)
    return bank, irt.simulate_responses(theta, bank, rng)


def test_2pl_recovery_50_items_5000_persons() -> None:
    bank, x = _dense_data("2pl", 50, 5000, seed=11)
    fit = MMLCalibrator("2pl").fit(x)
    assert fit.converged_ and len(fit.issues_) == 0
    assert rmse(fit.items_.a, bank.a) <= 0.08
    assert rmse(fit.items_.b, bank.b) <= 0.08


@pytest.mark.parametrize(
    ("model", "n_items", "n_persons", "tol_a", "tol_loc"),
    [
        # documented tolerances (fixed seeds). The 3PL location with 5,000 persons is hard; the
        # 4PL is weakly identified (RMSE(b) 0.37 at 8,000 persons, 0.23 at 40,000)
        ("3pl", 30, 5000, 0.15, 0.30),
        ("4pl", 30, 8000, 0.25, 0.45),
        ("grm", 20, 3000, 0.10, 0.20),
        ("gpcm", 20, 3000, 0.10, 0.30),
        ("1pl", 20, 4000, 0.05, 0.10),
    ],
)
def test_recovery_per_model(model, n_items, n_persons, tol_a, tol_loc) -> None:
    bank, x = _dense_data(model, n_items, n_persons, seed=5)
    fit = MMLCalibrator(model).fit(x)
    assert fit.converged_
    assert rmse(fit.items_.a, bank.a) <= tol_a
    if model in ("grm", "gpcm"):
        assert rmse(fit.items_.thresholds, bank.thresholds) <= tol_loc
    else:
        assert rmse(fit.items_.b, bank.b) <= tol_loc
    if model in ("3pl", "4pl"):
        assert rmse(fit.items_.c, bank.c) <= 0.1
        assert np.all(np.isfinite(fit.se_.c))


def test_standard_errors_match_replication_sd_within_20_percent() -> None:
    rng = np.random.default_rng(99)
    bank = irt.generate_items(8, "2pl", rng)
    est, ses = [], []
    for _ in range(60):
        x = irt.simulate_responses(rng.normal(size=600), bank, rng)
        fit = MMLCalibrator("2pl").fit(x)
        est.append(np.concatenate([fit.items_.a, fit.items_.b]))
        ses.append(np.concatenate([fit.se_.a, fit.se_.b]))
    sd = np.std(np.array(est), axis=0, ddof=1)
    se = np.sqrt(np.mean(np.array(ses) ** 2, axis=0))
    ratio = se / sd
    # pooled over the 16 parameters (a per-parameter SD from 60 replications is itself ±9 %)
    assert abs(np.sqrt(np.mean(se**2) / np.mean(sd**2)) - 1.0) <= 0.20
    assert np.all((ratio > 0.65) & (ratio < 1.5))


def test_mixed_bank_and_two_skills() -> None:
    rng = np.random.default_rng(21)
    parts = [
        irt.generate_items(10, "2pl", rng, skill="sql", prefix="s"),
        irt.generate_items(6, "grm", rng, skill="sql", prefix="g"),
        irt.generate_items(12, "2pl", rng, skill="api", prefix="a"),
    ]
    bank = Bank.from_params([it for b in parts for it in b.params()])
    theta = rng.normal(size=(3000, 2))
    x = np.zeros((3000, len(bank)), dtype=np.int64)
    for col, skill in enumerate(("sql", "api")):
        idx = bank.skill_indices(skill)
        x[:, idx] = irt.simulate_responses(theta[:, col], bank.take(idx), rng)
    fit = MMLCalibrator().fit(x, items=bank)
    assert [s.skill for s in fit.skills_] == ["sql", "api"]
    assert fit.items_.models == bank.models and fit.items_.skills == bank.skills
    assert rmse(fit.items_.a, bank.a) <= 0.12
    poly = np.array([m == "grm" for m in bank.models])
    assert rmse(fit.items_.thresholds[poly], bank.thresholds[poly]) <= 0.25
    assert rmse(fit.items_.b[~poly], bank.b[~poly]) <= 0.15
    assert fit.scores_.theta.shape == (3000, 2)
    for col in range(2):
        assert np.corrcoef(fit.scores_.theta[:, col], theta[:, col])[0, 1] > 0.75
    assert fit.n_parameters_ == sum(s.n_parameters for s in fit.skills_) == 10 * 2 + 6 * 4 + 24


# ---------------------------------------------------------------- sparse, not at random
def test_adaptive_logs_calibrate_without_the_bias_of_a_naive_method() -> None:
    """Items chosen by ability: MML recovers b; a method treating each item's respondents as a
    random sample of N(0, 1) (available-case, classical) is pulled toward the test-takers'
    level. Documented at this seed (100 items × 8,000 persons × 25 items, randomesque top-10,
    62 to ~6,000 responses per item): MML with a lognormal(0, 0.5) prior on a gives
    RMSE(b) = 0.18, RMSE(a) = 0.15 (plain ML: 0.21, 0.20); the naive available-case b, even
    with the true a, has RMSE(b) = 0.80."""
    rng = np.random.default_rng(4)
    bank = irt.generate_items(100, "2pl", rng)
    theta = rng.normal(size=8000)
    data = simulate_adaptive_responses(theta, bank, 25, rng, top_k=10)
    assert data.n_responses == 8000 * 25
    fit = MMLCalibrator("2pl", priors=Priors(a=(0.0, 0.5))).fit(data)
    keep = [int(i) for i in fit.items_.item_ids]  # a bare SparseResponses: ids are indices
    assert len(keep) == 100
    mml_b = rmse(fit.items_.b, bank.b[keep])
    mml_a = rmse(fit.items_.a, bank.a[keep])
    correct = np.bincount(data.item, weights=data.response, minlength=100)
    seen = np.bincount(data.item, minlength=100)
    p = np.clip(correct / seen, 0.01, 0.99)
    naive_b = -np.log(p / (1 - p)) * np.sqrt(1 + bank.a**2 / 2.89) / bank.a  # true a given
    naive = rmse(naive_b, bank.b)
    assert mml_b <= 0.2 and mml_a <= 0.2
    assert naive >= 3 * mml_b


# ---------------------------------------------------------------- anchors and the scale
def test_anchors_hold_items_and_put_new_items_on_the_anchor_scale() -> None:
    rng = np.random.default_rng(8)
    bank = irt.generate_items(40, "2pl", rng)
    theta = rng.normal(0.5, 1.3, size=6000)
    x = irt.simulate_responses(theta, bank, rng)
    anchors = bank.take(range(20))
    fit = MMLCalibrator("2pl").fit(x, items=bank, anchors=anchors)
    np.testing.assert_allclose(fit.items_.a[:20], bank.a[:20])
    np.testing.assert_allclose(fit.items_.b[:20], bank.b[:20])
    assert np.all(np.isnan(fit.se_.a[:20]))
    assert rmse(fit.items_.b[20:], bank.b[20:]) <= 0.1
    assert rmse(fit.items_.a[20:], bank.a[20:]) <= 0.1
    assert fit.skills_[0].latent_mean == pytest.approx(0.5, abs=0.06)
    assert fit.skills_[0].latent_sd == pytest.approx(1.3, abs=0.06)
    # without anchors the same items come out on the N(0, 1) scale instead
    free = MMLCalibrator("2pl", standard_errors=False).fit(x)
    assert np.mean(free.items_.b) < np.mean(bank.b) - 0.3


# ---------------------------------------------------------------- priors
def test_lognormal_prior_on_a_shrinks_toward_its_mode() -> None:
    _bank, x = _dense_data("2pl", 15, 300, seed=2)
    ml = MMLCalibrator("2pl").fit(x)
    bm = MMLCalibrator("2pl", priors=Priors(a=(0.0, 0.3))).fit(x)
    mode = np.exp(0.0 - 0.3**2)  # mode of lognormal(0, 0.3)
    assert np.mean(np.abs(np.log(bm.items_.a / mode))) < np.mean(np.abs(np.log(ml.items_.a / mode)))
    assert np.all(bm.se_.a < ml.se_.a)


def test_3pl_prior_on_c_keeps_guessing_inside_the_unit_interval() -> None:
    _bank, x = _dense_data("3pl", 20, 800, seed=3)
    fit = MMLCalibrator("3pl").fit(x)
    assert np.all((fit.items_.c > 0.02) & (fit.items_.c < 0.6))
    assert np.all(np.isfinite(fit.se_.c))


def test_prior_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="prior 'a'"):
        Priors(a=(0.0, -1.0))
    with pytest.raises(ValueError, match="prior 'c'"):
        Priors(c=(0.0, 5.0))


# ---------------------------------------------------------------- problems are reported
def test_degenerate_items_are_excluded_with_a_message_never_nan(caplog) -> None:
    _bank, x = _dense_data("2pl", 6, 500, seed=1)
    x = x.astype(float)
    x[:, 2] = 1  # everyone right
    x[:, 4] = np.nan  # nobody answered
    x[:480, 5] = np.nan  # only 20 answered
    with caplog.at_level("WARNING", logger="calibration.mml"):
        fit = MMLCalibrator("2pl").fit(x)
    assert fit.excluded_ == ("2", "4")  # ids are the 0-based column indices
    assert fit.items_.item_ids == ("0", "1", "3", "5")
    assert np.all(np.isfinite(fit.items_.a)) and np.all(np.isfinite(fit.items_.b))
    kinds = {(i.kind, i.item_id) for i in fit.issues_}
    assert {("excluded", "2"), ("excluded", "4"), ("few_responses", "5")} <= kinds
    assert all(isinstance(i, CalibrationIssue) for i in fit.issues_)
    assert "all 500 responses are in category 1" in caplog.text
    assert fit.n_responses_.tolist() == [500, 500, 500, 20]


def test_non_convergence_is_reported() -> None:
    _bank, x = _dense_data("2pl", 10, 500, seed=1)
    fit = MMLCalibrator("2pl", max_iter=2, accelerate="none").fit(x)
    assert not fit.converged_ and fit.n_iter_ == 2
    assert [i.kind for i in fit.issues_] == ["not_converged"]


def test_progress_callback_sees_every_cycle() -> None:
    _bank, x = _dense_data("2pl", 10, 500, seed=1)
    seen = []
    fit = MMLCalibrator("2pl", callback=seen.append).fit(x)
    assert [p.cycle for p in seen] == list(range(1, fit.n_iter_ + 1))
    assert all(np.isfinite(p.loglik) for p in seen)


# ---------------------------------------------------------------- bad input
def test_bad_input_names_the_row() -> None:
    data = SparseResponses(np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([1, 2, 0]), 2, 2)
    with pytest.raises(ValueError, match=r"row 1: field 'response' = 2 out of range for item "
                                         r"'1' \(2pl, categories 0..1\)"):
        MMLCalibrator("2pl").fit(data)
    with pytest.raises(ValueError, match="2 items but 3 item specs"):
        MMLCalibrator("2pl").fit(data, items=[ItemSpec(f"i{k}") for k in range(3)])
    with pytest.raises(ValueError, match="unknown model"):
        MMLCalibrator("3plx").fit(data)
    with pytest.raises(ValueError, match="field 'model'"):
        ItemSpec("x", model="rasch2")


def test_response_log_errors_name_the_file_line(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("person_id,item_id,response\np1,q1,0\np1,q2,1\np2,q1,3\np2,q2,0\n")
    log = read_responses_csv(path)
    with pytest.raises(ValueError, match="line 4: field 'response' = 3 out of range for item 'q1'"):
        MMLCalibrator("2pl").fit(log)
    specs = [ItemSpec("q1", "grm", n_categories=3), ItemSpec("q2")]
    with pytest.raises(ValueError, match="line 4: field 'response' = 3 out of range"):
        MMLCalibrator().fit(log, items=specs)
    with pytest.raises(ValueError, match="line 2: unknown item 'q1'"):
        MMLCalibrator().fit(log, items=[ItemSpec("q2")])


def test_anchor_must_match_the_item_model() -> None:
    _bank, x = _dense_data("2pl", 5, 200, seed=1)
    wrong = Bank.from_params([ItemParams("1", "3pl", 1.0, 0.0, 0.2)])
    with pytest.raises(ValueError, match="anchor '1'"):
        MMLCalibrator("2pl").fit(x, anchors=wrong)


# ---------------------------------------------------------------- kernels
@pytest.mark.parametrize(
    ("kind", "phi"),
    [
        (K.KIND_DICHOTOMOUS, [[0.2, 0.3, -1.0, 2.0], [-0.4, -1.0, -40.0, 40.0]]),
        (K.KIND_GRM, [[0.1, 1.0, 0.2, -0.8], [0.5, 2.0, -0.1, -0.2]]),
        (K.KIND_GPCM, [[0.1, 1.0, 0.2, -0.8], [-0.3, -1.0, 0.5, 0.3]]),
    ],
)
def test_kernel_jacobians_equal_finite_differences(kind, phi) -> None:
    phi = np.array(phi)
    nodes = np.linspace(-4, 4, 9)
    p, jac = K.probabilities(kind, phi, nodes)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    eps = 1e-6
    for m in range(phi.shape[1]):
        d = np.zeros_like(phi)
        d[:, m] = eps
        num = (K.probabilities(kind, phi + d, nodes, False)[0]
               - K.probabilities(kind, phi - d, nodes, False)[0]) / (2 * eps)
        np.testing.assert_allclose(jac[..., m], num, atol=1e-7)


# ---------------------------------------------------------------- latent distribution
def test_empirical_histogram_recovers_a_skewed_population() -> None:
    """θ from a two-component mixture (mean 0.3, SD 1.13, skewed): the empirical histogram
    (standardized) beats the normal assumption on the standardized truth and in likelihood."""
    rng = np.random.default_rng(12)
    bank = irt.generate_items(30, "2pl", rng)
    theta = np.where(rng.random(6000) < 0.7, rng.normal(-0.3, 0.6, 6000),
                     rng.normal(1.7, 0.8, 6000))
    x = irt.simulate_responses(theta, bank, rng)
    m = 0.7 * -0.3 + 0.3 * 1.7  # the mixture's mean and SD
    s = np.sqrt(0.7 * (0.6**2 + 0.3**2) + 0.3 * (0.8**2 + 1.7**2) - m**2)
    a_std, b_std = bank.a * s, (bank.b - m) / s
    normal = MMLCalibrator("2pl", standard_errors=False).fit(x)
    hist = MMLCalibrator("2pl", latent="histogram", standard_errors=False).fit(x)
    fit = hist.skills_[0]
    w, nodes = np.array(fit.latent_weights), np.array(fit.latent_nodes)
    assert w.sum() == pytest.approx(1.0)
    assert w @ nodes == pytest.approx(0.0, abs=0.02)
    assert np.sqrt(w @ nodes**2) == pytest.approx(1.0, abs=0.02)
    assert fit.n_parameters == 60 + 41 - 3
    assert hist.loglik_ > normal.loglik_ + 10
    assert rmse(hist.items_.b, b_std) < rmse(normal.items_.b, b_std)
    assert rmse(hist.items_.a, a_std) <= 0.08
    # the skew shows: the population's skewness is 0.70 (a normal has 0); here it comes out 0.62
    assert w @ nodes**3 > 0.4
    assert np.sum(w[nodes < 0]) > 0.51
    # the histogram's weights creep: a step-size-only criterion stopped after 8 cycles 1.8 below
    # the maximum (-101135.63 at tol 1e-6); watching every parameter's rate runs on (36 cycles)
    assert hist.converged_ and hist.n_iter_ > 20 and hist.loglik_ > -101136.1


def test_nothing_to_calibrate_is_an_error_not_an_empty_bank() -> None:
    x = np.ones((50, 3))
    with pytest.raises(ValueError, match=r"no item could be calibrated .*all 50 responses"):
        MMLCalibrator("2pl").fit(x)


def test_estimator_protocol_settings_round_trip() -> None:
    cal = MMLCalibrator("3pl", n_nodes=31)
    assert cal.get_params()["n_nodes"] == 31 and cal.get_params()["model"] == "3pl"
    assert repr(cal) == "MMLCalibrator(model='3pl', n_nodes=31)"
    assert cal.set_params(tol=1e-5) is cal and cal.tol == 1e-5
    with pytest.raises(ValueError, match="unknown setting 'nodes'"):
        cal.set_params(nodes=3)
    assert not hasattr(cal, "items_")  # settings only until fit
