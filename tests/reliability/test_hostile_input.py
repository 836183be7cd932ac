"""Hostile input, written by hand: oversized bodies, invalid UTF-8, SQL and HTML/script injection
in every free-text field, CSV formula injection, path tricks in uploaded file names, malformed
and malicious XML. Each is refused with a clear 4xx or stored verbatim and rendered inert, and
nothing already stored changes."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from item_bank.transfer import write_bank_file
from tests.reliability.conftest import Site, csrf_of, login
from web.services.engines import FINGERPRINT_TTL_S

SQL = "Robert'); DROP TABLE candidates;-- \" OR 1=1 --"
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HOSTILE_NAMES = [SQL, SCRIPT, "=HYPERLINK(\"http://evil.example\",\"click\")",
                 "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "Zoë O'Brien 李雷"]


def _snapshot(site: Site) -> tuple:
    """The rows hostile input must never change (bank, parameters, invitations, sessions)."""
    return (site.sql("SELECT external_id, stem, status, key FROM items ORDER BY external_id"),
            site.sql("SELECT item_id, a, b, is_current FROM item_parameter_versions "
                     "ORDER BY id"),
            site.sql("SELECT id, status FROM invitations ORDER BY id"),
            site.sql("SELECT id, status, state_version FROM test_sessions ORDER BY id"))


def _staff(app, site: Site, role: str) -> FlaskClient:
    c = app.test_client()
    cred = site.info.credentials(role)
    login(c, cred.email, cred.password)
    return c


def _csrf(c: FlaskClient, page: str) -> str:
    return csrf_of(c.get(page).data)


def _bank_doc(c: FlaskClient) -> dict:
    doc = c.get("/api/v1/bank").json
    assert doc["format"] == "proficio-bank/1"
    return doc


# -- oversized bodies ------------------------------------------------------------------------


def test_oversized_bodies_are_refused_everywhere_without_side_effects(site: Site):
    app = site.app(MAX_CONTENT_LENGTH=64 * 1024, MAX_FORM_MEMORY_SIZE=64 * 1024)
    (token,) = site.invite()
    before = _snapshot(site)
    big = b"x" * (80 * 1024)
    anon = app.test_client()
    r = anon.post("/api/v1/sessions", data=json.dumps({"invitation": token, "p": big.decode()}),
                  content_type="application/json")
    assert r.status_code == 413 and r.json["code"] == 413

    psy = _staff(app, site, "psychometrician")
    csrf = _csrf(psy, "/psychometrician/import")
    r = psy.post("/psychometrician/import", data={
        "csrf_token": csrf, "file": (io.BytesIO(big), "bank.json")},
        content_type="multipart/form-data")
    assert r.status_code == 413 and b"Traceback" not in r.data
    r = psy.post("/api/v1/bank", data=big, content_type="application/json",
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 413

    rec = _staff(app, site, "recruiter")
    csrf = _csrf(rec, "/recruiter/invitations/new")
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": csrf, "assessment": "1",
        "csv_file": (io.BytesIO(b"name\n" + b"a\n" * 50_000), "people.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 413
    r = rec.post("/recruiter/invitations/new", data={"csrf_token": csrf, "assessment": "1",
                                                     "names": "a\n" * 50_000})
    assert r.status_code == 413
    assert _snapshot(site) == before
    site.close_apps()


# -- invalid UTF-8 ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"invitation": "\xff\xfe\xfdaaaaaaaaaaaaaaaaaaaa"}',
    b'\xef\xbb\xbf\xc3\x28{"invitation": 1}',
    b'{"invitation": "\xed\xa0\x80aaaaaaaaaaaaaaaaaaaaaaaaa"}',  # an encoded surrogate
    b'{"invitation": "abc',
])
def test_invalid_utf8_or_json_in_api_bodies_is_a_400(site: Site, client: FlaskClient, body):
    before = _snapshot(site)
    r = client.post("/api/v1/sessions", data=body, content_type="application/json")
    assert r.status_code == 400, r.data
    assert r.json["code"] == 400
    assert _snapshot(site) == before


def test_invalid_utf8_in_answers_and_staff_api_is_a_400(site: Site, app, client: FlaskClient):
    (token,) = site.invite()
    started = client.post("/api/v1/sessions", json={"invitation": token}).json
    sid, bearer = started["session_id"], started["token"]
    before = _snapshot(site)
    r = client.post(f"/api/v1/sessions/{sid}/responses",
                    data=b'{"item_id": "\xff\xfe", "answer": "a"}',
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 400
    rec = _staff(app, site, "recruiter")
    r = rec.post("/api/v1/invitations", data=b'{"assessment_id": 1, "names": ["\xc3\x28"]}',
                 content_type="application/json",
                 headers={"X-CSRFToken": _csrf(rec, "/recruiter/invitations/new")})
    assert r.status_code == 400
    assert _snapshot(site) == before
    status = client.get(f"/api/v1/sessions/{sid}",
                        headers={"Authorization": f"Bearer {bearer}"}).json
    assert status["answered"] == 0 and status["pending_item"] == started["pending_item"]


def test_invalid_utf8_in_forms_and_uploads_is_refused(site: Site, app):
    rec = _staff(app, site, "recruiter")
    csrf = _csrf(rec, "/recruiter/invitations/new")
    n_before = site.sql("SELECT COUNT(*) FROM candidates")[0][0]
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": csrf, "assessment": str(aid),
        "csv_file": (io.BytesIO(b"name,email\n\xff\xfeBob,bob@example.com\n"), "people.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 422 and b"not UTF-8" in r.data
    # raw invalid bytes in an urlencoded form: decoded with replacement characters by Werkzeug,
    # which are not control characters; the name is stored as decoded, never as broken bytes
    body = b"csrf_token=" + csrf.encode() + b"&assessment=" + str(aid).encode() + \
        b"&names=Ann%ff%feB"
    r = rec.post("/recruiter/invitations/new", data=body,
                 content_type="application/x-www-form-urlencoded")
    assert r.status_code in (200, 422)
    names = [row[0] for row in site.sql("SELECT name FROM candidates WHERE name IS NOT NULL")]
    for name in names:
        name.encode("utf-8")  # every stored name is valid text
    assert site.sql("SELECT COUNT(*) FROM candidates")[0][0] in (n_before, n_before + 1)

    psy = _staff(app, site, "psychometrician")
    before = _snapshot(site)
    r = psy.post("/psychometrician/import", data={
        "csrf_token": _csrf(psy, "/psychometrician/import"),
        "file": (io.BytesIO(b'{"format": "proficio-bank/1", "items": ["\xff"]}'), "b.json")},
        content_type="multipart/form-data")
    assert r.status_code == 422 and b"Traceback" not in r.data
    assert _snapshot(site) == before


# -- injection in free text ------------------------------------------------------------------


def test_candidate_names_are_stored_verbatim_and_rendered_inert(site: Site, app):
    rec = _staff(app, site, "recruiter")
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    tables_before = site.sql("SELECT COUNT(*) FROM candidates")[0][0]
    # through the form (half of them) and through the API (the other half)
    form_names, api_names = HOSTILE_NAMES[::2], HOSTILE_NAMES[1::2]
    csrf = _csrf(rec, "/recruiter/invitations/new")
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": csrf, "assessment": str(aid), "names": "\n".join(form_names)})
    assert r.status_code == 200
    page = r.data.decode()
    assert "<script>alert" not in page and "onerror=alert" not in page.replace("&#34;", '"') \
        .split("<img src=x")[0]
    r = rec.post("/api/v1/invitations", json={"assessment_id": aid, "names": api_names},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 201, r.data
    assert site.sql("SELECT COUNT(*) FROM candidates")[0][0] == tables_before + len(HOSTILE_NAMES)
    listed = {row["name"] for row in rec.get("/api/v1/invitations").json}
    assert set(HOSTILE_NAMES) <= listed  # stored exactly, SQL text and all

    page = rec.get("/recruiter/").data.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert" in page
    assert "Robert&#39;); DROP TABLE candidates;--" in page


def _finish(c: FlaskClient, started: dict) -> None:
    state, sid = started, started["session_id"]
    while state["status"] == "in_progress":
        it = state["pending_item"]
        state = c.post(f"/api/v1/sessions/{sid}/responses",
                       headers={"Authorization": f"Bearer {started['token']}"},
                       json={"item_id": it["item_id"], "answer": it["options"][0]["id"]}).json


def test_csv_export_neutralises_every_formula_prefix(site: Site, app):
    import csv

    formulas = [n for n in HOSTILE_NAMES if n[0] in "=+-@"] + ["\t=1+1"]
    (token,) = site.invite(candidate_names=["placeholder"])
    anon = app.test_client()
    started = anon.post("/api/v1/sessions", json={"invitation": token}).json
    _finish(anon, started)
    cid = site.sql("SELECT candidate_id FROM test_sessions WHERE id = :s",
                   s=started["session_id"])[0][0]
    rec = _staff(app, site, "recruiter")
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    for formula in formulas:  # as stored by any path (form, API, CSV upload, CLI)
        site.sql("UPDATE candidates SET name = :n WHERE id = :c", n=formula, c=cid)
        rows = list(csv.reader(io.StringIO(
            rec.get(f"/recruiter/assessments/{aid}/compare.csv").data.decode())))
        names = [row[1] for row in rows[1:]]
        assert "'" + formula in names, (formula, names)
        assert all(not cell or cell[0] not in "=+-@\t\r" for row in rows[1:]
                   for cell in row[:2])


def _hostile_item(doc: dict, item_id: str) -> dict:
    item = dict(next(i for i in doc["items"] if i["id"] == item_id))
    item.pop("parameters", None)  # keep its current calibration
    item["stem"] = f"{SCRIPT} [link](javascript:alert(1)) {SQL}"
    item["options"] = [{"id": o["id"], "text": f"{o['text']} {SCRIPT}"}
                       for o in item["options"]]
    return item


def test_item_stems_and_options_with_script_are_rendered_escaped(site: Site, app):
    anon = app.test_client()
    (token,) = site.invite()
    started = anon.post("/api/v1/sessions", json={"invitation": token}).json
    item_id = started["pending_item"]["item_id"]
    psy = _staff(app, site, "psychometrician")
    doc = _bank_doc(psy)
    hostile = {"format": doc["format"], "items": [_hostile_item(doc, item_id)]}
    r = psy.post("/api/v1/bank?replace=true", json=hostile,
                 headers={"X-CSRFToken": _csrf(psy, "/psychometrician/import")})
    assert r.status_code == 201, r.data
    stored = site.sql("SELECT stem FROM items WHERE external_id = :i AND bank_id = :b",
                      i=item_id, b=site.bank_id())[0][0]
    assert stored == hostile["items"][0]["stem"]  # verbatim
    # workers trust the bank fingerprint they read for up to FINGERPRINT_TTL_S (by design)
    time.sleep(FINGERPRINT_TTL_S + 0.05)

    for page in (psy.get(f"/psychometrician/items/{item_id}").data.decode(),
                 anon.get(f"/t/{token}/question").data.decode()):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;" in page
        assert 'href="javascript:' not in page
    api = anon.get(f"/api/v1/sessions/{started['session_id']}",
                   headers={"Authorization": f"Bearer {started['token']}"}).json
    assert api["pending_item"]["stem"] == stored  # JSON carries text; clients must escape it


# -- uploaded file names ---------------------------------------------------------------------


TRICKY_NAMES = ["../../../../tmp/proficio-pwned.json", "..\\..\\proficio-pwned.json",
                "/etc/proficio-pwned.json", "bank.json\x00.sh", "....//....//proficio-pwned.json",
                "con.json", " .json", ".json"]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_path_tricks_in_import_file_names_write_nothing_outside(site: Site, app, name,
                                                                tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative escape would land here
    psy = _staff(app, site, "psychometrician")
    doc = _bank_doc(psy)
    one = {"format": doc["format"], "items": [dict(doc["items"][0], stem="Renamed stem?")]}
    one["items"][0].pop("parameters")
    before = _snapshot(site)
    r = psy.post("/psychometrician/import", data={
        "csrf_token": _csrf(psy, "/psychometrician/import"), "replace": "on",
        "file": (io.BytesIO(json.dumps(one).encode()), name)},
        content_type="multipart/form-data")
    assert r.status_code in (200, 422), r.status_code
    if r.status_code == 200:  # imported under a sanitised name
        assert site.sql("SELECT stem FROM items WHERE external_id = :i AND bank_id = :b",
                        i=one["items"][0]["id"], b=site.bank_id())[0][0] == "Renamed stem?"
    else:
        assert _snapshot(site) == before
    for where in (tmp_path, Path("/tmp"), Path("/etc"), tmp_path.parent):
        assert not list(where.glob("proficio-pwned*")), where
    assert not list(tmp_path.iterdir())


def test_path_tricks_in_invitation_csv_names_are_ignored(site: Site, app, tmp_path: Path,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = _staff(app, site, "recruiter")
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": _csrf(rec, "/recruiter/invitations/new"), "assessment": str(aid),
        "csv_file": (io.BytesIO(b"name\nPat\n"), "../../../../tmp/proficio-pwned.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 200
    assert not list(Path("/tmp").glob("proficio-pwned*")) and not list(tmp_path.iterdir())


# -- malformed and malicious XML (QTI) -------------------------------------------------------


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1" identifier="X">&lol9;
</assessmentItem>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE item [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1" identifier="X">&xxe;
</assessmentItem>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE item SYSTEM "http://127.0.0.1:9/evil.dtd">
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1" identifier="X"/>"""
MALFORMED = b"""<?xml version="1.0"?><assessmentItem identifier="X"><itemBody>"""


