"""Issue 9 through the blueprint and ``proficio simulate``: correlations and shadow tests."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import engine
from calibration.correlation import LatentCorrelation
from engine.shadow import ShadowTest, constraint_violations
from irt.io import write_items_csv
from web.cli import main


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def files(tmp_path, make_bank, make_corr):
    bank = make_bank(3, 60, seed=12)
    items = tmp_path / "items.csv"
    write_items_csv(items, bank)
    # add a 'tags' column: every third item is a coding item
    rows = _rows(items)
    with open(items, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, [*rows[0].keys(), "tags"])
        w.writeheader()
        for k, r in enumerate(rows):
            w.writerow({**r, "tags": "code;x" if k % 3 == 0 else "mc"})
    g = np.random.default_rng(1)
    theta = g.multivariate_normal(np.zeros(3), make_corr(3, 0.6), size=30)
    thetas = tmp_path / "thetas.csv"
    with open(thetas, "w", encoding="utf-8") as f:
        f.write("person_id,s0,s1,s2\n")
        for p in range(30):
            f.write(f"c{p}," + ",".join(str(v) for v in theta[p]) + "\n")
    corr = tmp_path / "corr.csv"
    k = 3
    LatentCorrelation(("s2", "s1", "s0"), make_corr(3, 0.6), np.zeros((k, k)),
                      np.zeros((k, k), dtype=np.int64)).to_csv(corr)
    return items, thetas, corr, tmp_path


def test_simulate_with_correlations(files, capsys):
    items, thetas, corr, tmp = files
    out, bp = tmp / "res.csv", tmp / "bp.json"
    code = main(["simulate", "--bank", str(items), "--thetas", str(thetas), "--out", str(out),
                 "--correlations", str(corr), "--stop-se", "0.4", "--max-items", "40",
                 "--save-blueprint", str(bp)])
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 90 and {r["skill"] for r in rows} == {"s0", "s1", "s2"}
    assert all(float(r["se"]) <= 0.4 for r in rows if r["stop_reason"] == "se_target")
    saved = engine.Blueprint.from_json(bp.read_text(encoding="utf-8"))
    assert saved.correlations is not None
    assert [s.skill for s in saved.skills] == ["s2", "s1", "s0"]
    assert "scorer map, selector d_optimal, balancer open" in capsys.readouterr().out


def test_simulate_with_shadow_tests(files):
    items, thetas, _, tmp = files
    out, bp = tmp / "res.csv", tmp / "bp.json"
    code = main(["simulate", "--bank", str(items), "--thetas", str(thetas), "--out", str(out),
                 "--selector", "shadow", "--tag-count", "code:5:6", "--max-items", "15",
                 "--skill", "s0:4:6", "--skill", "s1:4", "--skill", "s2:4",
                 "--save-blueprint", str(bp)])
    assert code == 0
    rows = _rows(out)
    per_person: dict[str, int] = {}
    for r in rows:
        per_person[r["person_id"]] = per_person.get(r["person_id"], 0) + int(r["n_items"])
        assert r["stop_reason"] == "max_items"
    assert set(per_person.values()) == {15}
    saved = engine.Blueprint.from_json(bp.read_text(encoding="utf-8"))
    assert saved.selector == ShadowTest(tag_counts={"code": [5, 6]})


def test_cli_errors_are_one_line(files, capsys):
    items, thetas, corr, tmp = files
    out = tmp / "res.csv"
    base = ["simulate", "--bank", str(items), "--thetas", str(thetas), "--out", str(out)]
    assert main([*base, "--selector", "shadow", "--tag-count", "code:50"]) != 0
    assert "tag 'code'" in capsys.readouterr().err
    assert main([*base, "--selector", "shadow", "--tag-count", "code"]) != 0
    assert "TAG:MIN" in capsys.readouterr().err
    assert main([*base, "--correlations", str(corr), "--skill", "s0", "--skill",
                 "nope"]) != 0
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_make_engine_and_live_sessions_through_blueprint_json(make_bank, make_corr):
    """What the web front does: Blueprint.from_dict → engine → start/record/estimates."""
    bank = make_bank(2, 40, seed=13)
    pool = engine.ItemPool(bank, tags={iid: ["x"] for iid in bank.item_ids[::4]})
    specs = [{"skill": "s0"}, {"skill": "s1"}]
    mcat = engine.make_engine(pool, engine.Blueprint.from_dict(
        {"skills": specs, "correlations": [[1, 0.5], [0.5, 1]], "max_items": 12}))
    shadow = engine.make_engine(pool, engine.Blueprint.from_dict(
        {"skills": specs, "max_items": 8,
         "selector": {"name": "shadow", "tag_counts": {"x": [3, 3]}}}))
    plain = engine.make_engine(pool, engine.Blueprint.from_dict({"max_items": 5}))
    assert [(e.scorer.name, e.selector.name, e.balancer.name) for e in (mcat, shadow, plain)] == [
        ("map", "d_optimal", "open"), ("eap", "shadow", "open"), ("eap", "mfi", "kingsbury_zara")]
    for eng in (mcat, shadow):
        state = eng.start(seed=1)
        while eng.finished(state) is None:
            state = engine.CatState.from_json(state.to_json())  # as stored between requests
            state = eng.record(state, eng.next_item(state), 1)
        est = eng.estimates(state)
        assert set(est) == {"s0", "s1"} and all(e.theta > 0 for e in est.values())
    served = [e.item_id for e in state.events]
    assert constraint_violations(pool, shadow.blueprint, served) == []
    # roles combine: shadow tests scored by MAP under the correlated prior
    both = engine.make_engine(pool, engine.Blueprint(
        skills=("s0", "s1"), correlations=((1, 0.2), (0.2, 1)), max_items=8,
        selector=ShadowTest(tag_counts={"x": [3, 3]})))
    assert (both.scorer.name, both.selector.name) == ("map", "shadow")


@pytest.mark.parametrize("corr, message", [
    ([[1, 0.5], [0.5, 1]], "3 x 3"),
    ([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]], "symmetric"),
    ([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]], "positive definite"),
])
def test_blueprint_validates_correlations(corr, message):
    with pytest.raises(engine.ConfigurationError, match=message):
        engine.Blueprint(skills=("a", "b", "c"), correlations=corr)
    with pytest.raises(engine.ConfigurationError, match="skills listed"):
        engine.Blueprint(correlations=[[1.0]])
    bp = engine.Blueprint(skills=("a", "b"), correlations=[[1, 0.3], [0.3, 1]])
    assert engine.Blueprint.from_json(json.dumps(bp.to_dict())) == bp
    assert "correlations" not in engine.Blueprint().to_dict()
