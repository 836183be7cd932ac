"""The default design and its feasibility check: what the welcome page and the recruiter may
rely on is measured by simulation on the bank before the test goes live (small, fast versions of
benchmarks/bench_default_design.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engine import Blueprint, ItemPool
from irt.io import read_items_csv
from item_bank.shipped import DEFAULT_DESIGN, PROVISIONAL_PARAMETERS
from tests.web.conftest import Site
from web.services.feasibility import (
    DEFAULT_PROGRESSIVE,
    PROVISIONAL_SOURCE,
    Feasibility,
    Population,
    applicant_population,
    check_design,
    default_blueprint,
    supported_correlation,
)


@pytest.fixture(scope="module")
def shipped():
    bank = read_items_csv(PROVISIONAL_PARAMETERS).bank
    stored = json.loads(DEFAULT_DESIGN.read_text())
    return bank, Blueprint.from_dict(stored["blueprint"]), Feasibility.from_dict(
        stored["feasibility"])


def test_the_stored_default_design_belongs_to_the_shipped_bank(shipped):
    bank, bp, feas = shipped
    assert sorted(s.skill for s in bp.skills) == sorted(set(bank.skills))
    assert set(bp.exposure.parameters) <= set(bank.item_ids)
    assert feas.max_items == bp.max_items and feas.population == PROVISIONAL_SOURCE
    assert not feas.warnings
    # the stored design is today's default, tuned (the file is regenerated when it changes)
    fresh = default_blueprint(sorted(set(bank.skills)))
    assert (bp.selector, bp.balancer, bp.stopping) == (fresh.selector, fresh.balancer,
                                                       fresh.stopping)
    assert bp.exposure.progressive == DEFAULT_PROGRESSIVE


def test_a_fresh_small_check_reproduces_the_stored_promises(shipped):
    bank, bp, feas = shipped
    skills = sorted(set(bank.skills))
    fresh = check_design(ItemPool(bank), bp, Population.standard(skills, "N(0, I)"), n=400,
                         seed=7)
    assert abs(fresh.mean_length - feas.mean_length) < 3
    assert fresh.share_early >= 0.3                       # the test does adapt its length
    assert fresh.overall_coverage == pytest.approx(0.90, abs=0.05)
    assert fresh.skill_coverage == pytest.approx(0.90, abs=0.04)
    assert fresh.max_exposure <= 0.3 and fresh.first_item_share <= 0.25
    assert fresh.overlap <= 0.2


def test_an_unreachable_target_is_named_with_the_reachable_value(shipped):
    bank, _, _ = shipped
    skills = sorted(set(bank.skills))
    bp = default_blueprint(skills, overall_se=0.1)
    f = check_design(ItemPool(bank), bp, Population.standard(skills, "N(0, I)"), n=150)
    assert any(re.search(r"overall SE target 0\.10 is reached by 0% .* about 0\.\d\d", w)
               for w in f.warnings), f.warnings
    assert f.share_early == 0.0


def test_published_correlations_are_used_only_as_far_as_the_data_support():
    assert supported_correlation(0.6, 0.1) == pytest.approx(0.4)
    assert supported_correlation(0.15, 0.1) == 0.0
    assert supported_correlation(-0.5, 0.1) == pytest.approx(-0.3)
    result = {"n_persons": 900, "scales": [
        {"skill": "a", "latent_mean": 0.2, "latent_sd": 1.1},
        {"skill": "b", "latent_mean": -0.1, "latent_sd": 0.9}],
        "correlations": {"skills": ["a", "b"], "matrix": [[1, 0.7], [0.7, 1]],
                         "se": [[0, 0.05], [0.05, 0]]}}
    pop = applicant_population(result, "2026-12-01").population
    assert pop.correlation[0][1] == pytest.approx(0.6)
    assert pop.mean == (0.2, -0.1) and pop.sd == (1.1, 0.9)
    assert pop.source == "applicants in the calibration of 2026-12-01 (n = 900)"
    bp = default_blueprint(["a", "b"], pop)
    assert bp.correlations == ((1.0, 0.6), (0.6, 1.0))
    assert default_blueprint(["a", "b"], Population.standard(["a", "b"], "x")).correlations \
        is None


def test_the_welcome_page_states_the_measured_length_and_no_more(site: Site, client):
    (token,) = site.invite()
    stored = Feasibility.from_dict(json.loads(DEFAULT_DESIGN.read_text())["feasibility"])
    page = client.get(f"/t/{token}").get_data(as_text=True)
    low, high = round(stored.length_p10), round(stored.length_p90)
    assert f"Usually {low} to {high} questions, at most 40" in page
    assert "may be shorter" not in page
    assert ("rarely see the same questions" in page) == (stored.overlap <= 0.2)


def test_the_demo_uses_the_default_design(site: Site):
    rows = site.sql("SELECT blueprint, feasibility FROM assessments ORDER BY id LIMIT 1")
    bp = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    assert bp["stopping"][0]["name"] == "composite" and bp["se_target"] is None
    assert bp["exposure"]["name"] == "sympson_hetter"
    assert rows[0][1] is not None
    assert np.isfinite(Feasibility.from_dict(rows[0][1] if isinstance(rows[0][1], dict)
                                             else json.loads(rows[0][1])).overall_se)
