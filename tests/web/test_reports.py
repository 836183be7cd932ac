"""The recruiter's report keeps the engine's decisions, says "not measured" for skills without
answers, leads with an overall score, and names the norm group behind its percentile ranges."""

from __future__ import annotations

import datetime as dt
import re

from flask.testing import FlaskClient
from sqlalchemy import select

from engine import Blueprint, Classification, SkillSpec
from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import Assessment, CalibrationJob, ItemBank, Organisation
from tests.web.conftest import Site, expire_deadline
from tests.web.test_candidate_flow import pending, session_id_of, start
from web.services import reports


def _sprt_assessment(site: Site, slug: str) -> str:
    """A two-skill test with a cut at 500 decided by SPRT; returns an invitation token."""
    bp = Blueprint(skills=(SkillSpec("api_design", max_items=10),
                           SkillSpec("databases", max_items=10)),
                   min_items=2, max_items=20, se_target=None,
                   classification=Classification(cut=0.0, method="sprt", delta=0.5)).to_dict()
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            org = db.scalar(select(Organisation).where(Organisation.slug == "demo"))
            bank = db.get(ItemBank, site.bank_id())
            assessment = repo.create_assessment(db, org, slug, "SPRT test", bp, cut_score=500.0,
                                                bank=bank)
            return repo.create_invitations(db, assessment, 1)[0].token
    finally:
        eng.dispose()


def _keys(site: Site) -> dict[str, str]:
    return {i: k for i, k in site.sql("SELECT external_id, key FROM items")}


def _answer_all(client: FlaskClient, site: Site, token: str, correct: bool,
                alternate: bool = False) -> int:
    """Answer every question right (or wrong); with ``alternate``, right and wrong in turn,
    starting as ``correct`` says."""
    csrf = start(client, token)
    keys = _keys(site)
    while True:
        item, options, _ = pending(client, token)
        answer = keys[item] if correct else next(o for o in options if o != keys[item])
        r = client.post(f"/t/{token}/answer",
                        data={"csrf_token": csrf, "item_id": item, "answer": answer})
        assert r.status_code == 302
        if r.headers["Location"].endswith("/done"):
            return session_id_of(site, token)
        correct = correct != alternate


def test_the_engines_sprt_decision_is_stored_and_shown_as_the_engines(site: Site, app,
                                                                       staff_client):
    token = _sprt_assessment(site, "sprt-decisions")
    sid = _answer_all(app.test_client(), site, token, correct=True)
    stored = site.sql("SELECT decision, decision_rule, n_items FROM skill_results "
                      "WHERE session_id = :s", s=sid)
    assert len(stored) == 2
    assert all(d == "pass" and rule == "sprt" and n < 10 for d, rule, n in stored)
    page = staff_client("recruiter").get(f"/recruiter/sessions/{sid}")
    assert page.status_code == 200
    assert page.data.count(reports.RULE_LABELS["sprt"].encode()) == 2
    assert reports.RULE_LABELS["interval"].encode() not in page.data
    api = staff_client("recruiter").get(f"/api/v1/reports/{sid}")
    body = api.get_json()
    assert {s["decision_rule"] for s in body["skills"]} == {"sprt"}
    assert body["overall"]["score"] > 500


def test_a_skill_without_answers_is_not_measured_and_the_overall_score_uses_the_rest(
        site: Site, app, staff_client):
    (token,) = site.invite()
    client = app.test_client()
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                           "answer": options[0]})
    sid = session_id_of(site, token)
    expire_deadline(site, sid)
    assert client.get(f"/t/{token}/question").status_code in (200, 302)
    body = staff_client("recruiter").get(f"/api/v1/reports/{sid}").get_json()
    measured = [s for s in body["skills"] if s["measured"]]
    assert len(measured) == 1 and len(body["skills"]) == 8
    for s in body["skills"]:
        if not s["measured"]:
            assert s["score"] is None and s["percentile"] is None and s["decision"] is None
    only = measured[0]
    assert body["overall"]["theta"] == only["theta"]
    assert body["overall"]["weights"] == {only["skill"]: 1.0}
    assert only["percentile"]["lower"] < only["percentile"]["upper"]
    page = staff_client("recruiter").get(f"/recruiter/sessions/{sid}").data
    assert page.count(b"not measured (no answers)") == 7
    assert reports.SIMULATED_NORM.encode() in page


def test_percentiles_compare_with_the_applicants_of_a_published_calibration(site: Site,
                                                                            staff_client):
    sid = int(site.sql("SELECT session_id FROM overall_results ORDER BY id LIMIT 1")[0][0])
    before = staff_client("recruiter").get(f"/api/v1/reports/{sid}").get_json()
    assert before["norm_group"] == {"name": reports.SIMULATED_NORM, "provisional": True}
    scales = [{"skill": s, "latent_mean": 0.5, "latent_sd": 1.0} for s in
              ("api_design", "databases", "server_side", "security", "testing", "devops",
               "version_control", "cloud")]
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            job = CalibrationJob(bank_id=site.bank_id(), status="published", settings={},
                                 finished_at=dt.datetime.now(
                dt.UTC), result={"scales": scales, "n_persons": 812})
            db.add(job)
            db.flush()
            job_id = job.id
    finally:
        eng.dispose()
    try:
        after = staff_client("recruiter").get(f"/api/v1/reports/{sid}").get_json()
        assert re.fullmatch(r"applicants in the calibration of \d{4}-\d\d-\d\d \(n = 812\)",
                            after["norm_group"]["name"])
        assert after["norm_group"]["provisional"] is False
        for b, a in zip(before["skills"], after["skills"], strict=True):
            if b["measured"]:
                # the same score ranks lower among applicants whose mean is 0.5 above 0
                assert a["score"] == b["score"]
                assert a["percentile"]["lower"] < b["percentile"]["lower"]
                assert a["percentile"]["upper"] < b["percentile"]["upper"]
    finally:
        site.sql("DELETE FROM calibration_jobs WHERE id = :j", j=job_id)


def test_an_extreme_score_carries_a_note_that_it_is_pulled_toward_the_middle():
    group = reports.NormGroup("test group", True, {}, {}, {})
    extreme = reports.skill_score("api_design", "API", 2.4, 0.6, 4, "max_items", None, group)
    ordinary = reports.skill_score("api_design", "API", 0.2, 0.6, 4, "max_items", None, group)
    assert extreme.shrinkage_points is not None and extreme.shrinkage_points > 100
    assert ordinary.shrinkage_points is None


def test_the_csv_export_carries_overall_scores_and_decision_rules(site: Site, staff_client):
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            aid = db.scalar(select(Assessment.id).where(Assessment.slug == "sprt-decisions"))
    finally:
        eng.dispose()
    c = staff_client("recruiter")
    page = c.get(f"/recruiter/assessments/{aid}/compare")
    assert page.status_code == 200 and b"Overall" in page.data
    text = c.get(f"/recruiter/assessments/{aid}/compare.csv").data.decode()
    header, first = text.splitlines()[:2]
    assert "overall_score" in header and "api_design_decision_rule" in header
    assert ",sprt" in first
