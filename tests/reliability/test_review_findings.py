"""Findings of the security review (issue 18, parts 4 and 5), each reproduced as it was
reported and refused with a clear 4xx (or answered idempotently) — on both backends."""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from item_bank.content import read_content_csv, write_content_csv
from item_bank.demo import build_demo_database
from item_bank.transfer import read_bank_file
from tests.reliability.conftest import Site, csrf_of, login
from web.config import Settings
from web.rendering import markdown


def _staff(app, site: Site, role: str):
    c = app.test_client()
    cred = site.info.credentials(role)
    login(c, cred.email, cred.password)
    return c


def _demo_assessment(site: Site) -> int:
    return site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                    "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]


# -- unhandled input ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "status"), [
    ("99999999999999999999999", 404),  # was a 500 on SQLite (OverflowError in the driver)
    ("99999999999", 404),  # was a 503 "try again" on PostgreSQL (integer out of range)
    ("%C2%B2", 400),  # "²": str.isdigit() is true, int() fails (was a 500)
    ("-1", 400),
    ("1 OR 1=1", 400),
])
def test_assessment_query_ids_out_of_range_or_not_numbers(site: Site, app, value, status):
    rec = _staff(app, site, "recruiter")
    r = rec.get(f"/recruiter/?assessment={value}")
    assert r.status_code == status, (value, r.status_code)
    assert b"Traceback" not in r.data and b"briefly unavailable" not in r.data
    assert rec.get(f"/recruiter/?assessment={_demo_assessment(site)}").status_code == 200
    assert rec.get("/recruiter/?assessment=").status_code == 200


@pytest.mark.parametrize("who", ["anonymous", "recruiter"])
def test_json_nested_100000_deep_is_a_400_not_a_recursion_error(site: Site, app, who):
    c = app.test_client() if who == "anonymous" else _staff(app, site, "recruiter")
    deep = "[" * 100_000 + "]" * 100_000
    r = c.post("/api/v1/sessions", data=deep, content_type="application/json")
    assert r.status_code == 400 and "nested deeper" in r.json["message"]
    assert len(r.data) < 1000
    r = c.post("/api/v1/sessions", data=json.dumps({"invitation": "x" * 20, "a": {"b": [[1]]}}),
               content_type="application/json")
    assert r.status_code in (404, 422)  # ordinary nesting goes on to validation


def test_json_depth_scan_skips_brackets_inside_strings():
    from web.input_guard import MAX_JSON_DEPTH, json_depth

    assert json_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert json_depth(b'["\\"[[[[", [[1]]]') == 3
    assert json_depth(b"[" * 10**6) == MAX_JSON_DEPTH + 1  # stops counting past the limit


def test_parallel_starts_of_one_invitation_are_one_session_and_no_5xx(site: Site, app):
    """Six simultaneous starts (double clicks, retries): on PostgreSQL one of them hit the
    unique invitation of test_sessions and was answered 503 "try again" (an outage alert)."""
    (token,) = site.invite()
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def start() -> None:
        c = app.test_client()
        barrier.wait()
        statuses.append(c.post("/api/v1/sessions", json={"invitation": token}).status_code)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 6, statuses
    rows = site.sql("SELECT COUNT(*) FROM test_sessions s JOIN invitations i "
                    "ON i.id = s.invitation_id WHERE i.status = 'started' AND s.id = "
                    "(SELECT MAX(id) FROM test_sessions)")
    assert rows[0][0] == 1
    per_invitation = site.sql("SELECT invitation_id, COUNT(*) FROM test_sessions "
                              "GROUP BY invitation_id HAVING COUNT(*) > 1")
    assert per_invitation == []


def test_anonymous_staff_api_calls_get_401_before_any_validation(site: Site, app):
    anon = app.test_client()
    for method, path, body in [("POST", "/api/v1/invitations", {"assessment_id": "x"}),
                               ("POST", "/api/v1/calibrations", {"model": "9pl"}),
                               ("GET", "/api/v1/invitations?assessment_id=abc", None),
                               ("POST", "/api/v1/bank?replace=maybe", {"x": 1})]:
        r = anon.open(path, method=method, json=body)
        assert r.status_code == 401, (method, path, r.status_code)
        assert "errors" not in r.json  # nothing about the schema leaks before sign-in
    psy = _staff(app, site, "psychometrician")
    r = psy.post("/api/v1/invitations", json={"assessment_id": "x"},
                 headers={"X-CSRFToken": csrf_of(psy.get("/psychometrician/import").data)})
    assert r.status_code == 403  # wrong role: 403, also before validation


# -- smaller findings --------------------------------------------------------------------------


def test_item_markdown_renders_no_external_link_or_image():
    html = str(markdown("See [docs](https://evil.example/x) or <https://evil.example> "
                        "![x](https://evil.example/t.png) and `code`"))
    assert "<a " not in html and "<img" not in html and "href" not in html
    assert "<code>code</code>" in html  # the rest of Markdown still renders


