"""Psychometrician pages: the bank view, item detail, import, promotion."""

from __future__ import annotations

import io
import json

from tests.web.conftest import Site, csrf_of


def test_bank_view_item_detail_and_promotion(site: Site, staff_client) -> None:
    c = staff_client("psychometrician")
    page = c.get("/psychometrician/")
    assert page.status_code == 200
    assert page.data.count(b"/psychometrician/items/") >= 224
    assert b"provisional" in page.data
    item = c.get("/psychometrician/items/GIT-003")
    assert item.status_code == 200 and b"<svg" in item.data and b"Parameter versions" in item.data
    token = csrf_of(item.data)
    r = c.post("/psychometrician/items/GIT-003/status", data={"csrf_token": token,
                                                              "status": "pretest"})
    assert r.status_code == 302
    assert site.sql("SELECT status FROM items WHERE external_id = 'GIT-003' AND bank_id = :b",
                    b=site.bank_id())[0][0] == "pretest"
    c.post("/psychometrician/items/GIT-003/status", data={"csrf_token": token,
                                                          "status": "operational"})
    assert site.sql("SELECT status FROM items WHERE external_id = 'GIT-003' AND bank_id = :b",
                    b=site.bank_id())[0][0] == \
        "operational"
    assert c.get("/psychometrician/items/NOPE-404").status_code == 404


def test_import_json_through_the_page_and_a_bad_file_changes_nothing(site: Site,
                                                                     staff_client) -> None:
    c = staff_client("psychometrician")
    token = csrf_of(c.get("/psychometrician/import").data)
    doc = {"format": "proficio-bank/1", "skill": "testing", "items": [{
        "id": "TST-900", "stem": "Which test double records calls for later assertions?",
        "options": [{"id": "a", "text": "A spy"}, {"id": "b", "text": "A dummy"},
                    {"id": "c", "text": "A stub"}],
        "key": "a", "explanation": "Spies record interactions.", "difficulty": 2,
        "tags": ["doubles"]}]}
    before = site.sql("SELECT count(*) FROM items")[0][0]
    bad = json.loads(json.dumps(doc))
    bad["items"][0]["key"] = "z"
    r = c.post("/psychometrician/import", data={
        "csrf_token": token, "file": (io.BytesIO(json.dumps(bad).encode()), "new.json")})
    assert r.status_code == 422 and b"key" in r.data
    assert site.sql("SELECT count(*) FROM items")[0][0] == before
    r = c.post("/psychometrician/import", data={
        "csrf_token": token, "file": (io.BytesIO(json.dumps(doc).encode()), "new.json")})
    assert r.status_code == 200 and b"1 item(s) created" in r.data
    assert site.sql("SELECT status FROM items WHERE external_id = 'TST-900' AND bank_id = :b",
                    b=site.bank_id())[0][0] == "pretest"
    # without parameters it cannot be promoted
    r = c.post("/psychometrician/items/TST-900/status",
               data={"csrf_token": token, "status": "operational"}, follow_redirects=True)
    assert b"has no parameters yet" in r.data
    assert site.sql("SELECT status FROM items WHERE external_id = 'TST-900' AND bank_id = :b",
                    b=site.bank_id())[0][0] == "pretest"