def _qti_zip(site: Site, tmp_path: Path, replace: dict[str, bytes] | None = None,
             extra: dict[str, bytes] | None = None) -> bytes:
    """A real QTI package of two bank items, with members replaced or added."""
    from item_bank.db import create_db_engine, transaction
    from item_bank.repository import export_document

    eng = create_db_engine(site.url)
    with transaction(eng) as db:
        doc = export_document(db, name="export", bank_id=site.bank_id())
    eng.dispose()
    from dataclasses import replace as dc_replace

    doc = dc_replace(doc, items=doc.items[:2], parameters=())
    path = tmp_path / "bank.zip"
    write_bank_file(path, doc, "qti")
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        names = src.namelist()
        items = [n for n in names if n != "imsmanifest.xml" and n.endswith(".xml")]
        for n in names:
            data = src.read(n)
            if replace and n == items[0]:
                data = next(iter(replace.values()))
            dst.writestr(n, data)
        for n, data in (extra or {}).items():
            dst.writestr(n, data)
    return out.getvalue()


@pytest.mark.parametrize(("kind", "payload"), [
    ("billion laughs", BILLION_LAUGHS), ("external entity", EXTERNAL_ENTITY),
    ("external DTD", EXTERNAL_DTD), ("malformed", MALFORMED)])
