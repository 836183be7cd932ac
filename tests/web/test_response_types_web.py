"""Issue 22 through the real app: a bank with every response type (and an image) delivered on
the candidate pages and through the API, scored by `item_bank.scoring`, replayed to the stored
result; images served only for the pending item and to the owning organisation's staff; uploads
over the limit or of a refused type refused with a clear message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from engine import Blueprint, SkillSpec
from irt import ItemParams
from item_bank import repository as repo
from item_bank.content import MediaFile, ParameterRecord, parse_bank_json
from item_bank.db import create_db_engine, transaction
from item_bank.models import Organisation
from tests.item_bank.test_response_types import png
from tests.web.conftest import WEB_BACKENDS, Site, csrf_of, login, new_site

ITEMS = [
    {"id": "S1", "stem": "Which figure is shown?", "key": "b",
     "options": [{"id": "a", "text": "A circle"}, {"id": "b", "text": "A grey bar"}],
     "media": [{"name": "fig.png", "alt": "A grey horizontal bar"}]},
    {"id": "M1", "stem": "Which are HTTP methods?", "response_type": "multiple",
     "correct": ["a", "c"],
     "options": [{"id": "a", "text": "GET"}, {"id": "b", "text": "FETCH"},
                 {"id": "c", "text": "PUT"}, {"id": "d", "text": "SEND"}]},
    {"id": "M2", "stem": "Which are SQL keywords?", "response_type": "multiple",
     "correct": ["a", "b"], "scoring": "all_or_nothing",
     "options": [{"id": "a", "text": "SELECT"}, {"id": "b", "text": "WHERE"},
                 {"id": "c", "text": "ASSIGN"}]},
    {"id": "O1", "stem": "Order the steps of a TCP handshake.", "response_type": "ordering",
     "correct": ["c", "a", "b"],
     "options": [{"id": "a", "text": "SYN-ACK"}, {"id": "b", "text": "ACK"},
                 {"id": "c", "text": "SYN"}]},
    {"id": "N1", "stem": "How many bits are in a byte?", "response_type": "numeric",
     "correct": ["8"]},
    {"id": "T1", "stem": "Which HTTP header names the media type of a body?\n\n"
                         "| header | example value |\n| --- | --- |\n"
                         "| ? | application/json; charset=utf-8 |",
     "response_type": "text", "correct": ["Content-Type"]},
]
#: What the test answers on the pages, and the category each answer scores.
ANSWERS = {
    "S1": ({"answer": "b"}, "b", 1),
    "M1": ({"answer": ["a"]}, "a", 1),
    "M2": ({"answer": ["a", "c"]}, "a,c", 0),
    "O1": ({"position-1": "c", "position-2": "a", "position-3": "b"}, "c,a,b", 1),
    "N1": ({"answer": "8,0"}, "8,0", 1),
    "T1": ({"answer": " content-type "}, "content-type", 1),
}
API_ANSWERS = {"S1": "a", "M1": ["a", "c"], "M2": ["a", "b"], "O1": ["a", "b", "c"],
               "N1": "7", "T1": "Content-Type"}


@pytest.fixture(scope="module", params=WEB_BACKENDS)
def mixed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Site, int]]:
    with new_site(request.param, tmp_path_factory.mktemp("mixed")) as site:
        eng = create_db_engine(site.url)
        try:
            with transaction(eng) as db:
                org = db.query(Organisation).filter_by(slug="demo").one()
                bank = repo.create_bank(db, org, "mixed", "Mixed types")
                doc = parse_bank_json("mixed.json", {
                    "format": "proficio-bank/1", "skills": [{"id": "mixed", "name": "Mixed"}],
                    "items": [dict(it, skill="mixed", status="operational") for it in ITEMS]})
                params = [ParameterRecord(ItemParams(i["id"], "2pl", 1.0, -0.5 + k * 0.2,
                                                     skill="mixed"))
                          for k, i in enumerate(ITEMS) if i["id"] != "M1"]
                params.append(ParameterRecord(ItemParams("M1", "gpcm", 1.2,
                                                         thresholds=(-0.6, 0.4), skill="mixed")))
                from dataclasses import replace

                doc = replace(doc, parameters=tuple(params),
                              files=(MediaFile("S1", "fig.png", png()),))
                repo.import_document(db, doc, bank_id=bank.id)
                blueprint = Blueprint(skills=(SkillSpec("mixed", min_items=6),), min_items=6,
                                      max_items=6, se_target=None).to_dict()
                repo.create_assessment(db, org, "mixed", "Mixed", blueprint, bank=bank)
                bank_id = bank.id
        finally:
            eng.dispose()
        yield site, bank_id


def _invite(site: Site) -> str:
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            from item_bank.models import Assessment

            a = db.query(Assessment).filter_by(slug="mixed").one()
            return repo.create_invitations(db, a, 1)[0].token
    finally:
        eng.dispose()


def _stored(site: Site, token: str) -> dict[str, tuple[str, int]]:
    from item_bank.security import hash_token

    rows = site.sql("SELECT i.external_id, r.raw_answer, r.score FROM responses r JOIN items i "
                    "ON i.id = r.item_id JOIN test_sessions s ON s.id = r.session_id JOIN "
                    "invitations v ON v.id = s.invitation_id WHERE v.token_hash = :h",
                    h=hash_token(token))
    return {e: (a, s) for e, a, s in rows}


def test_every_response_type_on_the_candidate_pages(mixed: tuple[Site, int]) -> None:
    site, _ = mixed
    app = site.app()
    client = app.test_client()
    token = _invite(site)
    page = client.get(f"/t/{token}")
    csrf = csrf_of(page.data)
    client.post(f"/t/{token}/start", data={"csrf_token": csrf})
    seen = []
    image_url = None
    for _ in range(6):
        page = client.get(f"/t/{token}/question")
        assert page.status_code == 200
        html = page.data.decode()
        item = re.search(r'name="item_id" value="([^"]+)"', html).group(1)
        kind = re.search(r'name="kind" value="([^"]+)"', html).group(1)
        assert "<fieldset" in html and "<legend" in html
        spec = next(i for i in ITEMS if i["id"] == item)
        assert kind == spec.get("response_type", "single")
        for value in spec.get("correct", []):  # never the correct answers in the page
            if len(value) > 2:
                assert value not in html
        if kind == "multiple":
            assert html.count('type="checkbox" name="answer"') == len(spec["options"])
        if kind == "ordering":
            assert '<label for="pos-1">Position 1</label>' in html
            bad = client.post(f"/t/{token}/answer", data={
                "csrf_token": csrf, "item_id": item, "kind": kind, "position-1": "a",
                "position-2": "a", "position-3": "b"})
            assert bad.status_code == 422 and b"different item for each position" in bad.data
        if kind == "numeric":
            assert 'inputmode="decimal"' in html and '<label for="answer-entry">' in html
            bad = client.post(f"/t/{token}/answer", data={
                "csrf_token": csrf, "item_id": item, "kind": kind, "answer": "eight"})
            assert bad.status_code == 422 and b"Please enter a number" in bad.data
        if item == "S1":
            m = re.search(r'<img src="([^"]+)" alt="A grey horizontal bar">', html)
            assert m, html
            image_url = m.group(1)
            got = client.get(image_url)
            assert got.status_code == 200 and got.data == png()
            assert got.headers["Content-Type"] == "image/png"
        elif image_url is not None:
            assert client.get(image_url).status_code == 404  # only the pending item's image
        form, _, _ = ANSWERS[item]
        r = client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                                    "kind": kind, **form})
        assert r.status_code == 302, r.data[:400]
        seen.append(item)
    assert sorted(seen) == sorted(ANSWERS)
    assert _stored(site, token) == {i: (a, s) for i, (_, a, s) in ANSWERS.items()}
    if image_url is not None:
        assert client.get(image_url).status_code == 404  # finished: nothing is served

    from item_bank.security import hash_token
    from web.services.replay import session_replay

    sid = site.sql("SELECT s.id FROM test_sessions s JOIN invitations v ON "
                   "v.id = s.invitation_id WHERE v.token_hash = :h", h=hash_token(token))[0][0]
    org = site.sql("SELECT id FROM organisations WHERE slug = 'demo'")[0][0]
    with app.app_context():
        rep = session_replay(org, sid)
    assert rep.rescoring_reproduced and rep.log_matches_state
    assert rep.rescored_differently == ()


def test_every_response_type_through_the_api(mixed: tuple[Site, int]) -> None:
    site, _ = mixed
    client = site.app().test_client()
    r = client.post("/api/v1/sessions", json={"invitation": _invite(site)})
    assert r.status_code == 201
    sid, bearer = r.json["session_id"], r.json["token"]
    auth = {"Authorization": f"Bearer {bearer}"}
    body = r.json
    for _ in range(6):
        pending = body["pending_item"]
        item = pending["item_id"]
        assert pending["interaction"] == next(i.get("response_type", "single") for i in ITEMS
                                              if i["id"] == item)
        assert not {"key", "correct", "scoring"} & set(pending)
        if item == "S1":
            [m] = pending["media"]
            assert m["alt"] == "A grey horizontal bar"
            assert client.get(m["url"], headers=auth).data == png()
            assert client.get(m["url"]).status_code == 401
        bad = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                          json={"item_id": item, "answer": {"ids": ["a"]}})
        assert bad.status_code == 422 and "answer" in bad.json["errors"]["json"]
        if pending["interaction"] in ("multiple", "ordering"):
            wrong = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                                json={"item_id": item, "answer": ["zz"]})
            assert wrong.status_code == 422
            assert "field 'answer': 'zz' is not one of the options" in wrong.json["message"]
        r = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                        json={"item_id": item, "answer": API_ANSWERS[item]})
        assert r.status_code == 200, r.json
        body = r.json
        if item == "M1":  # a repeat in another order is the same answer: acknowledged once
            again = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                                json={"item_id": item, "answer": ["c", "a"]})
            assert again.status_code == 200 and again.json["position"] == body["position"]
    assert body["status"] == "completed"
    scores = {e: s for e, (_, s) in _stored_by_session(site, sid).items()}
    assert scores == {"S1": 0, "M1": 2, "M2": 1, "O1": 0, "N1": 0, "T1": 1}


def _stored_by_session(site: Site, sid: int) -> dict[str, tuple[str, int]]:
    rows = site.sql("SELECT i.external_id, r.raw_answer, r.score FROM responses r JOIN items i "
                    "ON i.id = r.item_id WHERE r.session_id = :s", s=sid)
    return {e: (a, s) for e, a, s in rows}


def _psychometrician(site: Site, app: Flask, other: bool = False):  # type: ignore[no-untyped-def]
    c = app.test_client()
    if other:
        login(c, "psychometrician@other.example", site.other_org_password)
    else:
        cred = site.info.credentials("psychometrician")
        login(c, cred.email, cred.password)
    return c


def test_staff_images_are_scoped_and_uploads_are_checked(mixed: tuple[Site, int],
                                                         tmp_path: Path) -> None:
    site, bank_id = mixed
    app = site.app()
    own, other = _psychometrician(site, app), _psychometrician(site, app, other=True)
    url = f"/psychometrician/items/S1/media/fig.png?bank={bank_id}"
    assert own.get(url).data == png()
    assert other.get(url).status_code == 404
    page = own.get(f"/psychometrician/items/S1?bank={bank_id}")
    assert b'alt="A grey horizontal bar"' in page.data
    import io

    def upload(data: bytes, name: str, alt: str = "A figure") -> str:
        csrf = csrf_of(own.get(f"/psychometrician/items/M1?bank={bank_id}").data)
        r = own.post(f"/psychometrician/items/M1/media?bank={bank_id}", data={
            "csrf_token": csrf, "alt": alt, "file": (io.BytesIO(data), name)},
            content_type="multipart/form-data", follow_redirects=True)
        assert r.status_code == 200
        return r.data.decode()

    from item_bank.media import MAX_MEDIA_BYTES

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>'
    assert "SVG images are refused" in upload(svg, "x.svg")
    assert f"at most {MAX_MEDIA_BYTES} bytes" in upload(png() + b"\0" * MAX_MEDIA_BYTES, "b.png")
    assert "not an image of an allowed type" in upload(b"GIF-but-not-really", "c.gif")
    assert "alt text is required" in upload(png(), "d.png", alt=" ")
    assert site.sql("SELECT count(*) FROM item_media m JOIN items i ON i.id = m.item_id "
                    "WHERE i.external_id = 'M1'")[0][0] == 0
    assert "Image d.png added to item M1" in upload(png(), "d.png")
    assert own.get(f"/psychometrician/items/M1/media/d.png?bank={bank_id}").data == png()
