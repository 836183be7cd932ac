"""Set-up as a new user meets it: ``proficio demo`` keeps its database and says how other
commands reach it; a command on a database without schema names it and leaves no file behind;
``org list`` and ``assessment list``."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.cli import main


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "instance"
    monkeypatch.setenv("PROFICIO_INSTANCE", str(folder))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PROFICIO_BASE_URL", raising=False)
    return folder


def _lines_with(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


def test_demo_is_kept_unless_rebuilt_and_prints_database_url(instance: Path, capsys,
                                                             monkeypatch) -> None:
    assert main(["demo", "--no-serve", "--invitations", "2"]) == 0
    first = capsys.readouterr().out
    url = f"sqlite:///{instance / 'demo.sqlite3'}"
    assert f"export DATABASE_URL={url}" in first
    assert "built fresh" in first
    assert _lines_with(first, "Ada Lovelace") and _lines_with(first, "Alan Turing")

    monkeypatch.delenv("DATABASE_URL")  # the demo exported it to the server it would start
    assert main(["demo", "--no-serve", "--invitations", "1"]) == 0
    second = capsys.readouterr().out
    assert "kept from the last run" in second
    assert _lines_with(second, "Grace Hopper")  # named after the ones already there
    old_pw = _lines_with(first, "recruiter@demo.example")[0].split()[-1]
    new_pw = _lines_with(second, "recruiter@demo.example")[0].split()[-1]
    assert old_pw != new_pw

    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["assessment", "list"]) == 0
    listing = capsys.readouterr().out
    row = _lines_with(listing, "backend-engineer")[0].split()
    assert row[0] == "demo" and row[-1] == "3"  # 2 + 1 invitations kept across runs
    monkeypatch.delenv("DATABASE_URL")

    assert main(["demo", "--no-serve", "--invitations", "1", "--rebuild"]) == 0
    assert "built fresh" in capsys.readouterr().out
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["assessment", "list", "--org", "demo"]) == 0
    assert _lines_with(capsys.readouterr().out, "backend-engineer")[0].split()[-1] == "1"
    assert main(["org", "list"]) == 0
    orgs = capsys.readouterr().out.splitlines()
    assert orgs[0].split() == ["slug", "name", "staff", "assessments"]
    assert orgs[1].split() == ["demo", "Demo", "Company", "2", "1"]


def test_no_schema_names_the_database_and_leaves_no_file(instance: Path, capsys,
                                                         monkeypatch) -> None:
    assert main(["demo", "--no-serve", "--invitations", "0"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("DATABASE_URL")  # the demo exported it to the server it would start
    assert main(["org", "list"]) == 2
    err = capsys.readouterr().err
    default = instance / "proficio.sqlite3"
    assert f"the database sqlite:///{default} has no Proficio schema" in err
    assert f"export DATABASE_URL=sqlite:///{instance / 'demo.sqlite3'}" in err
    assert not default.exists()
    assert sorted(p.name for p in instance.iterdir() if p.suffix == ".sqlite3") == \
        ["demo.sqlite3"]