def test_malicious_qti_is_refused_and_nothing_is_stored(site: Site, app, tmp_path: Path,
                                                       kind, payload):
    psy = _staff(app, site, "psychometrician")
    package = _qti_zip(site, tmp_path, replace={"item": payload})
    before = _snapshot(site)
    r = psy.post("/psychometrician/import", data={
        "csrf_token": _csrf(psy, "/psychometrician/import"), "replace": "on",
        "file": (io.BytesIO(package), "bank.zip")}, content_type="multipart/form-data")
    assert r.status_code == 422, (kind, r.status_code)
    text = r.data.decode()
    assert ("unsafe XML" in text) or ("malformed XML" in text), text[-800:]
    assert "root:" not in text and "Traceback" not in text  # no /etc/passwd, no stack trace
    assert _snapshot(site) == before


def test_broken_zip_and_traversal_members_are_refused(site: Site, app, tmp_path: Path):
    psy = _staff(app, site, "psychometrician")
    before = _snapshot(site)
    for name, data in [("bank.zip", b"PK\x03\x04 not really a zip"),
                       ("bank.zip", _qti_zip(site, tmp_path,
                                             extra={"../../proficio-pwned.xml": MALFORMED}))]:
        r = psy.post("/psychometrician/import", data={
            "csrf_token": _csrf(psy, "/psychometrician/import"),
            "file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
        # the first is unreadable; the second imports the two real items at most (the extra
        # member is never extracted), and is refused here because they already exist
        assert r.status_code == 422, r.status_code
    assert _snapshot(site) == before
    assert not any(p.name.startswith("proficio-pwned") for p in Path(os.sep, "tmp").iterdir())


def test_sql_and_script_in_query_strings_and_path_segments(site: Site, app):
    psy = _staff(app, site, "psychometrician")
    rec = _staff(app, site, "recruiter")
    before = _snapshot(site)
    r = psy.get("/psychometrician/", query_string={"skill": "x' OR '1'='1"})
    assert r.status_code == 200 and b"SRV-001" not in r.data  # no skill matches: no rows
    r = psy.get("/psychometrician/", query_string={"skill": SCRIPT})
    assert b"<script>alert" not in r.data
    for segment in ("SRV-001' OR '1'='1", "SRV-001;DROP TABLE items", "%3Cscript%3E"):
        assert psy.get(f"/psychometrician/items/{segment}").status_code == 404
    csrf = _csrf(psy, "/psychometrician/import")
    r = psy.post("/psychometrician/items/SRV-001/status",
                 data={"csrf_token": csrf, "status": "retired' --"})
    assert r.status_code == 302
    assert rec.get("/recruiter/", query_string={"assessment": "1 OR 1=1"}).status_code == 400
    assert rec.get("/recruiter/invitations/new").status_code == 200
    assert _snapshot(site) == before


def test_nul_characters_are_refused_not_sent_to_the_database(site: Site, app):
    """PostgreSQL cannot store U+0000: before the fix these were DataErrors answered as 503."""
    before = _snapshot(site)
    anon = app.test_client()
    csrf = _csrf(anon, "/login")
    r = anon.post("/login", data={"csrf_token": csrf, "email": "a\x00@example.com",
                                  "password": "whatever-123"})
    assert r.status_code == 400 and b"NUL" in r.data
    psy = _staff(app, site, "psychometrician")
    assert psy.get("/psychometrician/items/SRV%00001").status_code == 400
    r = psy.post("/psychometrician/items/SRV%00001/status",
                 data={"csrf_token": _csrf(psy, "/psychometrician/import"), "status": "retired"})
    assert r.status_code == 400
    assert psy.get("/psychometrician/?skill=a%00b").status_code == 400
    r = anon.get("/api/v1/invitations?assessment_id=1%00")
    assert r.status_code == 401  # staff endpoints answer anonymous callers first
    rec = _staff(app, site, "recruiter")
    r = rec.get("/api/v1/invitations?assessment_id=1%00")
    assert r.status_code == 400 and r.json["code"] == 400
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    r = rec.post("/recruiter/invitations/new", data={
        "csrf_token": _csrf(rec, "/recruiter/invitations/new"), "assessment": str(aid),
        "csv_file": (io.BytesIO(b"name,email\nBob,b\x00b@example.com\n"), "people.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 422 and b"row 2" in r.data
    assert _snapshot(site) == before
