"""Calibration as a background job: queue → embedded worker thread → review → publish.

Pretest items are answered by simulated candidates from known parameters; an anchored
calibration (operational items fixed) must put them back on the operational scale, and publishing
must make the estimates current while keeping the old versions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import select

import irt
import irt.io
from calibration.recalibrate import Recalibration, RecalibrationSettings
from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    Item,
    ItemParameterVersion,
    Response,
)
from tests.web.conftest import WEB_BACKENDS, login, new_site
from web.cli import main as cli_main
from web.commands.recalibrate import table_cells
from web.jobs import start_embedded_consumer
from web.services import calibrations

PRETEST = [f"DB-{k:03d}" for k in range(1, 9)]
TRUE_A = 1.3
TRUE_B = np.linspace(-1.5, 1.5, len(PRETEST))


def simulate_log(url: str, n_candidates: int, rng: np.random.Generator, bank_id: int) -> None:
    """Candidates who each answered 12 operational and 4 pretest databases items and 8 testing
    items, all from one θ (so the two skills' latent correlation is near 1). The operational
    items' current parameters are made non-provisional (they are the anchors); the chosen option
    is recorded (the key for a right answer, another option for a wrong one)."""
    eng = create_db_engine(url)
    with transaction(eng) as db:
        db.query(Item).filter(Item.bank_id == bank_id, Item.external_id.in_(PRETEST)).update(
            {Item.status: "pretest"}, synchronize_session=False)
        db.query(ItemParameterVersion).update({ItemParameterVersion.provisional: False},
                                              synchronize_session=False)
        loaded = repo.load_bank(db, skills=["databases", "testing"], bank_id=bank_id)
        bank = loaded.bank
        operational = [i for i, m in enumerate(loaded.items)
                       if m.status == "operational" and m.skill == "databases"]
        other_skill = [i for i, m in enumerate(loaded.items) if m.skill == "testing"]
        truth = irt.Bank.dichotomous([TRUE_A] * len(PRETEST), TRUE_B, item_ids=PRETEST)
        rows = {it.external_id: it for it in db.scalars(select(Item)
                                                        .where(Item.bank_id == bank_id))}
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
                item = rows[iid]
                wrong = [o["id"] for o in item.options if o["id"] != item.key]
                answer = item.key if x else wrong[int(rng.integers(len(wrong)))]
                db.add(Response(session_id=sess.id, item_id=item.id, position=pos,
                                raw_answer=answer, score=int(x), answered_at=now))
    eng.dispose()


def _run(client, csrf: dict, body: dict) -> dict:
    consumer = start_embedded_consumer()
    try:
        r = client.post("/api/v1/calibrations", json=body, headers=csrf)
        assert r.status_code == 202, r.json
        return _wait(client, r.json["id"])
    finally:
        consumer.stop(graceful=True)


def _wait(client, job_id: int) -> dict:
    deadline = time.monotonic() + 180
    while True:
        job = client.get(f"/api/v1/calibrations/{job_id}").json
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


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
        job = _run(client, csrf, {"mode": "anchored", "model": "2pl"})
        assert job["status"] == "succeeded", job["message"]
        assert job["bank_id"] == site.bank_id()
        demo_org = site.sql("SELECT id FROM organisations WHERE slug = 'demo'")[0][0]
        assert job["result"]["pooled_organisations"] == [demo_org]  # no consent: own only
        result = Recalibration.from_dict(job["result"])
        assert result.settings == RecalibrationSettings()   # the CLI's defaults
        items = {it.item_id: it for it in result.items}
        answered = {it.item_id for it in result.items if it.n_responses}
        assert all(items[i].role == "estimated" for i in PRETEST)
        assert all(it.role == "anchor" for iid, it in items.items()
                   if iid in answered and iid not in PRETEST)
        scales = {s.skill: s for s in result.scales}
        assert scales["databases"].how == "anchors"
        assert "anchored on" in scales["databases"].statement
        est_b = np.array([items[i].new.b for i in PRETEST])
        est_a = np.array([items[i].new.a for i in PRETEST])
        assert np.sqrt(np.mean((est_b - TRUE_B) ** 2)) < 0.3
        assert abs(np.mean(est_a) - TRUE_A) < 0.35
        assert all(items[i].fit.method == "rest-theta" for i in PRETEST)  # sparse data
        assert sum(items[i].fit.flagged for i in PRETEST) <= 2  # generated by the model
        # the recorded options feed the item analysis: keys correlate positively
        assert all(items[i].analysis.key_point_biserial > 0.1 for i in PRETEST)
        assert not any(it.analysis.possibly_miskeyed for it in items.values() if it.analysis)
        corr = result.correlations
        assert sorted(corr.skills) == ["databases", "testing"]
        assert corr.matrix[0, 1] > 0.8  # one ability drove both skills
        # every recommendation follows the default rules
        rules = result.settings.rules
        for it in result.items:
            if it.action == "publish":
                assert it.n_responses >= rules.min_responses and it.se_b <= rules.max_se_b
                assert it.current_se_b is None or it.current_se_b >= it.se_b

        # the review page: publish controls first, the long table after, items pre-selected
        page = client.get(f"/psychometrician/calibrations/{job_id_of(job)}")
        html = page.data.decode()
        assert page.status_code == 200
        assert html.index('id="publish-panel"') < html.index('id="items-table"')
        for it in result.items:
            box = f'name="item" value="{it.item_id}"'
            if it.role == "estimated":
                tag = html[html.index(box) - 80: html.index(box) + 120]
                assert ("checked" in tag) == (it.action == "publish"), it.item_id
            else:
                assert box not in html
        # changed rules re-select (no minimum count, no SE comparison: every pretest item)
        loose = client.get(f"/psychometrician/calibrations/{job_id_of(job)}?rules=1&"
                           f"min_responses=1&max_se_b=5&hold_misfit=on").data.decode()
        for i in PRETEST:
            box = loose.index(f'name="item" value="{i}"')
            assert "checked" in loose[box: box + 120] or items[i].fit.flagged

        form = {"csrf_token": _csrf(client), "item": PRETEST[:3], "min_responses": "1",
                "max_se_b": "5", "threshold": "0.1"}
        url = f"/psychometrician/calibrations/{job_id_of(job)}"
        before = _versions(site)
        # the impact preview counts completed candidates whose scores would move
        r = client.post(f"{url}/preview", data=form)
        assert r.status_code == 200 and b'id="impact"' in r.data
        assert b"completed candidates' skill scores would move" in r.data
        # no confirmation, or no reason: nothing is published
        r = client.post(f"{url}/publish", data={**form, "reason": "new pretest estimates"})
        assert r.status_code == 422 and b"confirmation" in r.data
        r = client.post(f"{url}/publish", data={**form, "confirm": "yes"})
        assert r.status_code == 422 and b"reason" in r.data
        # an anchor cannot be published from this job
        anchor = next(iid for iid, it in items.items() if it.role == "anchor")
        r = client.post(f"{url}/publish", data={**form, "item": [anchor], "confirm": "yes",
                                                 "reason": "x"})
        assert r.status_code == 422 and anchor.encode() in r.data
        assert _versions(site) == before
        r = client.post(f"{url}/publish", data={**form, "confirm": "yes",
                                                 "reason": "new pretest estimates"})
        assert r.status_code == 302, r.data
        current = dict(site.sql(
            "SELECT i.external_id, v.b FROM item_parameter_versions v JOIN items i "
            "ON i.id = v.item_id WHERE v.is_current AND i.bank_id = :b", b=site.bank_id()))
        np.testing.assert_allclose([current[i] for i in PRETEST[:3]], est_b[:3])
        old = dict((iid, b) for _, iid, b, cur, _ in before if cur)
        assert all(current[i] == old[i] for i in PRETEST[3:])  # not selected: unchanged
        after = site.sql("SELECT count(*) FROM item_parameter_versions")[0][0]
        assert after == len(before) + 3  # old versions kept, one new per published item
        (run_id, who, notes, settings), = site.sql(
            "SELECT r.id, u.email, r.notes, r.settings FROM calibration_runs r JOIN "
            "staff_users u ON u.id = r.published_by_id WHERE r.id = (SELECT MAX(id) FROM "
            "calibration_runs)")
        assert who == cred.email and "new pretest estimates" in notes
        assert "min_responses" in str(settings) and PRETEST[0] in str(settings)
        again = client.post(f"/api/v1/calibrations/{job_id_of(job)}/publish", headers=csrf)
        assert again.status_code == 409

        # rollback in one step: the previous versions are current again, as a new run
        page = client.get("/psychometrician/calibrations").data.decode()
        assert f"Roll back run {run_id}" in page and cred.email in page
        r = client.post(f"/psychometrician/runs/{run_id}/rollback",
                        data={"csrf_token": _csrf(client), "reason": "published too early"})
        assert r.status_code == 302
        rolled = dict(site.sql(
            "SELECT i.external_id, v.b FROM item_parameter_versions v JOIN items i "
            "ON i.id = v.item_id WHERE v.is_current"))
        assert rolled == {iid: old[iid] for iid in rolled}
        assert site.sql("SELECT method, notes FROM calibration_runs ORDER BY id DESC LIMIT 1")[0] \
            == ("rollback", f"rollback of calibration run {run_id}: published too early")
        r = client.post(f"/psychometrician/runs/{run_id}/rollback",
                        data={"csrf_token": _csrf(client), "reason": "twice"},
                        follow_redirects=True)
        assert b"no current parameters left" in r.data

        # the item page shows the item analysis with every option's point-biserial
        page = client.get(f"/psychometrician/items/{PRETEST[0]}").data.decode()
        assert 'id="distractors"' in page and "Proportion correct" in page

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
        # the shipped items are 3PL: the form offers that model, and free mode needs it
        assert b'<option value="3pl" selected>' in client.get("/psychometrician/calibrations").data
        r = client.post("/psychometrician/calibrations", data={
            "csrf_token": form_csrf, "model": "3pl", "mode": "free", "prior_a_sd": "0.5",
            "responses": (io.BytesIO(good.encode()), "log.csv")})
        assert r.status_code == 302
        upload_job = int(r.headers["Location"].rstrip("/").split("/")[-1])
        consumer = start_embedded_consumer()
        try:
            job = _wait(client, upload_job)
        finally:
            consumer.stop(graceful=True)
        assert job["status"] == "succeeded", job["message"]
        assert job["settings"]["source"] == "upload"
        free = Recalibration.from_dict(job["result"])
        assert {s.how for s in free.scales} == {"linked"}  # free mode: linked per skill
        assert all(it.role == "estimated" for it in free.items if it.n_responses)
        # drift against the (re-published) current parameters: SE, z and a verdict per item
        tested = [it for it in free.items if it.drift and it.drift.z_b is not None]
        assert len(tested) >= 20
        assert sum(bool(it.drift.flagged) for it in tested) <= 0.05 * len(tested) + 1


def job_id_of(job: dict) -> int:
    return int(job["id"])


def _versions(site) -> list[tuple]:
    return site.sql("SELECT v.id, i.external_id, v.b, v.is_current, v.calibration_run_id FROM "
                    "item_parameter_versions v JOIN items i ON i.id = v.item_id ORDER BY v.id")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_cli_and_the_web_job_give_the_same_table(backend, tmp_path, monkeypatch):
    """`proficio recalibrate` on the exported log and bank = the web job on the database."""
    rng = np.random.default_rng(8)
    with new_site(backend, tmp_path) as site:
        simulate_log(site.url, 300, rng)
        app = site.app()
        client = app.test_client()
        cred = site.info.credentials("psychometrician")
        login(client, cred.email, cred.password)
        job = _run(client, {"X-CSRFToken": _csrf(client)}, {})
        assert job["status"] == "succeeded", job["message"]
        web = Recalibration.from_dict(job["result"])
        # the same inputs as files: the log with the chosen options, the current parameters
        # with their SEs and statuses, the bank's content for the keys
        eng = create_db_engine(site.url)
        with transaction(eng) as db:
            export = repo.export_responses(db)
            current = calibrations.current_parameters(db)
            from web.services.calibrations import _chosen_options
            chosen = _chosen_options(db, export)
        eng.dispose()
        log_csv, items_csv, table = (tmp_path / "log.csv", tmp_path / "items.csv",
                                     tmp_path / "table.csv")
        with open(log_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["person_id", "item_id", "response", "option"])
            d = export.data
            for r in range(d.n_responses):
                w.writerow([export.person_ids[d.person[r]], export.item_ids[d.item[r]],
                            int(d.response[r]), chosen[r]])
        irt.io.write_items_csv(items_csv, current.bank, {
            "se_a": [repr(float(x)) for x in current.se.a],
            "se_b": [repr(float(x)) for x in current.se.b],
            "n_responses": ["" if n < 0 else str(n) for n in current.n_responses],
            "status": list(current.status),
            "provisional": ["true" if p else "false" for p in current.provisional]})
        monkeypatch.setenv("DATABASE_URL", site.url)
        assert cli_main(["bank", "export", "--out", str(tmp_path / "bank.json")]) == 0
        assert cli_main(["recalibrate", str(log_csv), "--current", str(items_csv),
                         "--content", str(tmp_path / "bank.json"), "--table", str(table),
                         "--out", str(tmp_path / "new.csv")]) == 0
        with open(table) as f:
            cli_rows = list(csv.reader(f))
        assert cli_rows[0] == list(Recalibration.COLUMNS)
        assert cli_rows[1:] == [table_cells(r) for r in web.to_rows()]
        # the next command takes this one's output (anchors carried with their role)
        assert cli_main(["fit", str(log_csv), "--items", str(tmp_path / "new.csv")]) == 0


def _csrf(client) -> str:
    from tests.web.conftest import csrf_of

    return csrf_of(client.get("/psychometrician/import").data)
