"""``proficio simulate`` end to end: files in, results and summary out, errors by line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from irt.io import write_items_csv
from web.cli import main


@pytest.fixture
def files(tmp_path, mixed_bank):
    bank = tmp_path / "items.csv"
    write_items_csv(bank, mixed_bank)
    g = np.random.default_rng(0)
    thetas = tmp_path / "thetas.csv"
    with open(thetas, "w", encoding="utf-8") as f:
        f.write("person_id,api,db,sec,note\n")
        for p in range(60):
            a, b, c = g.normal(size=3)
            f.write(f"c{p},{a},{b},{c},x\n")
    return bank, thetas, tmp_path


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_simulate_writes_rows_per_simulee_and_skill(files, capsys):
    bank, thetas, tmp = files
    out = tmp / "res.csv"
    bp = tmp / "bp.json"
    code = main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out", str(out),
                 "--selector", "kl", "--stop-se", "0.4", "--max-items", "15", "--seed", "3",
                 "--skill", "api:2:8:2", "--skill", "db:2", "--skill", "sec:1:5",
                 "--save-blueprint", str(bp), "--no-progress"])
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 60 * 3
    assert list(rows[0]) == ["person_id", "skill", "theta_true", "theta_hat", "se", "n_items",
                             "stop_reason"]
    per = {}
    for r in rows:
        per.setdefault(r["person_id"], 0)
        per[r["person_id"]] += int(r["n_items"])
        assert r["stop_reason"] in ("se_target", "max_items", "bank_exhausted", "classified")
    assert all(n <= 15 for n in per.values())
    assert {int(r["n_items"]) for r in rows if r["skill"] == "sec"} <= set(range(1, 6))
    text = capsys.readouterr().out
    for word in ("RMSE", "bias", "deciles", "exposure", "overlap", "never used", "test length"):
        assert word in text
    # the saved blueprint reproduces the run exactly
    out2 = tmp / "res2.csv"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out", str(out2),
                 "--blueprint", str(bp), "--no-progress"]) == 0
    assert _rows(out2) == rows
    assert json.loads(bp.read_text())["selector"]["name"] == "kl"


def test_simulate_two_workers_equal_one(files):
    bank, thetas, tmp = files
    outs = []
    for jobs in ("1", "2"):
        out = tmp / f"res{jobs}.csv"
        assert main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out",
                     str(out), "--exposure", "randomesque", "--jobs", jobs, "--no-progress"]) == 0
        outs.append(_rows(out))
    assert outs[0] == outs[1]


def test_fixed_length_and_classification(files):
    bank, _, tmp = files
    single = tmp / "single.csv"
    single.write_text("person_id,theta\na,-1.5\nb,0.2\nc,2.0\n", encoding="utf-8")
    out = tmp / "fixed.csv"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(single), "--out", str(out),
                 "--fixed-length", "12", "--no-progress"]) == 0
    rows = _rows(out)
    assert len(rows) == 9 and {r["theta_true"] for r in rows if r["person_id"] == "a"} == {"-1.5"}
    assert sum(int(r["n_items"]) for r in rows if r["person_id"] == "b") == 12
    out = tmp / "cls.csv"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(single), "--out", str(out),
                 "--cut", "0.0", "--stop-se", "0", "--no-progress"]) == 0
    rows = _rows(out)
    assert {r["decision"] for r in rows} <= {"pass", "fail"}
    assert all(r["decision"] == "fail" for r in rows if r["person_id"] == "a"
               and r["decided"] == "1")


@pytest.mark.parametrize("content, message", [
    ("id,theta\nx,1\n", "line 1: missing column 'person_id'"),
    ("person_id,theta\nx,abc\n", "line 2: field 'theta' is not a number"),
    ("person_id,theta\nx,1\nx,2\n", "line 3: duplicate person_id 'x'"),
    ("person_id,api\nx,1\n", "no column for skill"),
    ("person_id,theta\n", "no simulees"),
])
def test_bad_thetas_file(files, capsys, content, message):
    bank, _, tmp = files
    bad = tmp / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    out = tmp / "never.csv"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(bad), "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "proficio simulate: error" in err
    assert not out.exists()


def test_bad_options(files, capsys):
    bank, thetas, tmp = files
    out = tmp / "never.csv"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out", str(out),
                 "--skill", "nope"]) == 2
    assert "skill 'nope'" in capsys.readouterr().err
    assert main(["simulate", "--bank", str(tmp / "missing.csv"), "--thetas", str(thetas),
                 "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()


def test_c_optimal_with_a_progressive_sympson_hetter_start(files, capsys):
    bank, thetas, tmp = files
    out, bp = tmp / "res.csv", tmp / "bp.json"
    assert main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out", str(out),
                 "--selector", "c_optimal", "--stop-se", "0", "--composite-se", "0.45",
                 "--composite-weight", "api:2", "--composite-weight", "db:1",
                 "--composite-weight", "sec:1", "--skill", "api:2", "--skill", "db:2",
                 "--skill", "sec:2", "--max-items", "20", "--exposure", "sympson-hetter",
                 "--sh-target", "0.4", "--sh-progressive", "2", "--save-blueprint", str(bp),
                 "--no-progress"]) == 0
    saved = json.loads(bp.read_text())
    assert saved["selector"] == {"name": "c_optimal", "weights": {}}
    assert saved["balancer"] == {"name": "minimums_first"}
    assert saved["exposure"]["name"] == "sympson_hetter"
    assert saved["exposure"]["progressive"] == 2
    per: dict[str, dict[str, int]] = {}
    for r in _rows(out):
        per.setdefault(r["person_id"], {})[r["skill"]] = int(r["n_items"])
    assert all(min(n.values()) >= 2 and sum(n.values()) <= 20 for n in per.values())
    assert main(["simulate", "--bank", str(bank), "--thetas", str(thetas), "--out", str(out),
                 "--exposure", "sympson-hetter", "--sh-progressive", "-1"]) == 2
    assert "progressive" in capsys.readouterr().err
