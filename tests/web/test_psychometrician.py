"""Psychometrician pages: the bank view, item detail, import, promotion."""

from __future__ import annotations

import io
import json

from tests.web.conftest import Site, csrf_of


def test_bank_view_item_detail_and_promotion(site: Site, staff_client) -> None:
    c = staff_client("psychometrician")
    page = c.get("/psychometrician/")
    assert page.status_code == 200
    assert page.data.count(b"/psychometrician/items/") >= 320
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



def test_rollback_needs_a_reason_and_a_known_run_and_only_psychometricians(site: Site,
                                                                           staff_client) -> None:
    c = staff_client("psychometrician")
    page = c.get("/psychometrician/calibrations")
    assert page.status_code == 200 and b"Published parameter versions" in page.data
    token = csrf_of(page.data)
    (run_id,) = site.sql("SELECT MIN(id) FROM calibration_runs")[0]
    before = site.sql("SELECT id, is_current FROM item_parameter_versions ORDER BY id")
    r = c.post(f"/psychometrician/runs/{run_id}/rollback", data={"csrf_token": token,
                                                                "reason": "  "},
               follow_redirects=True)
    assert b"say why the publication is rolled back" in r.data
    assert c.post("/psychometrician/runs/999999/rollback",
                  data={"csrf_token": token, "reason": "x"}).status_code == 404
    assert site.sql("SELECT id, is_current FROM item_parameter_versions ORDER BY id") == before
    recruiter = staff_client("recruiter")
    rtoken = csrf_of(recruiter.get("/recruiter/").data)
    for url in (f"/psychometrician/runs/{run_id}/rollback",
                "/psychometrician/calibrations/1/preview",
                "/psychometrician/calibrations/1/publish"):
        assert recruiter.post(url, data={"csrf_token": rtoken, "reason": "x"}).status_code \
            == 403
    assert site.sql("SELECT id, is_current FROM item_parameter_versions ORDER BY id") == before
    # a job that does not exist has no review page and nothing to preview
    assert c.post("/psychometrician/calibrations/999999/preview",
                  data={"csrf_token": token, "item": ["GIT-003"]}).status_code == 404
def test_import_lists_items_to_review_on_the_page_and_in_the_api(site: Site,
                                                                 staff_client) -> None:
    """Writing-quality warnings never block an import; the page and the API list them."""
    c = staff_client("psychometrician")
    token = csrf_of(c.get("/psychometrician/import").data)

    def cued(iid: str) -> dict:
        return {"format": "proficio-bank/1", "skill": "testing", "items": [{
            "id": iid, "stem": "What is a test fixture for?",
            "options": [{"id": "a", "text": "Putting the system into a known, repeatable state "
                                            "before each test runs"},
                        {"id": "b", "text": "Loosening assertions"},
                        {"id": "c", "text": "Recording coverage"},
                        {"id": "d", "text": "Sharding the suite"}], "key": "a"}]}

    r = c.post("/psychometrician/import", data={
        "csrf_token": token, "file": (io.BytesIO(json.dumps(cued("TST-901")).encode()),
                                      "cued.json")})
    assert r.status_code == 200 and b"1 item(s) created" in r.data
    assert b"Items to review (1)" in r.data and b"<code>TST-901</code> (key-longest)" in r.data
    r = c.post("/api/v1/bank", json=cued("TST-902"), headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.json
    assert r.json["items_created"] == 1
    assert [(w["item_id"], w["code"]) for w in r.json["warnings"]] == [("TST-902",
                                                                         "key-longest")]


def test_a_calibration_job_whose_worker_stopped_is_shown_failed(site: Site,
                                                                staff_client) -> None:
    """The job queue does not re-run a task whose worker died: the scheduled maintenance marks
    a job still queued or running after `STALE_JOB` failed, saying why; a recent one is left."""
    import datetime as dt

    from item_bank.db import create_db_engine
    from web.services.calibrations import STALE_JOB, fail_stale_jobs

    now = dt.datetime.now(dt.UTC)
    settings = json.dumps({"model": "2pl", "mode": "live"})

    def job(status: str, at: dt.datetime) -> int:
        return int(site.sql("INSERT INTO calibration_jobs (bank_id, created_at, status, progress, "
                            "message, settings) VALUES (:b, :t, :s, 0.4, 'EM cycle 12', :j) "
                            "RETURNING id", b=site.bank_id(), t=at, s=status, j=settings)[0][0])

    stale = [job("running", now - STALE_JOB - dt.timedelta(minutes=5)),
             job("queued", now - STALE_JOB - dt.timedelta(minutes=5))]
    recent = job("running", now - dt.timedelta(minutes=5))
    engine = create_db_engine(site.url)
    try:
        assert fail_stale_jobs(engine) >= 2
        assert fail_stale_jobs(engine) == 0  # idempotent
    finally:
        engine.dispose()
    c = staff_client("psychometrician")
    for job_id in stale:
        body = c.get(f"/api/v1/calibrations/{job_id}").get_json()
        assert body["status"] == "failed" and "its worker stopped" in body["message"]
        page = c.get(f"/psychometrician/calibrations/{job_id}")
        assert page.status_code == 200 and b"its worker stopped" in page.data
    assert c.get(f"/api/v1/calibrations/{recent}").get_json()["status"] == "running"
    for job_id in [*stale, recent]:
        site.sql("DELETE FROM calibration_jobs WHERE id = :i", i=job_id)
