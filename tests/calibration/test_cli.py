"""``proficio calibrate``: files in, files out, one-line errors that name the line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

import irt
from irt.io import read_items_csv, write_responses_csv
from web.cli import main

DATA = Path(__file__).parent / "data"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_calibrate_lsat6_writes_items_scores_and_a_summary(tmp_path, capsys) -> None:
    out, scores = tmp_path / "items.csv", tmp_path / "scores.csv"
    code = main(["calibrate", str(DATA / "responses_long.csv"), "--model", "2pl",
                 "--out", str(out), "--scores", str(scores)])
    assert code == 0
    table = read_items_csv(out)
    ref = {r["item_id"]: r for r in _rows(DATA / "reference_2pl_rasch.csv")}
    for i, iid in enumerate(table.bank.item_ids):
        assert table.bank.a[i] == pytest.approx(float(ref[iid]["a_2pl"]), abs=0.01)
        assert table.bank.b[i] == pytest.approx(float(ref[iid]["b_2pl"]), abs=0.01)
    assert set(table.extra) == {"se_a", "se_b", "n_responses"}
    assert table.extra["n_responses"] == ["1000"] * 5
    assert all(float(v) > 0 for v in table.extra["se_b"])
    text = capsys.readouterr()
    assert "loglik" in text.out and "-2466.653" in text.out and "converged" in text.out
    assert "EM default" in text.err  # the progress bar
    sc = _rows(scores)
    assert len(sc) == 1000 and sc[0].keys() == {"person_id", "skill", "theta", "se",
                                                "n_responses"}


def test_items_spec_mixes_models_and_skills_and_anchors_hold(tmp_path) -> None:
    rng = np.random.default_rng(3)
    dich = irt.generate_items(8, "2pl", rng, skill="sql", prefix="d")
    poly = irt.generate_items(4, "grm", rng, skill="api", prefix="g", n_categories=3)
    bank = irt.Bank.from_params([*dich.params(), *poly.params()])
    x = np.hstack([irt.simulate_responses(rng.normal(size=1500), dich, rng),
                   irt.simulate_responses(rng.normal(size=1500), poly, rng)])
    resp = tmp_path / "r.csv"
    write_responses_csv(resp, [f"p{k}" for k in range(1500)], bank.item_ids,
                        irt.SparseResponses.from_dense(x))
    spec = tmp_path / "spec.csv"
    spec.write_text("item_id,model,skill\n" + "".join(
        f"{i},{m},{s}\n" for i, m, s in zip(bank.item_ids, bank.models, bank.skills,
                                            strict=True)))
    anchors = tmp_path / "anchors.csv"
    irt.io.write_items_csv(anchors, dich.take([0, 1]))
    out = tmp_path / "items.csv"
    assert main(["calibrate", str(resp), "--items", str(spec), "--anchors", str(anchors),
                 "--prior-a", "0.5", "--out", str(out), "--quiet"]) == 0
    got = read_items_csv(out)
    assert got.bank.models == bank.models and got.bank.skills == bank.skills
    assert got.bank.a[0] == pytest.approx(dich.a[0], abs=1e-5)
    assert got.extra["se_a"][0] == ""  # anchored: not estimated
    assert {"se_b1", "se_b2"} <= set(got.extra)


BAD_INPUTS = [
    ("", "empty file"),
    ("person,item,response\np1,i1,1\n", "line 1: missing column 'person_id'"),
    ("person_id,item_id,response\np1,i1,1\np1,i2,yes\n", "line 3: field 'response' is not an "
                                                         "integer"),
    ("person_id,item_id,response\np1,i1,1\np2,i1,0\np1,i1,0\n", "line 4: person 'p1' answered "
                                                                "item 'i1' twice"),
    ("person_id,item_id,response\np1,i1,0\np2,i1,2\n", "line 3: field 'response' = 2 out of "
                                                       "range for item 'i1' (2pl"),
    ("person_id,item_id,response\np1,i1,1\np2,i1,2\n", "the smallest response code is 1 (codes "
                                                       "1..2), but categories are numbered from "
                                                       "0; recode them to 0..1"),
    ("person_id,item_id,response\np1,i1,1\np2,i1\n", "line 3: 2 fields, header has 3"),
]


@pytest.mark.parametrize(("content", "message"), BAD_INPUTS)
def test_malformed_responses_stop_with_one_line_naming_the_row(tmp_path, capsys, content,
                                                               message) -> None:
    path = tmp_path / "r.csv"
    path.write_text(content)
    out = tmp_path / "items.csv"
    assert main(["calibrate", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("proficio calibrate: error:") and "\n" not in err
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("item_id,model,colour\nitem1,2pl,red\n", "line 1: unknown column 'colour'"),
        ("item_id,model\nitem1,2pl\nitem1,3pl\n", "line 3: duplicate item_id 'item1'"),
        ("item_id,model\nitem1,rasch9\n", "line 2: item 'item1': field 'model'"),
        ("item_id,model,n_categories\nitem1,grm,x\n", "line 2: field 'n_categories'"),
    ],
)
def test_malformed_item_specs_name_the_line(tmp_path, capsys, spec, message) -> None:
    path = tmp_path / "spec.csv"
    path.write_text(spec)
    resp = tmp_path / "r.csv"
    shutil.copy(DATA / "responses_long.csv", resp)
    assert main(["calibrate", str(resp), "--items", str(path), "--out",
                 str(tmp_path / "o.csv"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_category_out_of_range_for_the_spec_model_names_the_line(tmp_path, capsys) -> None:
    resp = tmp_path / "r.csv"
    resp.write_text("person_id,item_id,response\np1,q1,0\np1,q2,2\np2,q1,1\np2,q2,3\n")
    spec = tmp_path / "spec.csv"
    spec.write_text("item_id,model,n_categories\nq1,2pl,\nq2,grm,3\n")
    assert main(["calibrate", str(resp), "--items", str(spec), "--out",
                 str(tmp_path / "o.csv"), "--quiet"]) == 2
    assert "line 5: field 'response' = 3 out of range for item 'q2' (grm, categories 0..2)" \
        in capsys.readouterr().err


def test_calibrate_pcm_with_codes_from_1_recodes_and_says_so(tmp_path, capsys) -> None:
    """Science (Likert 1..4): refused without --recode; with it, the PCM on mirt's grid
    (--nodes 121 --theta-range 8) gives mirt's latent SD and a = 1 everywhere."""
    src = DATA / "science4" / "responses_long.csv"
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    one_based = tmp_path / "likert.csv"
    with open(one_based, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person_id", "item_id", "response"])
        for r in rows:
            w.writerow([r["person_id"], r["item_id"], int(r["response"]) + 1])
    out = tmp_path / "items.csv"
    args = ["calibrate", str(one_based), "--model", "pcm", "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "--recode" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--recode", "--nodes", "121", "--theta-range", "8"]) == 0
    text = capsys.readouterr().out
    assert "responses recoded: every code minus 1" in text
    assert "Rasch family" in text and "1.001" in text  # σ = 1.0012 (mirt: √1.00246)
    bank = read_items_csv(out).bank
    assert set(bank.models) == {"pcm"} and np.all(bank.a == 1.0)
    assert np.all(bank.n_categories == 4)


def test_calibrate_refuses_common_a_with_a_free_slope_model(tmp_path, capsys) -> None:
    out = tmp_path / "items.csv"
    assert main(["calibrate", str(DATA / "responses_long.csv"), "--model", "2pl",
                 "--common-a", "1", "--out", str(out), "--quiet"]) == 2
    assert "uses model '2pl', which estimates a slope per item" in capsys.readouterr().err
