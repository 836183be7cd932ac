"""The DESIGN.md CSV formats: round trips and line-numbered errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import irt
from irt.io import FormatError, read_items_csv, read_responses_csv, write_items_csv

LSAT6 = Path("/work/shared/data/lsat6/responses_long.csv")


def test_items_round_trip_mixed_models(tmp_path: Path) -> None:
    bank = irt.Bank.from_params(
        irt.generate_items(3, "3pl", 1, prefix="d", skill="databases").params()
        + irt.generate_items(2, "grm", 2, n_categories=5, prefix="g").params()
        + irt.generate_items(2, "gpcm", 3, n_categories=3, prefix="p").params()
        + irt.generate_items(2, "4pl", 4, prefix="f").params()
    )
    path = tmp_path / "items.csv"
    write_items_csv(path, bank, extra={"n_responses": [10] * len(bank)})
    table = read_items_csv(path)
    back = table.bank
    assert back.item_ids == bank.item_ids and back.models == bank.models
    assert back.skills == bank.skills
    theta = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(irt.category_probabilities(theta, back),
                               irt.category_probabilities(theta, bank), atol=1e-5)
    assert table.extra["n_responses"] == ["10"] * len(bank)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("skill,model,a,b\nx,2pl,1,0\n", "line 1: missing column 'item_id'"),
        ("item_id,model,a,b\nq1,2pl,1,0\nq1,2pl,1,0\n", "line 3: duplicate item_id 'q1'"),
        ("item_id,model,a,b\nq1,2pl,abc,0\n", "line 2: field 'a' is not a number"),
        ("item_id,model,a,b\nq1,2pl,0,0\n", "line 2: item 'q1': field 'a' must be non-zero"),
        ("item_id,model,a,b,b1,b2\nq1,grm,1,,1,0\n", "line 2: .*strictly increasing"),
        ("item_id,model,a,b\nq1,2pl,1\n", "line 2: 3 fields, header has 4"),
        ("item_id,model,a,b\nq1,9pl,1,0\n", "line 2: item 'q1': field 'model'"),
    ],
)
def test_items_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        read_items_csv(io.StringIO(text))


def test_responses_read_and_errors() -> None:
    log = read_responses_csv(io.StringIO(
        "person_id,item_id,response,group\np1,q1,1,A\np1,q2,0,A\np2,q1,0,B\n"), keep=["group"])
    assert log.person_ids == ("p1", "p2") and log.item_ids == ("q1", "q2")
    assert log.data.n_responses == 3
    assert log.extra["group"].tolist() == ["A", "A", "B"]
    bank = irt.Bank.dichotomous([1.0, 1.0], [0.0, 0.0], item_ids=["q2", "q1"])
    remapped = log.for_bank(bank)
    assert remapped.item.tolist() == [1, 0, 1]

    cases = [
        ("person_id,item_id\np1,q1\n", "line 1: missing column 'response'"),
        ("person_id,item_id,response\np1,q1,x\n", "line 2: field 'response' is not an integer"),
        ("person_id,item_id,response\np1,q1,1\np1,q1,0\n",
         "line 3: person 'p1' answered item 'q1' twice"),
        ("person_id,item_id,response\np1,q1,1\n,q1,0\n", "line 3: field 'person_id' is empty"),
    ]
    for text, message in cases:
        with pytest.raises(FormatError, match=message):
            read_responses_csv(io.StringIO(text))
    bad = read_responses_csv(io.StringIO("person_id,item_id,response\np1,q1,1\np1,q3,2\n"))
    with pytest.raises(FormatError, match="line 3: unknown item 'q3'"):
        bad.for_bank(bank)
    bad = read_responses_csv(io.StringIO("person_id,item_id,response\np1,q1,1\np1,q2,2\n"))
    with pytest.raises(FormatError, match="line 3: field 'response' = 2 out of range"):
        bad.for_bank(bank)


@pytest.mark.skipif(not LSAT6.exists(), reason="shared LSAT6 data not present")
def test_reads_quoted_real_data() -> None:
    log = read_responses_csv(LSAT6)
    assert log.data.n_persons == 1000 and log.data.n_items == 5
    assert log.data.n_responses == 5000
