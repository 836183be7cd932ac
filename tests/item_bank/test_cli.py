"""The item bank's ``proficio`` sub-commands, run through `web.cli.main` on a SQLite file."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import select

from item_bank import db
from item_bank import repository as repo
from tests.item_bank.helpers import MINI_BANK, MINI_PARAMS, org_with_assessment, started_session
from web.cli import main


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path / "instance"))
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def test_commands_refuse_an_unmigrated_database(url, capsys):
    assert main(["bank", "export", "--out", "x.json", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "no Proficio schema" in err and "proficio db upgrade" in err
    assert main(["db", "current", "--database-url", url]) == 1


def test_db_upgrade_defaults_to_the_instance_folder(url, tmp_path, capsys):
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "instance" / "proficio.sqlite3").is_file()
    assert main(["db", "current"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_import_export_round_trip(url, tmp_path, capsys):
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["bank", "import", str(MINI_BANK), "--database-url", url]) == 2
    assert "no item bank yet" in capsys.readouterr().err
    assert main(["org", "create", "acme", "Acme", "--database-url", url]) == 0
    assert main(["bank", "import", str(MINI_BANK), "--org", "acme", "--database-url", url]) == 0
    assert main(["bank", "import", str(MINI_PARAMS), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "7 items created" in out and "7 parameter versions" in out
    for name in ("b.json", "b.zip", "p.csv"):
        assert main(["bank", "export", "--out", str(tmp_path / name), "--database-url", url]) == 0
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["item_id"] for r in rows][:2] == ["DB-001", "DB-002"]
    assert rows[4]["provisional"] == "true"
    assert main(["bank", "export", "--plain", "--out", str(tmp_path / "plain.csv"),
                 "--database-url", url]) == 0
    with open(tmp_path / "plain.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["item_id", "skill", "model", "a", "b", "c", "d", "se_a", "se_b", "se_c",
                      "se_d", "n_responses"]
    # importing the same items again is refused, with the file and field named
    assert main(["bank", "import", str(tmp_path / "b.json"), "--database-url", url]) == 2
    assert "field 'id': the bank already has" in capsys.readouterr().err
    assert main(["bank", "import", str(tmp_path / "b.zip"), "--replace",
                 "--database-url", url]) == 0


def test_bad_file_is_one_line_error_and_no_write(url, tmp_path, capsys):
    main(["db", "upgrade", "--database-url", url])
    main(["org", "create", "acme", "Acme", "--database-url", url])
    main(["bank", "import", str(MINI_BANK), "--org", "acme", "--database-url", url])
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,skill,model,a,b\nDB-001,databases,2pl,1.0,0\nDB-002,databases,9pl,1,0\n")
    assert main(["bank", "import", str(bad), "--database-url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "line 3" in err and "'model'" in err
    engine = db.create_db_engine(url)
    with db.transaction(engine, write=False) as s:
        assert len(repo.load_bank(s).bank) == 0
    engine.dispose()


def test_responses_export_and_invitations(url, tmp_path, capsys):
    main(["db", "upgrade", "--database-url", url])
    main(["org", "create", "acme", "Acme", "--database-url", url])
    main(["bank", "import", str(MINI_BANK), "--org", "acme", "--database-url", url])
    main(["bank", "import", str(MINI_PARAMS), "--database-url", url])
    engine = db.create_db_engine(url)
    with db.transaction(engine) as s:
        _, assessment = org_with_assessment(s)
        sid = started_session(s, assessment)
        repo.record_response(s, sid, "DB-001", 1, "b", 1)
        repo.record_response(s, sid, "GIT-002", 2, "c", 0)
    engine.dispose()
    out = tmp_path / "resp.csv"
    assert main(["responses", "export", "--out", str(out), "--database-url", url]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["item_id"], r["response"], r["skill"]) for r in rows] == [
        ("DB-001", "1", "databases"), ("GIT-002", "0", "version_control")]
    from irt.io import read_responses_csv

    assert read_responses_csv(out).data.n_responses == 2
    assert main(["responses", "export", "--out", str(out), "--skill", "databases",
                 "--database-url", url]) == 0
    with open(out, newline="") as f:
        assert len(list(csv.DictReader(f))) == 1
    capsys.readouterr()
    assert main(["invitations", "create", "--count", "3", "--base-url", "https://x.test/",
                 "--database-url", url]) == 0
    links = capsys.readouterr().out.split()
    assert len(links) == 3 and all(link.startswith("https://x.test/t/") for link in links)
    engine = db.create_db_engine(url)
    with db.transaction(engine, write=False) as s:
        token = links[0].rsplit("/", 1)[1]
        assert repo.find_invitation(s, token) is not None
    engine.dispose()
    assert main(["invitations", "create", "--count", "1", "--assessment", "nope",
                 "--database-url", url]) == 2


def test_import_shipped_and_validate(url, tmp_path, capsys):
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["db", "upgrade", "--database-url", url]) == 0  # idempotent
    assert main(["org", "create", "acme", "Acme", "--database-url", url]) == 0
    assert main(["bank", "import", "--shipped", "--org", "acme", "--bank", "backend",
                 "--database-url", url]) == 0
    assert " items created, 0 updated" in capsys.readouterr().out
    assert main(["bank", "validate"]) == 0
    out = capsys.readouterr().out
    assert "320 valid items" in out and "problem:" not in out
    assert "note: item 'DB-012': near-copy" in out  # writing notes never fail validation
    # a coverage map that claims more than the bank holds fails validation
    import json
    import shutil

    from item_bank.shipped import SHIPPED_BANK

    copy = tmp_path / "bank"
    shutil.copytree(SHIPPED_BANK, copy)
    cov = copy / "coverage" / "cloud.json"
    doc = json.loads(cov.read_text())
    doc["topics"][0]["levels"] = [1, 2, 3, 4, 5]
    cov.write_text(json.dumps(doc))
    assert main(["bank", "validate", str(copy)]) == 1
    assert "problem: " in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "proficio-bank/1", "skill": "databases", "items": [{"id": "X"}]}')
    assert main(["bank", "validate", str(bad)]) == 2
    assert "items[0] (id 'X'): field 'stem'" in capsys.readouterr().err


def test_bank_commands_work_per_organisation(url, tmp_path, capsys):
    """Two organisations, each with a bank holding the same external ids; --org/--bank pick
    one, libraries publish, and responses export only the bank owner's candidates."""
    assert main(["db", "upgrade", "--database-url", url]) == 0
    for org in ("acme", "globex"):
        assert main(["org", "create", org, org.title(), "--database-url", url]) == 0
        assert main(["bank", "import", str(MINI_BANK), "--org", org, "--bank", "main",
                     "--database-url", url]) == 0
    assert main(["bank", "import", str(MINI_PARAMS), "--org", "globex", "--database-url",
                 url]) == 0
    assert main(["bank", "export", "--out", str(tmp_path / "x.json"), "--database-url",
                 url]) == 2
    assert "several item banks" in capsys.readouterr().err
    assert main(["bank", "export", "--out", str(tmp_path / "p.csv"), "--org", "acme",
                 "--database-url", url]) == 2  # acme's bank has no parameters
    assert main(["bank", "export", "--out", str(tmp_path / "p.csv"), "--org", "globex",
                 "--database-url", url]) == 0
    assert main(["bank", "create", "--org", "acme", "lib", "Library", "--library",
                 "--database-url", url]) == 0
    assert main(["bank", "library", "--org", "acme", "--bank", "lib", "--withdraw",
                 "--database-url", url]) == 0
    assert main(["bank", "import", str(MINI_BANK), "--org", "nobody", "--database-url",
                 url]) == 2
    assert "no organisation 'nobody'" in capsys.readouterr().err
    engine = db.create_db_engine(url)
    with db.transaction(engine) as s:
        from item_bank.models import Organisation

        banks = {o: repo.find_bank(s, s.scalar(select(Organisation).where(
            Organisation.slug == o)), "main") for o in ("acme", "globex")}
        assert banks["acme"].id != banks["globex"].id
        assert len(repo.load_bank(s, bank_id=banks["globex"].id).bank) == 7
        assert len(repo.load_bank(s, bank_id=banks["acme"].id).bank) == 0  # no parameters
    engine.dispose()


