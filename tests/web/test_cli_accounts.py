"""Setting up an installation from the command line: organisation, staff, assessment; the new
recruiter can sign in and the assessment runs."""

from __future__ import annotations

import re

import pytest

from web.app import create_app
from web.cli import main


def test_org_staff_assessment_commands(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 0
    assert main(["org", "create", "acme", "Acme Ltd"]) == 0
    assert main(["bank", "import", "--shipped", "--org", "acme"]) == 0
    assert main(["staff", "create", "--org", "acme", "--email", "Rita@Acme.example",
                 "--role", "recruiter"]) == 0
    password = re.search(r"password \(shown once\): (\S+)", capsys.readouterr().out).group(1)
    assert main(["assessment", "create", "--org", "acme", "--slug", "be", "--name", "Back end",
                 "--cut-score", "480"]) == 0
    printed = capsys.readouterr().out
    # the default design is simulated before it goes live, and the figures are shown
    assert re.search(r"length: usually \d+ to \d+ questions \(at most 40\)", printed), printed
    assert "overall score: mean SE" in printed and "exposure: most-used item" in printed
    assert main(["staff", "create", "--org", "nope", "--email", "x@y.example",
                 "--role", "recruiter"]) == 2
    assert "no organisation 'nope'" in capsys.readouterr().err
    # leaving stacks out: stored in the blueprint, which the engine applies
    assert main(["assessment", "create", "--org", "acme", "--slug", "be-neutral", "--name",
                 "Back end, no Python or AWS", "--exclude-stack", "python",
                 "--exclude-stack", "AWS", "--no-check"]) == 0
    assert main(["assessment", "create", "--org", "acme", "--slug", "be-bad", "--name", "x",
                 "--exclude-stack", "cobol"]) == 2
    assert "unknown stack 'cobol'" in capsys.readouterr().err
    from item_bank import repository
    from item_bank.db import create_db_engine, transaction

    eng = create_db_engine(url)
    with transaction(eng, write=False) as s:
        stored = repository.find_assessment(s, "be-neutral").blueprint
        assert stored["exclude_tags"] == ["stack:python", "stack:aws"]
        assert repository.find_assessment(s, "be").blueprint["exclude_tags"] == []
        checked = repository.find_assessment(s, "be")
        assert checked.feasibility["max_items"] == 40
        assert checked.blueprint["exposure"]["name"] == "sympson_hetter"
        assert repository.find_assessment(s, "be-neutral").feasibility is None
    eng.dispose()
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        c = app.test_client()
        page = c.get("/login").data
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        r = c.post("/login", data={"csrf_token": token, "email": "rita@acme.example",
                                   "password": password})
        assert r.status_code == 302 and r.headers["Location"] == "/recruiter/"
        assert b"Back end" in c.get("/recruiter/").data
    finally:
        app.extensions["proficio.db"].engine.dispose()


def test_serve_refuses_a_database_without_schema(tmp_path, monkeypatch, capsys) -> None:
    import logging

    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:  # serve installs the server's logging configuration on this process
        assert main(["serve", "--port", "0"]) == 2
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert "proficio db upgrade" in capsys.readouterr().err


@pytest.mark.parametrize("role", ["psychometrician", "admin"])
def test_staff_roles_accepted(tmp_path, monkeypatch, role) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    assert main(["db", "upgrade"]) == 0
    assert main(["org", "create", "o", "O"]) == 0
    assert main(["staff", "create", "--org", "o", "--email", f"{role}@o.example",
                 "--role", role]) == 0
