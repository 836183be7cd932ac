"""Calibration as a background job: queue → embedded worker thread → review → publish.

Pretest items are answered by simulated candidates from known parameters; an anchored
calibration (operational items fixed) must put them back on the operational scale, and publishing
must make the estimates current while keeping the old versions.
"""

from __future__ import annotations

import datetime as dt
import io
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import select

import irt
from item_bank import repository as repo
from item_bank.db import make_engine, transaction
from item_bank.models import Assessment, Candidate, CandidateSession, Invitation, Item, Response
from tests.web.conftest import WEB_BACKENDS, login, new_site
from web.jobs import start_embedded_consumer

PRETEST = [f"DB-{k:03d}" for k in range(1, 9)]
TRUE_A = 1.3
TRUE_B = np.linspace(-1.5, 1.5, len(PRETEST))


def simulate_log(url: str, n_candidates: int, rng: np.random.Generator, bank_id: int) -> None:
    """Candidates who each answered 12 operational and 4 pretest databases items and 8 testing
    items, all from one θ (so the two skills' latent correlation is near 1)."""
    eng = make_engine(url)
    with transaction(eng) as db:
        db.query(Item).filter(Item.bank_id == bank_id, Item.external_id.in_(PRETEST)).update(
            {Item.status: "pretest"}, synchronize_session=False)
        loaded = repo.load_bank(db, skills=["databases", "testing"], bank_id=bank_id)
        bank = loaded.bank
        operational = [i for i, m in enumerate(loaded.items)
                       if m.status == "operational" and m.skill == "databases"]
        other_skill = [i for i, m in enumerate(loaded.items) if m.skill == "testing"]
        truth = irt.Bank.dichotomous([TRUE_A] * len(PRETEST), TRUE_B, item_ids=PRETEST)
        item_pk = dict(db.execute(select(Item.external_id, Item.id)
                                  .where(Item.bank_id == bank_id)).all())
        assessment = db.scalars(select(Assessment).where(Assessment.bank_id == bank_id)
                                .order_by(Assessment.id)).first()
        now = dt.datetime.now(dt.UTC)
        theta = rng.normal(size=n_candidates)
        for p in range(n_candidates):
            cand = Candidate(public_id=uuid.uuid4().hex, organisation_id=assessment.organisation_id)
            db.add(cand)
            db.flush()
            inv = Invitation(assessment_id=assessment.id, candidate_id=cand.id,
                             token_hash=uuid.uuid4().hex, status="completed",
                             expires_at=now + dt.timedelta(days=1))
            db.add(inv)
            db.flush()
            sess = CandidateSession(invitation_id=inv.id, candidate_id=cand.id,
                                    assessment_id=assessment.id, status="completed",
                                    engine_state={}, blueprint={})
            db.add(sess)
            db.flush()
            ops = np.concatenate([rng.choice(operational, 12, replace=False),
                                  rng.choice(other_skill, 8, replace=False)])
            pre = rng.choice(len(PRETEST), 4, replace=False)
            x_ops = irt.simulate_responses([theta[p]], bank.take(ops), rng)[0]
            x_pre = irt.simulate_responses([theta[p]], truth.take(pre), rng)[0]
            ids = [bank.item_ids[i] for i in ops] + [PRETEST[j] for j in pre]
            for pos, (iid, x) in enumerate(zip(ids, [*x_ops, *x_pre], strict=True), start=1):
                db.add(Response(session_id=sess.id, item_id=item_pk[iid], position=pos,
                                raw_answer="a", score=int(x), answered_at=now))
    eng.dispose()