def test_skill_commands_and_a_qti_import_that_skips_and_creates(url, tmp_path, capsys):
    from tests.item_bank.test_response_types import examples

    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["org", "create", "acme", "Acme", "--database-url", url]) == 0
    assert main(["skill", "list", "--org", "acme", "--database-url", url]) == 2
    assert "has no banks; create one with `proficio bank create`" in capsys.readouterr().err
    assert main(["bank", "create", "--org", "acme", "main", "Main", "--database-url", url]) == 0
    assert main(["skill", "list", "--org", "acme", "--database-url", url]) == 0
    assert "no skills yet" in capsys.readouterr().out
    assert main(["skill", "create", "Bad Slug", "X", "--org", "acme", "--database-url", url]) == 2
    assert "field 'slug'" in capsys.readouterr().err
    assert main(["skill", "create", "sql", "SQL", "--org", "acme", "--database-url", url]) == 0
    assert "skill 'sql' created" in capsys.readouterr().out
    package = examples(tmp_path)
    assert main(["bank", "import", str(package), "--org", "acme", "--database-url", url,
                 "--strict", "--skill", "reading"]) == 2
    assert "inlineChoiceInteraction is not supported" in capsys.readouterr().err
    assert main(["bank", "import", str(package), "--org", "acme", "--database-url", url,
                 "--skill", "reading"]) == 0
    out = capsys.readouterr().out
    assert "4 items created" in out and "skill created: reading" in out
    assert "skipped: inline_choice.xml: item 'inlineChoice'" in out
    assert "1 images stored" in out
    assert main(["bank", "import", str(package), "--org", "acme", "--database-url", url,
                 "--skill", "reading", "--prefix", "v2-"]) == 0
    assert "4 items created" in capsys.readouterr().out
    assert main(["skill", "list", "--org", "acme", "--database-url", url]) == 0
    assert capsys.readouterr().out.splitlines() == ["reading\t8 items\tReading",
                                                    "sql\t0 items\tSQL"]
