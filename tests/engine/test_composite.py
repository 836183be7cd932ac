"""The composite stopping rule: SE of a weighted sum of the skills' θ from the posterior
covariance, with per-skill minimums; through the blueprint JSON and the simulate command."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.simulation import draw_answers, simulate
from web.cli import main


def _run(eng, answers, seed):
    state = eng.start(seed=seed)
    while state.stop_reason is None:
        state = eng.record(state, state.pending, int(answers[eng.pool.index(state.pending)]))
    return state


@pytest.mark.parametrize("correlations", [None, ((1, 0.6, 0.3), (0.6, 1, 0.4), (0.3, 0.4, 1))])
def test_stops_exactly_when_the_composite_se_reaches_the_target(mixed_bank, correlations):
    rule = engine.CompositeSE(0.3, weights={"api": 0.5, "db": 0.3, "sec": 0.2},
                              min_items={"sec": 4})
    bp = engine.Blueprint(se_target=None, max_items=60, stopping=(rule,),
                          skills=("api", "db", "sec"), correlations=correlations)
    assert engine.Blueprint.from_json(bp.to_json()) == bp
    eng = engine.make_engine(mixed_bank, bp)
    w = np.array([0.5, 0.3, 0.2])
    answers = draw_answers(eng, np.random.default_rng(1).normal(size=(1, 3)), 2)[0]
    state = eng.start(seed=5)
    seen = []
    while state.stop_reason is None:
        state = eng.record(state, state.pending, int(answers[eng.pool.index(state.pending)]))
        work = eng.work(state)
        cov = work.cov[0]
        if correlations is None:  # independent EAP per skill: C = diag(SE²)
            assert np.allclose(cov, np.diag(work.se[0] ** 2))
        seen.append((float(np.sqrt(w @ cov @ w)), int(work.counts[0, 2])))
    assert state.stop_reason == "composite_se"
    se_end, n_sec = seen[-1]
    assert se_end <= 0.3 and n_sec >= 4
    # it did not stop earlier although it could have
    assert all(se > 0.3 or n < 4 for se, n in seen[:-1])


def test_unknown_skills_and_bad_settings_are_configuration_errors(mixed_bank):
    with pytest.raises(engine.ConfigurationError, match="unknown skill"):
        engine.make_engine(mixed_bank, engine.Blueprint(
            stopping=(engine.CompositeSE(0.3, weights={"nope": 1.0}),)))
    with pytest.raises(engine.ConfigurationError, match="se_target"):
        engine.CompositeSE(0.0)
    with pytest.raises(engine.ConfigurationError, match="min_items"):
        engine.Blueprint.from_dict({"stopping": [{"name": "composite", "min_items": {"a": -1}}]})
    with pytest.raises(engine.ConfigurationError, match="unknown name"):
        engine.Blueprint.from_dict({"stopping": [{"name": "nope"}]})


def test_composite_is_shorter_than_every_skill_at_the_same_target(mixed_bank):
    """The weighted mean of three skills is measured more precisely than each skill, so the
    composite rule needs fewer items than the per-skill rule at the same target."""
    theta = np.random.default_rng(3).normal(size=(150, 3))
    per_skill = engine.make_engine(mixed_bank, engine.Blueprint(se_target=0.4, max_items=60))
    composite = engine.make_engine(mixed_bank, engine.Blueprint(
        se_target=None, max_items=60, stopping=(engine.CompositeSE(0.4),)))
    answers = draw_answers(per_skill, theta, 4)
    a = simulate(per_skill, theta, answers=answers)
    b = simulate(composite, theta, answers=answers)
    assert set(b.stop_reason) == {"composite_se"}
    assert b.test_length.mean() < 0.7 * a.test_length.mean()
    # the realized error of the composite matches its reported SE (seeded simulation)
    comp_err = (b.theta_hat - b.theta_true).mean(axis=1)
    assert np.sqrt(np.mean(comp_err ** 2)) == pytest.approx(0.4, rel=0.25)


def test_simulate_command_with_the_composite_rule(mixed_bank, tmp_path, capsys):
    from irt.io import write_items_csv

    items, thetas, out = tmp_path / "items.csv", tmp_path / "t.csv", tmp_path / "r.csv"
    write_items_csv(items, mixed_bank)
    g = np.random.default_rng(2)
    thetas.write_text("person_id,theta\n" + "".join(f"p{k},{g.normal():.4f}\n"
                                                   for k in range(20)))
    bp = tmp_path / "bp.json"
    code = main(["simulate", "--bank", str(items), "--thetas", str(thetas), "--out", str(out),
                 "--stop-se", "0", "--composite-se", "0.35", "--composite-weight", "api:2",
                 "--composite-min", "sec:3", "--save-blueprint", str(bp)])
    assert code == 0
    assert "stopping: composite" in capsys.readouterr().out
    saved = engine.Blueprint.from_json(bp.read_text(encoding="utf-8"))
    assert saved.stopping == (engine.CompositeSE(0.35, weights={"api": 2.0},
                                                 min_items={"sec": 3}),)
    rows = out.read_text().splitlines()[1:]
    assert {r.split(",")[6] for r in rows} <= {"composite_se", "max_items"}
    assert main(["simulate", "--bank", str(items), "--thetas", str(thetas), "--out", str(out),
                 "--composite-se", "0.3", "--composite-weight", "api"]) != 0
    assert "SKILL:FLOAT" in capsys.readouterr().err


def test_minimums_first_serves_every_skills_minimum_before_anything_else(mixed_bank):
    skills = (engine.SkillSpec("api", min_items=2), engine.SkillSpec("db", min_items=3),
              engine.SkillSpec("sec", min_items=2))
    bp = engine.Blueprint(skills=skills, se_target=None, max_items=20,
                          selector=engine.COptimal(), balancer=engine.MinimumsFirst(),
                          stopping=(engine.CompositeSE(0.2),))
    assert engine.Blueprint.from_json(bp.to_json()) == bp
    eng = engine.make_engine(mixed_bank, bp)
    answers = draw_answers(eng, np.random.default_rng(3).normal(size=(5, 3)), 4)
    for p in range(5):
        state = _run(eng, answers[p], p)
        first = [e.skill for e in state.events[:7]]
        assert (first.count("api"), first.count("db"), first.count("sec")) == (2, 3, 2)
        assert "below their minimum" in state.events[0].audit.balance
        # afterwards the skills compete through the criterion (not by a fixed share)
        assert "open skill(s) competed" in state.events[8].audit.balance


def test_progressive_start_varies_the_first_item_then_follows_the_criterion(mixed_bank):
    control = engine.SympsonHetter({}, progressive=2)
    assert engine.strategy_from_dict("exposure", control.to_dict()) == control
    # stored blueprints from before the option read back unchanged
    assert "progressive" not in engine.SympsonHetter({"api0001": 0.5}).to_dict()
    with pytest.raises(engine.ConfigurationError, match="progressive"):
        engine.SympsonHetter({}, progressive=-1)
    bp = engine.Blueprint(skills=("api",), se_target=None, max_items=6, exposure=control)
    eng = engine.make_engine(mixed_bank, bp)
    answers = np.ones(len(mixed_bank), dtype=int)
    firsts, ranks = set(), []
    for seed in range(40):
        state = _run(eng, answers, seed)
        firsts.add(state.events[0].item_id)
        ranks.append([e.audit.rank for e in state.events])
    assert len(firsts) >= 20  # the first item is drawn from the whole skill
    assert all(r[2:] == [1] * 4 for r in ranks)  # from position 3 on: the criterion's best
    plain = engine.make_engine(mixed_bank, engine.Blueprint(skills=("api",), se_target=None,
                                                            max_items=6))
    assert len({_run(plain, answers, s).events[0].item_id for s in range(40)}) == 1


def test_weights_are_scaled_to_the_overall_score_the_report_shows(mixed_bank):
    """Weights 2, 1, 1 stop on the SE of the weighted *mean* (½, ¼, ¼), exactly as weights
    0.5, 0.25, 0.25 do — the report's overall score (`irt.composite.normalized_weights`)."""
    def run(weights):
        bp = engine.Blueprint(se_target=None, max_items=60, skills=("api", "db", "sec"),
                              stopping=(engine.CompositeSE(0.3, weights=weights),))
        eng = engine.make_engine(mixed_bank, bp)
        answers = draw_answers(eng, np.random.default_rng(3).normal(size=(1, 3)), 4)[0]
        return _run(eng, answers, 9)

    raw, scaled = run({"api": 2.0, "db": 1.0, "sec": 1.0}), run(
        {"api": 0.5, "db": 0.25, "sec": 0.25})
    assert raw.stop_reason == scaled.stop_reason == "composite_se"
    assert [e.item_id for e in raw.events] == [e.item_id for e in scaled.events]
    with pytest.raises(engine.ConfigurationError, match="must be a finite number >= 0"):
        engine.CompositeSE(0.3, weights={"api": -1.0})