@pytest.mark.parametrize("backend", WEB_BACKENDS)
def test_anchored_calibration_job_recovers_pretest_items_and_publishes(backend, tmp_path):
    rng = np.random.default_rng(7)
    with new_site(backend, tmp_path) as site:
        simulate_log(site.url, 500, rng, site.bank_id())
        app = site.app()
        client = app.test_client()
        cred = site.info.credentials("psychometrician")
        login(client, cred.email, cred.password)
        csrf = {"X-CSRFToken": _csrf(client)}
        consumer = start_embedded_consumer()
        try:
            r = client.post("/api/v1/calibrations", json={"mode": "anchored", "model": "2pl",
                                                         "prior_a_sd": None}, headers=csrf)
            assert r.status_code == 202, r.json
            job_id = r.json["id"]
            deadline = time.monotonic() + 120
            while True:
                job = client.get(f"/api/v1/calibrations/{job_id}").json
                if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        finally:
            consumer.stop(graceful=True)
        assert job["status"] == "succeeded", job["message"]
        assert job["bank_id"] == site.bank_id()
        demo_org = site.sql("SELECT id FROM organisations WHERE slug = 'demo'")[0][0]
        assert job["result"]["summary"]["pooled_organisations"] == [demo_org]  # no consent
        items = {row["item_id"]: row for row in job["result"]["items"]}
        est_b = np.array([items[i]["b"] for i in PRETEST])
        est_a = np.array([items[i]["a"] for i in PRETEST])
        assert not any(items[i]["anchor"] for i in PRETEST)
        assert all(row["anchor"] for iid, row in items.items() if iid not in PRETEST)
        assert np.sqrt(np.mean((est_b - TRUE_B) ** 2)) < 0.3
        assert abs(np.mean(est_a) - TRUE_A) < 0.35
        fit = {row["item_id"]: row for row in job["result"]["fit"]}
        assert set(PRETEST) <= set(fit)
        assert all(fit[i]["method"] == "rest-theta" for i in PRETEST)  # sparse CAT-like data
        assert sum(bool(fit[i]["flag"]) for i in PRETEST) <= 2  # generated by the model
        corr = job["result"]["correlations"]
        assert sorted(corr["skills"]) == ["databases", "testing"]
        assert corr["matrix"][0][1] > 0.8  # one ability drove both skills
        page = client.get(f"/psychometrician/calibrations/{job_id}")
        assert page.status_code == 200 and b"Publish as the new parameter version" in page.data

        before = site.sql("SELECT count(*) FROM item_parameter_versions")[0][0]
        r = client.post(f"/api/v1/calibrations/{job_id}/publish", headers=csrf)
        assert r.status_code == 200
        current = dict(site.sql(
            "SELECT i.external_id, v.b FROM item_parameter_versions v JOIN items i "
            "ON i.id = v.item_id WHERE v.is_current AND i.bank_id = :b", b=site.bank_id()))
        np.testing.assert_allclose([current[i] for i in PRETEST], est_b)
        after = site.sql("SELECT count(*) FROM item_parameter_versions")[0][0]
        assert after == before + len(PRETEST)  # old versions kept, one new per pretest item
        again = client.post(f"/api/v1/calibrations/{job_id}/publish", headers=csrf)
        assert again.status_code == 409

        # the same log uploaded as a CSV (form upload); a bad file is refused naming the line
        form_csrf = _csrf(client)
        rows = site.sql("SELECT c.public_id, i.external_id, r.score FROM responses r JOIN "
                        "test_sessions s ON s.id = r.session_id JOIN candidates c ON "
                        "c.id = s.candidate_id JOIN items i ON i.id = r.item_id")
        good = "person_id,item_id,response\n" + "".join(f"{p},{i},{x}\n" for p, i, x in rows)
        bad = "person_id,item_id,response\np1,DB-001,1\np1,NOPE-1,0\n"
        r = client.post("/psychometrician/calibrations", data={
            "csrf_token": form_csrf, "model": "2pl", "mode": "free", "prior_a_sd": "0.5",
            "responses": (io.BytesIO(bad.encode()), "../../etc/log.csv")},
            follow_redirects=True)
        assert b"line 3: unknown item" in r.data
        r = client.post("/psychometrician/calibrations", data={
            "csrf_token": form_csrf, "model": "2pl", "mode": "free", "prior_a_sd": "0.5",
            "responses": (io.BytesIO(good.encode()), "log.csv")})
        assert r.status_code == 302
        upload_job = int(r.headers["Location"].rstrip("/").split("/")[-1])
        consumer = start_embedded_consumer()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = client.get(f"/api/v1/calibrations/{upload_job}").json
                if job["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.3)
        finally:
            consumer.stop(graceful=True)
        assert job["status"] == "succeeded", job["message"]
        assert job["settings"]["source"] == "upload"
        assert job["result"]["link"] is not None  # free mode: linked to the current scale
        assert len(job["result"]["items"]) == len({i for _, i, _ in rows})


def _csrf(client) -> str:
    from tests.web.conftest import csrf_of

    return csrf_of(client.get("/psychometrician/import").data)
