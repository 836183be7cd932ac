"""`calibration.recalibrate`: modes that do what they say, drift and fit on one scale, item
analysis, publishing rules and the impact preview; and the command line around it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import irt
from calibration.drift import ParameterErrors
from calibration.item_analysis import analyse_items, point_biserial
from calibration.recalibrate import (
    CurrentParameters,
    ItemKeys,
    PublishRules,
    Recalibration,
    RecalibrationSettings,
    recalibrate,
    recommend,
    score_impact,
)
from calibration.simulate import simulate_adaptive_responses, simulate_option_choices
from irt import Bank, ItemParams, SparseResponses
from irt.io import ResponseLog, read_items_csv, write_items_csv
from web.cli import main


def _bank(n: int, rng: np.random.Generator, skill: str = "sql", prefix: str = "s") -> Bank:
    return irt.generate_items(n, "2pl", rng, skill=skill, prefix=prefix)


def _log(data: SparseResponses, bank: Bank) -> ResponseLog:
    return ResponseLog(tuple(f"p{p}" for p in range(data.n_persons)), bank.item_ids, data)


def _current(bank: Bank, se: float | None = 0.05, status: str = "operational",
             provisional: bool = False) -> CurrentParameters:
    n = len(bank)
    errors = ParameterErrors(np.full(n, np.nan if se is None else se),
                             np.full(n, np.nan if se is None else se))
    return CurrentParameters(bank, errors, np.full(n, 1000), (status,) * n,
                             np.full(n, provisional))


def test_anchored_mode_estimates_pretest_items_on_the_anchors_scale() -> None:
    rng = np.random.default_rng(1)
    bank = _bank(40, rng)
    # the population is not N(0, 1) on the bank's scale: the anchors must carry the scale
    theta = rng.normal(0.6, 1.3, 3000)
    x = irt.simulate_responses(theta, bank, rng).astype(float)
    x[rng.random(x.shape) < 0.5] = np.nan
    data = SparseResponses.from_dense(x)
    pretest = [f"s{k:04d}" for k in range(1, 9)]
    statuses = tuple("pretest" if iid in pretest else "operational" for iid in bank.item_ids)
    current = CurrentParameters(bank, ParameterErrors(np.full(40, 0.05), np.full(40, 0.05)),
                                np.full(40, 1000), statuses, np.zeros(40, dtype=bool))
    res = recalibrate(_log(data, bank), current, RecalibrationSettings(prior_a_sd=None))
    by = {it.item_id: it for it in res.items}
    assert {by[i].role for i in pretest} == {"estimated"}
    assert {it.role for it in res.items if it.item_id not in pretest} == {"anchor"}
    (scale,) = res.scales
    assert scale.how == "anchors" and "anchored on 32" in scale.statement
    assert scale.latent_mean == pytest.approx(0.6, abs=0.1)
    assert scale.latent_sd == pytest.approx(1.3, abs=0.1)
    true_b = np.array([bank.b[bank.index(i)] for i in pretest])
    est_b = np.array([by[i].new.b for i in pretest])
    assert np.max(np.abs(est_b - true_b)) < 0.3
    # anchors are not published, whatever the rules
    assert all(by[i].action == "hold" and "anchor" in by[i].action_reason
               for i in bank.item_ids if i not in pretest)
    assert scale.marginal_reliability == pytest.approx(scale.empirical_reliability, abs=0.05)


def test_provisional_parameters_never_anchor_and_a_missing_scale_is_stated() -> None:
    rng = np.random.default_rng(2)
    bank = _bank(20, rng)
    data = SparseResponses.from_dense(irt.simulate_responses(rng.normal(size=1500), bank, rng))
    # every item operational but provisional: nothing anchors, all are estimated and linked
    res = recalibrate(_log(data, bank), _current(bank, None, provisional=True))
    assert {it.role for it in res.items} == {"estimated"}
    (scale,) = res.scales
    assert scale.how == "linked-provisional" and "provisional" in scale.statement
    assert any("provisional" in w for w in res.warnings)
    # no current parameters at all: the scale is the sample's, and the result says so
    res = recalibrate(_log(data, bank), CurrentParameters.empty(),
                      skills={i: "sql" for i in bank.item_ids})
    assert res.scales[0].how == "sample" and "N(0, 1) of this sample" in res.scales[0].statement
    assert all(it.drift is None for it in res.items)


def test_free_mode_links_each_skill_and_flags_only_the_drifted_item() -> None:
    rng = np.random.default_rng(3)
    bank = Bank.from_params([*_bank(25, rng).params(),
                             *_bank(25, rng, "api", "p").params()])
    moved = [ItemParams(p.item_id, "2pl", p.a, p.b + (1.0 if p.item_id == "s0003" else 0.0),
                        skill=p.skill) for p in bank.params()]
    theta = np.column_stack([rng.normal(0.5, 1.2, 4000), rng.normal(-0.3, 0.8, 4000)])
    changed = Bank.from_params(moved)
    x = np.column_stack([irt.simulate_responses(theta[:, 0], changed.take(range(25)), rng),
                         irt.simulate_responses(theta[:, 1], changed.take(range(25, 50)), rng)])
    res = recalibrate(_log(SparseResponses.from_dense(x), bank), _current(bank, 0.03),
                      RecalibrationSettings(mode="free"))
    assert [s.how for s in res.scales] == ["linked", "linked"]
    assert [round(s.latent_mean, 1) for s in res.scales] == pytest.approx([0.5, -0.3], abs=0.15)
    flagged = [it.item_id for it in res.items if it.drift and it.drift.flagged]
    assert flagged == ["s0003"]
    d = res.item("s0003").drift
    assert d.delta_b == pytest.approx(1.0, abs=0.2) and d.z_b > 2.58 and d.se_delta_b > 0.03
    assert res.item("s0003").action == "review" and "drift in b" in res.item("s0003").action_reason


def test_the_item_analysis_names_the_option_that_behaves_like_the_key() -> None:
    rng = np.random.default_rng(4)
    bank = _bank(60, rng)
    theta = rng.normal(size=3000)
    data = simulate_adaptive_responses(theta, bank, 20, rng)
    true_keys = rng.integers(0, 4, 60)
    keys = true_keys.copy()
    keys[[5, 17]] = (true_keys[[5, 17]] + 2) % 4            # two miskeyed items
    scored, chosen = simulate_option_choices(theta, bank, data, keys, true_keys, 4, rng)
    opts = ("a", "b", "c", "d")
    res = recalibrate(_log(scored, bank), _current(bank), RecalibrationSettings(mode="free"),
                      keys=ItemKeys({i: opts for i in bank.item_ids},
                                    {i: opts[k] for i, k in zip(bank.item_ids, keys,
                                                                 strict=True)}),
                      choices=[opts[c] for c in chosen])
    flagged = {it.item_id: it.analysis for it in res.items if it.analysis.possibly_miskeyed}
    assert set(flagged) == {bank.item_ids[5], bank.item_ids[17]}
    for k in (5, 17):
        an = flagged[bank.item_ids[k]]
        assert an.suspected_key == opts[true_keys[k]] and an.key_point_biserial < 0
        assert res.item(bank.item_ids[k]).action == "review"
    ok = res.item(bank.item_ids[0]).analysis
    assert ok.key_point_biserial > 0.1
    assert all(o.point_biserial < 0 for o in ok.options if not o.is_key and o.n > 20)
    assert ok.p_correct == pytest.approx(np.mean(scored.response[scored.item == 0]))


def test_a_non_positive_slope_is_flagged_even_when_the_key_correlates_weakly() -> None:
    ability = np.linspace(-2, 2, 200)
    choice = np.where(ability > 0, 1, 0)       # the able choose b, the keyed option is a
    score = (choice == 0).astype(int)
    (an,) = analyse_items(["x"], np.zeros(200, int), score, choice, ability, [("a", "b")],
                          ["a"], [-0.4])
    assert an.possibly_miskeyed and an.suspected_key == "b" and "slope -0.40" in an.reason
    assert point_biserial(choice == 1, ability) == pytest.approx(-an.key_point_biserial)
    (few,) = analyse_items(["x"], np.zeros(10, int), score[:10], choice[:10], ability[:10],
                           [("a", "b")], ["a"], [-0.4])
    assert not few.possibly_miskeyed and "not checked" in few.reason


def test_default_rules_never_replace_a_more_precise_parameter() -> None:
    rng = np.random.default_rng(5)
    bank = _bank(30, rng)
    data = simulate_adaptive_responses(rng.normal(size=2500), bank, 12, rng)
    se = rng.uniform(0.05, 0.4, 30)
    current = CurrentParameters(bank, ParameterErrors(se, se), np.full(30, 300),
                                ("operational",) * 30, np.zeros(30, dtype=bool))
    res = recalibrate(_log(data, bank), current, RecalibrationSettings(mode="free"))
    rules = res.settings.rules
    published = [it for it in res.items if it.action == "publish"]
    assert published, "nothing to check"
    for it in published:
        assert it.n_responses >= rules.min_responses
        assert it.se_b <= min(rules.max_se_b, it.current_se_b)
        assert it.se_a <= it.current_se_a
    held = [it for it in res.items if it.action == "hold" and "smaller than the new" in
            it.action_reason]
    assert held
    # looser rules publish more; the recommendation follows the rules it is given
    loose = res.with_rules(PublishRules(min_responses=1, max_se_b=10.0,
                                        require_more_precise=False))
    assert sum(it.action == "publish" for it in loose.items) > len(published)
    assert all(recommend(it, loose.settings.rules)[0] == it.action for it in loose.items)
    with pytest.raises(ValueError, match="field 'min_responses'"):
        PublishRules.from_form({"min_responses": "many"})
    # the typed result survives JSON
    again = Recalibration.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.to_rows() == res.to_rows()


def test_score_impact_counts_moved_scores_and_flipped_decisions() -> None:
    rng = np.random.default_rng(6)
    bank = _bank(20, rng)
    theta = rng.normal(size=400)
    data = SparseResponses.from_dense(irt.simulate_responses(theta, bank, rng))
    same = score_impact(data, bank, bank, np.zeros(400))
    assert (same.n_moved, same.n_flipped, same.n_scores, same.n_decisions) == (0, 0, 400, 400)
    harder = Bank.from_params(ItemParams(p.item_id, "2pl", p.a, p.b + 0.5, skill=p.skill)
                              for p in bank.params())
    moved = score_impact(data, bank, harder, np.full(400, np.nan), threshold=0.2)
    assert moved.n_moved > 300 and moved.n_decisions == 0 and moved.max_shift > 0.3
    flips = score_impact(data, bank, harder, np.zeros(400))
    assert flips.n_flipped > 0


def test_recalibrate_command_and_the_pipeline_through_fit_and_drift(tmp_path, capsys) -> None:
    rng = np.random.default_rng(7)
    bank = _bank(30, rng)
    x = irt.simulate_responses(rng.normal(size=800), bank, rng)
    x[:, 29] = 1                                   # no variation: calibrate excludes it
    responses = tmp_path / "r.csv"
    with open(responses, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person_id", "item_id", "response"])
        for p in range(800):
            for i in range(30):
                w.writerow([f"p{p}", bank.item_ids[i], int(x[p, i])])
    assert main(["calibrate", str(responses), "--out", str(tmp_path / "cal.csv"),
                 "--quiet"]) == 0
    # fit accepts calibrate's output although it left an item out, and says so
    assert main(["fit", str(responses), "--items", str(tmp_path / "cal.csv")]) == 0
    out = capsys.readouterr().out
    assert "not in the parameters file" in out and bank.item_ids[29] in out
    current = tmp_path / "current.csv"
    write_items_csv(current, bank, {"se_a": ["0.05"] * 30, "se_b": ["0.05"] * 30})
    assert main(["recalibrate", str(responses), "--current", str(current), "--mode", "free",
                 "--out", str(tmp_path / "new.csv"), "--table", str(tmp_path / "t.csv"),
                 "--report", str(tmp_path / "rep.json")]) == 0
    out = capsys.readouterr().out
    assert "linked to the current parameters by Stocking–Lord" in out
    assert "publish rules: >= 200 responses" in out
    new = read_items_csv(tmp_path / "new.csv")
    # the excluded item is carried with its current parameters and its status
    k = new.bank.index(bank.item_ids[29])
    assert new.extra["role"][k] == "excluded" and new.extra["action"][k] == "hold"
    assert main(["fit", str(responses), "--items", str(tmp_path / "new.csv")]) == 0
    assert main(["drift", str(current), str(tmp_path / "new.csv")]) == 0
    rep = Recalibration.from_dict(json.loads((tmp_path / "rep.json").read_text()))
    with open(tmp_path / "t.csv") as f:
        assert len(list(csv.reader(f))) == len(rep.items) + 1
    # bad input names the field
    assert main(["recalibrate", str(responses), "--current", str(current),
                 "--max-se-b", "-1"]) == 2
    assert "max_se_b" in capsys.readouterr().err
