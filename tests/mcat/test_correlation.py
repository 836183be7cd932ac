"""Latent correlations between skills by pairwise marginal ML: recovery and storage."""

from __future__ import annotations

import io

import numpy as np
import pytest

import irt
from calibration.correlation import (
    LatentCorrelation,
    estimate_latent_correlation,
    read_correlation_csv,
)


@pytest.fixture(scope="module")
def recovery():
    """Issue 9's check: 6 skills, correlations 0.3–0.7, 5,000 simulees, 30 items per skill."""
    k = 6
    g = np.random.default_rng(2026)
    truth = np.eye(k)
    vals = g.permutation(np.linspace(0.3, 0.7, 15))
    truth[np.triu_indices(k, 1)] = vals
    truth = np.triu(truth) + np.triu(truth, 1).T
    bank = irt.Bank.from_params([p for s in range(k) for p in irt.generate_items(
        30, "2pl", 100 + s, skill=f"skill{s}", prefix=f"k{s}_").params()])
    theta = g.multivariate_normal(np.zeros(k), truth, size=5000)
    x = np.zeros((5000, len(bank)), dtype=np.int64)
    for s in range(k):
        idx = bank.skill_indices(f"skill{s}")
        x[:, idx] = irt.simulate_responses(theta[:, s], bank.take(idx), g)
    return truth, bank, x, estimate_latent_correlation(bank, x)


def test_recovers_a_simulated_correlation_matrix_within_005(recovery):
    truth, _, _, est = recovery
    assert est.skills == tuple(f"skill{s}" for s in range(6))
    assert np.abs(est.matrix - truth).max() <= 0.05
    assert not est.adjusted
    assert np.all(est.n_pairs == 5000)
    off = ~np.eye(6, dtype=bool)
    # the reported SEs are of the right size: errors mostly within 2.5 SE
    z = np.abs(est.matrix - truth)[off] / est.se[off]
    assert np.mean(z < 2.5) >= 0.8 and np.all(est.se[off] < 0.03)


def test_sparse_input_and_missing_skills_per_person(recovery):
    truth, bank, x, _ = recovery
    # half of the persons did not take skill 5: the long format, with those rows left out
    data = irt.SparseResponses.from_dense(x)
    skill5 = set(bank.skill_indices("skill5").tolist())
    keep = ~((data.person >= 2500) & np.isin(data.item, list(skill5)))
    sub = irt.SparseResponses(data.person[keep], data.item[keep], data.response[keep],
                              data.n_persons, data.n_items)
    part = estimate_latent_correlation(bank, sub, skills=("skill0", "skill5"))
    assert part.n_pairs[0, 1] == 2500
    assert part.matrix[0, 1] == pytest.approx(truth[0, 5], abs=0.06)


def test_roundtrip_and_blueprint_order(recovery):
    _, _, _, est = recovery
    again = LatentCorrelation.from_dict(est.to_dict())
    np.testing.assert_array_equal(again.matrix, est.matrix)
    buf = io.StringIO()
    est.to_csv(buf)
    path_text = buf.getvalue()
    assert path_text.splitlines()[0] == "skill," + ",".join(est.skills)
    sub = est.for_skills(["skill3", "skill1"])
    assert sub[0][1] == pytest.approx(est.correlation("skill3", "skill1"))
    with pytest.raises(KeyError, match="nope"):
        est.for_skills(["nope"])


def test_csv_errors_name_the_line(tmp_path):
    p = tmp_path / "corr.csv"
    p.write_text("skill,a,b\na,1,0.5\nb,0.5,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_correlation_csv(p)
    p.write_text("skill,a,b\na,1,0.5\nb,0.4,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="symmetric"):
        read_correlation_csv(p)
    p.write_text("skill,a,b\na,1,0.5\nb,0.5,1\n", encoding="utf-8")
    assert read_correlation_csv(p).correlation("a", "b") == 0.5


def test_bad_input():
    bank = irt.generate_items(5, "2pl", 1, skill="only")
    with pytest.raises(ValueError, match="two skills"):
        estimate_latent_correlation(bank, np.zeros((3, 5)))