def test_import_errors_name_the_upload_not_the_server_temp_folder(site: Site, app):
    psy = _staff(app, site, "psychometrician")
    tmp = tempfile.gettempdir().encode()
    for name, data in [("bank.zip", b"PK\x03\x04 broken"), ("bank.json", b"{not json"),
                       ("bank.csv", b"id,stem\n1,2\n")]:
        r = psy.post("/psychometrician/import", data={
            "csrf_token": csrf_of(psy.get("/psychometrician/import").data),
            "file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
        assert r.status_code == 422, (name, r.status_code)
        assert name.encode() in r.data, r.data
        assert tmp not in r.data and b"/tmp" not in r.data, (name, r.data)


def test_rate_limit_store_check_is_case_insensitive():
    env = {"PROFICIO_ENV": "production", "SECRET_KEY": "s" * 40,
           "SESSION_COOKIE_SECURE": "1"}
    for uri in ("memory://", "MEMORY://", "Memory://", " memory:// "):
        problems = Settings.from_env({**env, "RATELIMIT_STORAGE_URI": uri}).problems()
        assert any("RATELIMIT_STORAGE_URI" in p for p in problems), uri
    ok = Settings.from_env({**env, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379"})
    assert not any("RATELIMIT_STORAGE_URI" in p for p in ok.problems())


def test_demo_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path):
    old = os.umask(0o022)  # the usual umask: files world-readable by default
    try:
        path = tmp_path / "demo.sqlite3"
        build_demo_database(f"sqlite:///{path}", n_invitations=1)
    finally:
        os.umask(old)
    for p in [path, *path.parent.glob("demo.sqlite3-*")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


def test_invitation_lists_are_paginated_and_capped(site: Site, app):
    rec = _staff(app, site, "recruiter")
    csrf = csrf_of(rec.get("/recruiter/invitations/new").data)
    aid = _demo_assessment(site)
    r = rec.post("/api/v1/invitations", json={"assessment_id": aid, "count": 120},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 201
    total = site.sql("SELECT COUNT(*) FROM invitations i JOIN assessments a "
                     "ON a.id = i.assessment_id JOIN organisations o "
                     "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    first = rec.get("/api/v1/invitations")
    assert first.status_code == 200 and len(first.json) == 100
    assert int(first.headers["X-Total-Count"]) == total
    second = rec.get("/api/v1/invitations?page=2")
    assert len(second.json) == total - 100
    ids = [row["invitation_id"] for row in first.json + second.json]
    assert len(set(ids)) == total
    assert rec.get("/api/v1/invitations?page_size=501").status_code == 422
    far = rec.get(f"/api/v1/invitations?page={10**30}")
    assert far.status_code in (200, 422) and (far.status_code == 422 or far.json == [])
    page = rec.get("/recruiter/")
    assert page.status_code == 200 and page.data.count(b"<tr>") == 100 + 1  # + header row
    assert b"page=2" in page.data
    assert rec.get("/recruiter/?page=2").data.count(b"<tr>") == total - 100 + 1


@pytest.mark.parametrize("name", ["evil\u202egpj.exe", "Bob\u2066x\u2069", "A\u200fB"])
def test_names_with_bidi_controls_are_refused(site: Site, app, name):
    rec = _staff(app, site, "recruiter")
    csrf = csrf_of(rec.get("/recruiter/invitations/new").data)
    before = site.sql("SELECT COUNT(*) FROM candidates")
    r = rec.post("/api/v1/invitations", json={"assessment_id": _demo_assessment(site),
                                              "names": ["Ann", name]},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 422 and "row 2: field 'name'" in r.json["message"]
    assert "bidirectional" in r.json["message"]
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": csrf, "assessment": str(_demo_assessment(site)),
        "csv_file": (io.BytesIO(f"name\n{name}\n".encode()), "people.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 422 and b"bidirectional" in r.data
    assert site.sql("SELECT COUNT(*) FROM candidates") == before


def test_cli_refuses_bidi_names(tmp_path: Path, monkeypatch, capsys):
    from web.cli import main

    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["org", "create", "acme", "Acme\u202eevil", "--database-url", url]) != 0
    assert "bidirectional" in capsys.readouterr().err


def test_content_csv_export_neutralises_formulas_and_round_trips(tmp_path: Path):
    from item_bank.content import ItemContent, Option

    hostile = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3",
               "@SUM(A1:A9)", "\t=1+1", "'=already quoted", "''@twice"]
    items = [ItemContent(f"X-{k}", "databases", text,
                         (Option("a", text + " a"), Option("b", "plain")), "a",
                         explanation=text, author=text.strip())
             for k, text in enumerate(hostile)]
    path = tmp_path / "content.csv"
    write_content_csv(path, items)
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    for row in rows:
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r", cell
    back = read_content_csv(path)
    assert [(i.stem, i.options[0].text, i.explanation, i.author) for i in back.items] == \
        [(t, t + " a", t, t.strip()) for t in hostile]
    assert read_bank_file(path).items == back.items
