"""The audit log: staff actions recorded by the routes and the CLI, read and exported by the
organisation's admins only, scoped to their organisation; the 0004 migration from 0003."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid

import pytest
from flask import Flask
from sqlalchemy import inspect

from item_bank import repository as repo
from item_bank.db import create_db_engine, current_revision, head_revision, transaction, upgrade
from item_bank.models import Organisation
from tests.web.conftest import Site, csrf_of, login
from web.cli import main
from web.services import audit


def _admin(site: Site, org: str) -> tuple[str, str]:
    address = f"admin-{uuid.uuid4().hex[:8]}@{org}.example"
    password = "admin-password-" + uuid.uuid4().hex[:6]
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            o = db.query(Organisation).filter_by(slug=org).one()
            repo.create_staff_user(db, o, address, "admin", password)
    finally:
        eng.dispose()
    return address, password


def test_route_actions_are_recorded_and_only_the_own_organisation_reads_them(
        site: Site, app: Flask) -> None:
    recruiter = app.test_client()
    cred = site.info.credentials("recruiter")
    login(recruiter, cred.email, cred.password)
    token = csrf_of(recruiter.get("/recruiter/").data)
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o ON "
                   "o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    r = recruiter.post("/api/v1/invitations", json={"assessment_id": aid, "names": ["Ada"]},
                       headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.data
    inv = r.json[0]["invitation_id"]
    assert recruiter.post(f"/api/v1/invitations/{inv}/revoke",
                          headers={"X-CSRFToken": token}).status_code == 204

    admin_email, admin_pw = _admin(site, "demo")
    admin = app.test_client()
    login(admin, admin_email, admin_pw)
    page = admin.get("/admin/audit?action=invitation.revoked")
    assert page.status_code == 200
    assert f"invitation {inv}".encode() in page.data and cred.email.encode() in page.data
    rows = list(csv.DictReader(io.StringIO(admin.get("/admin/audit.csv").data.decode())))
    mine = {(r["actor"], r["action"], r["target"]) for r in rows}
    assert (cred.email, "invitation.revoked", f"invitation {inv}") in mine
    assert (cred.email, "invitations.created", "assessment backend-engineer") in mine
    assert (cred.email, "login", cred.email) in mine
    events = json.loads(admin.get("/admin/audit.json").data)["events"]
    assert {e["id"] for e in events} == {int(r["id"]) for r in rows}
    assert all(e["actor"] != "recruiter@other.example" for e in events)

    other_email, other_pw = _admin(site, "other")
    other = app.test_client()
    login(other, other_email, other_pw)
    seen = json.loads(other.get("/admin/audit.json").data)["events"]
    assert {e["id"] for e in seen}.isdisjoint(e["id"] for e in events)
    assert b"invitation.revoked" not in other.get("/admin/audit").data

    assert recruiter.get("/admin/audit").status_code == 403
    assert recruiter.get("/admin/audit.csv").status_code == 403
    assert app.test_client().get("/admin/audit.json").status_code == 302


def test_psychometrician_actions_are_recorded(site: Site, app: Flask) -> None:
    psy = app.test_client()
    cred = site.info.credentials("psychometrician")
    login(psy, cred.email, cred.password)
    item = site.sql("SELECT external_id FROM items WHERE status = 'operational' LIMIT 1")[0][0]
    token = csrf_of(psy.get(f"/psychometrician/items/{item}").data)
    assert psy.post(f"/psychometrician/items/{item}/status",
                    data={"csrf_token": token, "status": "operational"}).status_code == 302
    rows = site.sql("SELECT actor, target, detail FROM audit_events WHERE action = "
                    "'item.status_changed' AND target = :t", t=f"item {item}")
    assert rows and rows[-1][0] == cred.email


def test_csv_export_neutralises_formulas(site: Site, app: Flask) -> None:
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            org = db.query(Organisation).filter_by(slug="other").one()
            audit.record(db, actor=None, action="bank.imported",
                         target='=HYPERLINK("http://evil.example","x")', detail={},
                         organisation_id=org.id)
    finally:
        eng.dispose()
    email, pw = _admin(site, "other")
    c = app.test_client()
    login(c, email, pw)
    text = c.get("/admin/audit.csv").data.decode()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_cli_actions_are_recorded_and_exported(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 0
    assert main(["org", "create", "acme", "Acme"]) == 0
    assert main(["staff", "create", "--org", "acme", "--email", "r@acme.example",
                 "--role", "recruiter"]) == 0
    assert main(["staff", "set-role", "--org", "acme", "--email", "r@acme.example",
                 "--role", "admin"]) == 0
    assert main(["staff", "set-role", "--org", "nope", "--email", "r@acme.example",
                 "--role", "admin"]) == 2
    assert main(["staff", "set-password", "--email", "r@acme.example"]) == 0
    assert main(["staff", "reset-2fa", "--email", "r@acme.example"]) == 0
    password = re.findall(r"password \(shown once\): (\S+)", capsys.readouterr().out)[-1]
    out = tmp_path / "audit.json"
    assert main(["audit", "export", "--org", "acme", "--format", "json", "--out",
                 str(out)]) == 0
    events = json.loads(out.read_text())["events"]
    assert [(e["actor"], e["action"]) for e in reversed(events)] == [
        ("command line", "staff.created"), ("command line", "staff.role_changed"),
        ("command line", "staff.password_set"), ("command line", "totp.disabled")]
    assert next(e for e in events if e["action"] == "staff.role_changed")["detail"] == {
        "from": "recruiter", "to": "admin"}
    from web.app import create_app

    app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        c = app.test_client()
        login(c, "r@acme.example", password)
        assert c.get("/admin/audit").status_code == 200  # the new role applies
    finally:
        app.extensions["proficio.db"].engine.dispose()


def test_migration_0004_from_a_0003_database(tmp_path) -> None:
    eng = create_db_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        upgrade(eng, "0003")
        with transaction(eng) as db:
            org = repo.create_organisation(db, "keep", "Keep")
            db.execute(
                Organisation.__table__.update().where(Organisation.id == org.id)
                .values(name="Kept"))
        upgrade(eng)
        assert current_revision(eng) == head_revision()
        tables = set(inspect(eng).get_table_names())
        assert {"audit_events", "password_reset_tokens", "login_throttles", "staff_totp",
                "staff_recovery_codes", "staff_identities"} <= tables
        with eng.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM organisations").all() == [("Kept",)]
        from alembic import command

        from item_bank.db import alembic_config

        command.downgrade(alembic_config(eng), "0003")
        assert "audit_events" not in set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_export_of_an_unknown_org_fails_cleanly(tmp_path, monkeypatch, capsys,
                                                    fmt: str) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'e.sqlite3'}")
    assert main(["db", "upgrade"]) == 0
    assert main(["audit", "export", "--org", "ghost", "--format", fmt]) == 2
    assert "no organisation 'ghost'" in capsys.readouterr().err


def test_admin_changes_roles_in_their_own_organisation_only(site: Site, app: Flask) -> None:
    admin_email, admin_pw = _admin(site, "demo")
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            demo = db.query(Organisation).filter_by(slug="demo").one()
            other = db.query(Organisation).filter_by(slug="other").one()
            mine = repo.create_staff_user(db, demo, f"m-{uuid.uuid4().hex[:6]}@demo.example",
                                          "recruiter", "mine-password-1234").id
            theirs = repo.create_staff_user(db, other,
                                            f"t-{uuid.uuid4().hex[:6]}@other.example",
                                            "recruiter", "their-password-1234").id
    finally:
        eng.dispose()
    admin = app.test_client()
    login(admin, admin_email, admin_pw)
    page = admin.get("/admin/staff")
    assert page.status_code == 200 and b"@other.example" not in page.data
    token = csrf_of(page.data)
    r = admin.post(f"/admin/staff/{mine}/role", data={"csrf_token": token,
                                                      "role": "psychometrician"})
    assert r.status_code == 302
    assert site.sql("SELECT role FROM staff_users WHERE id = :i", i=mine) == [
        ("psychometrician",)]
    assert admin.post(f"/admin/staff/{theirs}/role", data={
        "csrf_token": token, "role": "admin"}).status_code == 404
    assert site.sql("SELECT role FROM staff_users WHERE id = :i", i=theirs) == [("recruiter",)]
    assert admin.post(f"/admin/staff/{mine}/role", data={"role": "admin"}).status_code == 400
    rows = site.sql("SELECT actor, detail FROM audit_events WHERE action = "
                    "'staff.role_changed' AND actor = :a", a=admin_email)
    assert len(rows) == 1 and "psychometrician" in str(rows[0][1])
    recruiter = app.test_client()
    cred = site.info.credentials("recruiter")
    login(recruiter, cred.email, cred.password)
    assert recruiter.get("/admin/staff").status_code == 403
    assert recruiter.post(f"/admin/staff/{mine}/role", data={
        "csrf_token": csrf_of(recruiter.get("/recruiter/").data),
        "role": "admin"}).status_code == 403
