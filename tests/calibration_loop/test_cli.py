"""The ``proficio fit | dif | link | drift`` commands over the DESIGN.md file formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import irt
from calibration.linking import LinkingTransform
from irt.io import read_items_csv, write_items_csv, write_responses_csv
from web.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(17)
    bank = irt.generate_items(20, "2pl", rng)
    theta = rng.normal(size=800)
    x = irt.simulate_responses(theta, bank, rng)
    data = irt.SparseResponses.from_dense(x)
    pids = [f"p{k}" for k in range(800)]
    write_items_csv(d / "items.csv", bank, {"se_a": [0.08] * 20, "se_b": [0.1] * 20})
    write_responses_csv(d / "responses.csv", pids, bank.item_ids, data)
    # the same responses with a group column (constant per person)
    with open(d / "grouped.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person_id", "item_id", "response", "gender"])
        for p, i, r in zip(data.person, data.item, data.response, strict=True):
            w.writerow([pids[p], bank.item_ids[i], int(r), "f" if p % 3 == 0 else "m"])
    # a new calibration on another scale, one item drifted by 1 logit
    moved = LinkingTransform(1.2, 0.5).inverse().apply(bank).params()
    moved[4] = irt.ItemParams(moved[4].item_id, "2pl", moved[4].a, moved[4].b + 1.0)
    write_items_csv(d / "new.csv", irt.Bank.from_params(moved),
                    {"se_a": [0.08] * 20, "se_b": [0.1] * 20})
    return {"dir": d, "items": d / "items.csv", "responses": d / "responses.csv",
            "grouped": d / "grouped.csv", "new": d / "new.csv"}


def test_fit_command_writes_tables_and_plots(files, capsys) -> None:
    d = files["dir"]
    code = main(["fit", str(files["responses"]), "--items", str(files["items"]),
                 "--out", str(d / "fit.json"), "--persons", str(d / "persons.csv"),
                 "--curves", str(d / "curves.csv"), "--plots", str(d / "plots"),
                 "--alpha", "0.2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "S-X2" in out and "marginal reliability" in out
    doc = json.loads((d / "fit.json").read_text())
    assert len(doc["rows"]) == 20 and doc["rows"][0]["method"] == "S-X2"
    assert {"statistic", "df", "p_value", "infit", "outfit"} <= set(doc["rows"][0])
    with open(d / "persons.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 800 and rows[0]["person_id"] == "p0"
    assert (d / "plots" / "information.png").stat().st_size > 1000
    icc = list((d / "plots").glob("icc_*.png"))
    assert icc  # alpha 0.2 flags a few items, each gets its empirical ICC


def test_dif_command(files, capsys) -> None:
    d = files["dir"]
    code = main(["dif", str(files["grouped"]), "--items", str(files["items"]),
                 "--group", "gender", "--out", str(d / "dif.csv")])
    assert code == 0
    out = capsys.readouterr().out
    assert "reference group 'm', focal group 'f'" in out and "ets_A" in out
    with open(d / "dif.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and rows[0]["ets_class"] in "ABC"


def test_dif_rejects_a_person_in_two_groups(files, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("person_id,item_id,response,g\np1,i0001,1,a\np1,i0002,0,b\n")
    assert main(["dif", str(bad), "--items", str(files["items"]), "--group", "g"]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "'p1'" in err


def test_link_and_drift_commands(files, capsys) -> None:
    d = files["dir"]
    code = main(["link", str(files["new"]), str(files["items"]), "--purify",
                 "--out", str(d / "linked.csv"), "--report", str(d / "link.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "theta_base = 1.2000 * theta_new + +0.5000" in out
    assert "dropped: i0005" in out
    linked = read_items_csv(d / "linked.csv")
    base = read_items_csv(files["items"]).bank
    keep = [k for k in range(20) if k != 4]
    np.testing.assert_allclose(linked.bank.b[keep], base.b[keep], atol=1e-4)
    assert float(linked.extra["se_b"][0]) == pytest.approx(0.1 * 1.2, rel=1e-4)
    report = json.loads((d / "link.json").read_text())
    assert report["meta"]["A"] == pytest.approx(1.2, abs=1e-4)

    code = main(["drift", str(files["items"]), str(files["new"]), "--out", str(d / "drift.csv")])
    assert code == 0
    out = capsys.readouterr().out
    assert "1 of 20 common items drift" in out
    with open(d / "drift.csv") as f:
        rows = {r["item_id"]: r for r in csv.DictReader(f)}
    assert rows["i0005"]["flag"] == "b" and rows["i0005"]["anchor"] == "dropped"
    assert float(rows["i0005"]["diff_b"]) == pytest.approx(1.2, abs=0.01)


def test_errors_name_the_file_and_line(files, tmp_path, capsys) -> None:
    bad = tmp_path / "items.csv"
    bad.write_text("item_id,skill,model,a,b,c,d\ni1,s,2pl,0,0,,\n")  # a = 0: no slope
    assert main(["link", str(bad), str(files["items"])]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'a'" in err
    assert main(["fit", str(files["responses"]), "--items", str(files["items"]),
                 "--out", str(tmp_path / "fit.txt")]) == 2
    assert ".csv or .json" in capsys.readouterr().err
