"""Creating and editing an assessment on the web: the form (defaults of the default design), its
feasibility check (a background job running the command line's `design_assessment`), saving the
design with its figures (the welcome page then states the measured length range), editing (tests
already started keep their design), bad input (errors naming the field), and organisation
scoping."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.forensics_models import DEFAULT_RETAKE_WINDOW_DAYS, SECURITY_DEFAULTS
from item_bank.models import Assessment
from tests.web.conftest import Site, csrf_of
from tests.web.test_candidate_flow import pending
from web.cli import main
from web.jobs import start_embedded_consumer
from web.services.feasibility import DEFAULT_MAX_EXPOSURE, Feasibility

CHECK_URL = re.compile(r"/recruiter/assessments/checks/(\d+)$")
SKILLS = ["databases", "security", "testing"]


@pytest.fixture
def worker() -> Iterator[None]:
    consumer = start_embedded_consumer()
    try:
        yield
    finally:
        consumer.stop(graceful=True)


def _json(value: object) -> dict:
    return value if isinstance(value, dict) else json.loads(str(value))


def design(name: str, slug: str, bank_id: int, **over: object) -> dict:
    data: dict[str, object] = {
        "name": name, "slug": slug, "bank": str(bank_id), "skills": SKILLS,
        "weight_databases": "2", "weight_security": "1", "weight_testing": "1",
        "overall_se": "0.5", "max_items": "18", "min_per_skill": "2",
        "exposure_control": "1", "max_exposure": "0.3", "time_limit_minutes": "25",
        "language": "", "retake_window_days": str(DEFAULT_RETAKE_WINDOW_DAYS)}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def submit(client: FlaskClient, url: str, data: dict) -> tuple[int, str]:
    page = client.get(url)
    assert page.status_code == 200, page.data[:300]
    r = client.post(url, data={"csrf_token": csrf_of(page.data), **data})
    return r.status_code, r.headers.get("Location", "") if r.status_code == 302 \
        else r.get_data(as_text=True)


def checked(client: FlaskClient, url: str, data: dict) -> int:
    """Submit the form, wait for its check to end, return the check id."""
    status, where = submit(client, url, data)
    assert status == 302, where[:2000]
    check_id = int(CHECK_URL.search(where).group(1))
    deadline = time.monotonic() + 120
    while True:
        state = client.get(f"/recruiter/assessments/checks/{check_id}.json").json
        if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state["status"] == "succeeded", state
    return check_id


def save(client: FlaskClient, check_id: int) -> None:
    page = client.get(f"/recruiter/assessments/checks/{check_id}")
    r = client.post(f"/recruiter/assessments/checks/{check_id}/save",
                    data={"csrf_token": csrf_of(page.data)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/recruiter/assessments")


def stored(site: Site, slug: str) -> tuple[int, dict, dict, int | None]:
    aid, bp, feas, limit = site.sql("SELECT id, blueprint, feasibility, time_limit_minutes "
                                    "FROM assessments WHERE slug = :s", s=slug)[0]
    return aid, _json(bp), _json(feas), limit


def invite(site: Site, assessment_id: int) -> str:
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            (issued,) = repo.create_invitations(db, db.get(Assessment, assessment_id), 1)
            return issued.token
    finally:
        eng.dispose()


def length_line(f: Feasibility) -> str:
    low, high = round(f.length_p10), round(f.length_p90)
    if f.share_early >= 0.1 and low < f.max_items:
        return f"Usually {low} to {high} questions, at most {f.max_items}"
    return f"At most {f.max_items} questions"


def test_the_form_starts_from_the_default_design(staff_client: Callable[[str], FlaskClient]):
    c = staff_client("recruiter")
    listing = c.get("/recruiter/assessments").get_data(as_text=True)
    assert "New assessment" in listing and "Edit<span" in listing
    page = c.get("/recruiter/assessments/new").get_data(as_text=True)
    assert 'name="overall_se" value="0.29"' in page and 'name="max_items" value="40"' in page
    assert 'name="min_per_skill" value="2"' in page
    assert f'name="max_exposure" value="{DEFAULT_MAX_EXPOSURE:g}"' in page
    assert re.search(r'id="exposure_control"[^>]*checked', page)
    assert len(re.findall(r'name="skills" value="[a-z_]+" checked', page)) == 8
    assert "Check feasibility" in page


def test_create_check_save_then_the_welcome_page_states_the_measured_range(
        site: Site, staff_client, worker, client: FlaskClient):
    c = staff_client("recruiter")
    check_id = checked(c, "/recruiter/assessments/new",
                       design("Data and security", "data-security", site.bank_id()))
    page = c.get(f"/recruiter/assessments/checks/{check_id}").get_data(as_text=True)
    for figure in ("Length: shortest", "stopping before the maximum", "Overall score: mean SE",
                   "90 % interval coverage", "Databases and SQL: mean SE", "Most-used question",
                   "Mean overlap", "Most common first question", "Create the assessment"):
        assert figure in page, figure
    assert not site.sql("SELECT id FROM assessments WHERE slug = 'data-security'")
    save(c, check_id)
    aid, bp, feas, limit = stored(site, "data-security")
    result = _json(site.sql("SELECT result FROM feasibility_checks WHERE id = :i",
                            i=check_id)[0][0])
    assert feas == result and limit == 25
    assert bp["max_items"] == 18 and [s["skill"] for s in bp["skills"]] == SKILLS
    rule = bp["stopping"][0]
    assert rule["name"] == "composite" and rule["se_target"] == 0.5
    # the overall score is the weighted mean: the rule stops on the SE of exactly that
    assert rule["weights"] == {"databases": 0.5, "security": 0.25, "testing": 0.25}
    assert bp["exposure"]["name"] == "sympson_hetter"
    f = Feasibility.from_dict(feas)
    assert f.max_items == 18 and set(f.skill_se) == set(SKILLS)
    welcome = client.get(f"/t/{invite(site, aid)}").get_data(as_text=True)
    assert f.share_early >= 0.1 and length_line(f).startswith("Usually")
    assert length_line(f) in welcome and "may be shorter" not in welcome
    assert site.sql("SELECT action, target FROM audit_events WHERE action = "
                    "'assessment.created' ORDER BY id DESC LIMIT 1") == \
        [("assessment.created", "data-security")]
    # saved once: the check cannot create it twice
    again = c.post(f"/recruiter/assessments/checks/{check_id}/save",
                   data={"csrf_token": csrf_of(page.encode())}, follow_redirects=True)
    assert "saved already" in again.get_data(as_text=True)
    assert len(site.sql("SELECT id FROM assessments WHERE slug = 'data-security'")) == 1


def test_editing_changes_the_tests_that_start_afterwards_only(
        site: Site, staff_client, worker, client: FlaskClient):
    c = staff_client("recruiter")
    save(c, checked(c, "/recruiter/assessments/new",
                    design("Editable", "editable", site.bank_id(), exposure_control=None)))
    aid, before, _, _ = stored(site, "editable")
    running = invite(site, aid)
    page = client.get(f"/t/{running}")
    assert client.post(f"/t/{running}/start",
                       data={"csrf_token": csrf_of(page.data)}).status_code == 302
    edit = c.get(f"/recruiter/assessments/{aid}/edit").get_data(as_text=True)
    assert 'name="max_items" value="18"' in edit and 'name="weight_databases" value="2"' in edit
    assert "1 test in progress keeps the design it started with" in edit
    check_id = checked(c, f"/recruiter/assessments/{aid}/edit",
                       design("Editable, longer", "ignored", 0, max_items="30",
                              min_per_skill="3", exposure_control=None))
    save(c, check_id)
    _, after, feas, _ = stored(site, "editable")
    assert after["max_items"] == 30 and site.sql(
        "SELECT name, slug FROM assessments WHERE id = :i", i=aid) == [("Editable, longer",
                                                                        "editable")]
    # the running test keeps its design: its own copy, and the page still says "at most 18"
    (kept,) = site.sql("SELECT blueprint FROM test_sessions s JOIN invitations v ON "
                       "v.id = s.invitation_id WHERE v.assessment_id = :a", a=aid)[0]
    assert _json(kept) == before
    _, _, question = pending(client, running)
    assert b"of at most 18" in question
    welcome = client.get(f"/t/{invite(site, aid)}").get_data(as_text=True)
    assert length_line(Feasibility.from_dict(feas)) in welcome and "at most 30" in welcome
    assert "at most 18" not in welcome


def test_an_unreachable_target_is_shown_with_the_reachable_value(site: Site, staff_client,
                                                                  worker):
    c = staff_client("recruiter")
    check_id = checked(c, "/recruiter/assessments/new",
                       design("Too precise", "too-precise", site.bank_id(), overall_se="0.1",
                              exposure_control=None))
    page = c.get(f"/recruiter/assessments/checks/{check_id}").get_data(as_text=True)
    assert re.search(r"the overall SE target 0\.10 is reached by 0% .* the bank reaches about "
                     r"0\.\d\d \(median\)", page), page
    assert 'role="alert" id="warnings"' in page


BAD = [
    ({"weight_security": "-1"}, "weight_security", "0 or more"),
    ({"overall_se": "0"}, "overall_se", "above 0"),
    ({"overall_se": "abc"}, "overall_se", "expected a number"),
    ({"max_items": "5"}, "max_items", "less than the per-skill minimums"),
    ({"max_items": "500"}, "max_items", "between 1 and 100"),
    ({"skills": ["databases", "quantum"]}, "skills", "unknown skill 'quantum'"),
    ({"skills": []}, "skills", "at least one skill"),
    ({"weight_databases": "0", "weight_security": "0", "weight_testing": "0"}, "weights",
     "above 0"),
    ({"max_exposure": "1.5"}, "max_exposure", "at most 1"),
    ({"time_limit_minutes": "0"}, "time_limit_minutes", "between 1"),
    ({"language": "fr"}, "language", "one of en, de"),
    ({"slug": "Not A Slug"}, "slug", "lower-case"),
    ({"name": ""}, "name", "required"),
    ({"bank": "999999"}, "bank", "listed banks"),
    ({"retake_window_days": "-1"}, "retake_window_days",
     "must be a whole number of days from 0 to 3650, got -1"),
    ({"retake_window_days": "3651"}, "retake_window_days", "from 0 to 3650, got 3651"),
    ({"retake_window_days": "99999999999999999999999"}, "retake_window_days",
     "from 0 to 3650, got '999999"),
    ({"retake_window_days": "two weeks"}, "retake_window_days",
     "from 0 to 3650, got 'two weeks'"),
    ({"retake_window_days": "1.5"}, "retake_window_days", "from 0 to 3650, got '1.5'"),
    ({"retake_window_days": ""}, "retake_window_days", "from 0 to 3650, got ''"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD, ids=[b[1] for b in BAD])
def test_bad_input_gets_errors_naming_the_field(site: Site, staff_client, change, field,
                                                message):
    c = staff_client("recruiter")
    before = site.sql("SELECT count(*) FROM feasibility_checks")
    status, page = submit(c, "/recruiter/assessments/new",
                          {**design("Bad", "bad", site.bank_id()), **change})
    assert status == 422, page[:500]
    wanted = re.escape(message).replace("'", "(?:'|&#39;)")
    assert re.search(f"field '{field}': [^<]*{wanted}", page), page
    assert f'id="err-{field}"' in page or field in ("weights", "bank")
    assert site.sql("SELECT count(*) FROM feasibility_checks") == before


def test_another_organisations_private_bank_is_not_offered_nor_accepted(site: Site,
                                                                       staff_client):
    c = staff_client("recruiter")
    other_bank = site.bank_id("other")
    page = c.get("/recruiter/assessments/new").get_data(as_text=True)
    assert f'<option value="{other_bank}"' not in page
    assert f'name="bank" value="{other_bank}"' not in page
    assert c.get(f"/recruiter/assessments/new?bank={other_bank}").status_code == 404
    status, body = submit(c, "/recruiter/assessments/new",
                          design("Theirs", "theirs", other_bank))
    assert status == 422 and "field 'bank'" in body


def test_assessments_and_checks_are_scoped_to_the_organisation(site: Site, staff_client,
                                                               worker):
    demo = staff_client("recruiter")
    check_id = checked(demo, "/recruiter/assessments/new",
                       design("Scoped", "scoped", site.bank_id(), exposure_control=None))
    (demo_aid,) = site.sql("SELECT a.id FROM assessments a JOIN organisations o ON "
                           "o.id = a.organisation_id WHERE o.slug = 'demo' ORDER BY a.id")[0]
    other = staff_client("other")
    assert "Scoped" not in other.get("/recruiter/assessments").get_data(as_text=True)
    token = csrf_of(other.get("/recruiter/assessments/new").data)
    for url in (f"/recruiter/assessments/{demo_aid}/edit",
                f"/recruiter/assessments/checks/{check_id}",
                f"/recruiter/assessments/checks/{check_id}.json",
                f"/recruiter/assessments/new?check={check_id}"):
        assert other.get(url).status_code == 404, url
    assert other.post(f"/recruiter/assessments/checks/{check_id}/save",
                      data={"csrf_token": token}).status_code == 404
    assert other.post(f"/recruiter/assessments/{demo_aid}/edit",
                      data={"csrf_token": token, **design("X", "x", 0)}).status_code == 404
    assert not site.sql("SELECT id FROM assessments WHERE slug = 'scoped'")
    # the psychometrician does not manage assessments
    assert staff_client("psychometrician").get("/recruiter/assessments").status_code == 403
    # without the CSRF token nothing is queued
    before = site.sql("SELECT count(*) FROM feasibility_checks")
    assert demo.post("/recruiter/assessments/new",
                     data=design("No token", "no-token", site.bank_id())).status_code == 400
    assert site.sql("SELECT count(*) FROM feasibility_checks") == before


def test_the_command_line_and_the_web_form_give_the_same_design_and_figures(
        site: Site, staff_client, worker, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", site.url)
    assert main(["assessment", "create", "--org", "demo", "--slug", "cli-made",
                 "--name", "Made on the command line", "--bank", _bank_slug(site),
                 "--skills", ",".join(SKILLS),
                 "--weight", "databases=2", "--overall-se", "0.5", "--max-items", "18",
                 "--min-per-skill", "2", "--max-exposure", "0.3", "--time-limit", "25"]) == 0
    _, cli_bp, cli_feas, _ = stored(site, "cli-made")
    c = staff_client("recruiter")
    check_id = checked(c, "/recruiter/assessments/new",
                       design("Made on the web", "web-made", site.bank_id()))
    web_bp, web_feas = (_json(v) for v in site.sql(
        "SELECT blueprint, result FROM feasibility_checks WHERE id = :i", i=check_id)[0])
    assert web_bp == cli_bp
    assert web_feas == cli_feas


def _bank_slug(site: Site) -> str:
    return site.sql("SELECT slug FROM item_banks WHERE id = :i", i=site.bank_id())[0][0]


def test_the_command_line_names_the_wrong_option(site: Site, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", site.url)
    code = main(["assessment", "create", "--org", "demo", "--slug", "cli-bad", "--name", "Bad",
                 "--bank", _bank_slug(site), "--max-items", "3", "--no-check"])
    err = capsys.readouterr().err
    assert code != 0 and "--max-items: the maximum length 3 is less than the per-skill " \
                         "minimums" in err
    assert not site.sql("SELECT id FROM assessments WHERE slug = 'cli-bad'")


def test_an_assessment_made_on_the_command_line_is_edited_from_its_blueprint(site: Site,
                                                                             staff_client):
    (aid,) = site.sql("SELECT id FROM assessments ORDER BY id LIMIT 1")[0]  # the demo's
    page = staff_client("recruiter").get(f"/recruiter/assessments/{aid}/edit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="overall_se" value="0.29"' in html and 'name="max_items" value="40"' in html
    assert re.search(r'id="exposure_control"[^>]*checked', html)
    assert len(re.findall(r'name="skills" value="[a-z_]+" checked', html)) == 8
    assert 'name="slug"' not in html and 'name="bank"' not in html  # fixed at creation


def test_checks_waiting_per_organisation_are_capped(site: Site, staff_client):
    from web.services.assessment_designs import MAX_PENDING_CHECKS

    (org,) = site.sql("SELECT id FROM organisations WHERE slug = 'demo'")[0]
    made = [site.sql("INSERT INTO feasibility_checks (organisation_id, bank_id, created_at, "
                     "status, form) VALUES (:o, :b, CURRENT_TIMESTAMP, 'queued', '{}') "
                     "RETURNING id", o=org, b=site.bank_id())[0][0]
            for _ in range(MAX_PENDING_CHECKS)]
    try:
        status, page = submit(staff_client("recruiter"), "/recruiter/assessments/new",
                              design("One too many", "one-too-many", site.bank_id()))
        assert status == 422 and f"{MAX_PENDING_CHECKS} checks of your organisation are " \
                                 "still running" in page
    finally:
        for check_id in made:
            site.sql("DELETE FROM feasibility_checks WHERE id = :i", i=check_id)


def test_stale_checks_are_failed_and_old_ones_deleted_by_the_maintenance(site: Site,
                                                                          staff_client):
    """A check whose worker died would count against the cap for ever; outcomes nobody saved,
    and saved designs a later save replaced, would pile up. The latest save stays."""
    import datetime as dt

    from web.services.assessment_designs import (
        KEEP_UNSAVED_CHECK,
        MAX_PENDING_CHECKS,
        STALE_CHECK,
        clean_up_checks,
    )

    (org,) = site.sql("SELECT id FROM organisations WHERE slug = 'demo'")[0]
    aid = site.sql("SELECT id FROM assessments WHERE organisation_id = :o ORDER BY id",
                   o=org)[0][0]
    now = dt.datetime.now(dt.UTC)
    old = now - KEEP_UNSAVED_CHECK - dt.timedelta(hours=1)
    recent = now - dt.timedelta(minutes=1)

    def made(status: str, at: dt.datetime, assessment: int | None = None) -> int:
        return int(site.sql(
            "INSERT INTO feasibility_checks (organisation_id, bank_id, assessment_id, created_at, "
            "finished_at, status, form) VALUES (:o, :b, :a, :t, :f, :s, '{}') RETURNING id",
            o=org, b=site.bank_id(), a=assessment, t=at,
            f=None if status in ("queued", "running") else at, s=status)[0][0])

    stale = [made("running", now - STALE_CHECK - dt.timedelta(minutes=1))
             for _ in range(MAX_PENDING_CHECKS)]
    kept = {made("queued", recent): "queued", made("succeeded", recent): "succeeded",
            made("failed", recent): "failed"}
    gone = [made("succeeded", old), made("failed", old), made("saved", old, aid)]
    kept[made("saved", old, aid)] = "saved"  # the latest save of the assessment, however old
    ours = stale + list(kept) + gone
    engine = create_db_engine(site.url)
    try:
        result = clean_up_checks(engine)
        # (the shared test site may hold other tests' old checks too: counts are at least ours)
        assert result.failed >= MAX_PENDING_CHECKS and result.deleted >= len(gone)
        rows = {i: site.sql("SELECT status FROM feasibility_checks WHERE id = :i", i=i)[0][0]
                for i in ours if site.sql("SELECT 1 FROM feasibility_checks WHERE id = :i", i=i)}
        assert rows == {**{i: "failed" for i in stale}, **kept}
        assert clean_up_checks(engine) == type(result)(0, 0)  # idempotent
        # the cap counts live checks only: a new check is accepted again
        status, page = submit(staff_client("recruiter"), "/recruiter/assessments/new",
                              design("After the clean-up", "after-clean-up", site.bank_id()))
        assert status == 302 and CHECK_URL.search(page), page
        ours.append(int(CHECK_URL.search(page).group(1)))
    finally:
        engine.dispose()
        for check_id in ours:
            site.sql("DELETE FROM feasibility_checks WHERE id = :i", i=check_id)


# -- test security: effort-moderated scoring and the retake window (issue 17) -----------------


def security_of(site: Site, slug: str) -> dict:
    return _json(site.sql("SELECT security FROM assessments WHERE slug = :s", s=slug)[0][0])


def id_of(site: Site, slug: str) -> int:
    return site.sql("SELECT id FROM assessments WHERE slug = :s", s=slug)[0][0]


def security_fields(page: str) -> tuple[bool, str]:
    """Whether the effort-moderation box is ticked, and the retake window's value."""
    box = re.search(r'<input id="effort_moderated"[^>]*>', page)
    days = re.search(r'<input id="retake_window_days"[^>]*value="([^"]*)"', page)
    assert box and days, page
    return "checked" in box.group(0), days.group(1)


def listing_row(c: FlaskClient, name: str) -> str:
    page = c.get("/recruiter/assessments").get_data(as_text=True)
    row = next(r for r in page.split("<tr>") if f"<td>{name}<br>" in r)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))


def start(client: FlaskClient, token: str) -> None:
    page = client.get(f"/t/{token}")
    assert client.post(f"/t/{token}/start",
                       data={"csrf_token": csrf_of(page.data)}).status_code == 302


def session_security(site: Site, token_aid: int) -> list[dict]:
    return [_json(v) for (v,) in site.sql(
        "SELECT s.security FROM test_sessions s JOIN invitations v ON v.id = s.invitation_id "
        "WHERE v.assessment_id = :a ORDER BY s.id", a=token_aid)]


def test_the_form_offers_test_security_with_the_defaults_of_the_command_line(staff_client):
    page = staff_client("recruiter").get("/recruiter/assessments/new").get_data(as_text=True)
    assert "<legend>Test security</legend>" in page
    assert "Leave rapid guesses out of the score (effort-moderated scoring)" in page
    assert "Retake window (days; 0 = off)" in page
    assert security_fields(page) == (SECURITY_DEFAULTS["effort_moderated"],
                                     str(SECURITY_DEFAULTS["retake_window_days"]))
    assert "report states how many answers were left out" in page
    assert "0 switches this off" in page


def test_security_settings_are_checked_saved_shown_and_changed_for_later_tests_only(
        site: Site, staff_client, worker, client: FlaskClient, monkeypatch):
    c = staff_client("recruiter")
    check_id = checked(c, "/recruiter/assessments/new",
                       design("Guarded", "guarded", site.bank_id(), exposure_control=None,
                              effort_moderated="1", retake_window_days="30"))
    page = c.get(f"/recruiter/assessments/checks/{check_id}").get_data(as_text=True)
    assert "effort-moderated scoring, retake window 30 days" in page
    assert not site.sql("SELECT id FROM assessments WHERE slug = 'guarded'")
    save(c, check_id)
    first = {"effort_moderated": True, "retake_window_days": 30}
    assert security_of(site, "guarded") == first
    (detail,) = site.sql("SELECT detail FROM audit_events WHERE action = 'assessment.created' "
                         "AND target = 'guarded'")[0]
    assert _json(detail)["security"] == first
    row = listing_row(c, "Guarded")
    assert "effort-moderated" in row and "retake window 30 days" in row
    aid = stored(site, "guarded")[0]
    assert security_fields(c.get(f"/recruiter/assessments/{aid}/edit").get_data(
        as_text=True)) == (True, "30")
    # a test in progress while the settings change keeps those it started with
    running = invite(site, aid)
    start(client, running)
    save(c, checked(c, f"/recruiter/assessments/{aid}/edit",
                    design("Guarded", "ignored", 0, exposure_control=None,
                           retake_window_days="0")))
    second = {"effort_moderated": False, "retake_window_days": 0}
    assert security_of(site, "guarded") == second
    (detail,) = site.sql("SELECT detail FROM audit_events WHERE action = 'assessment.updated' "
                         "AND target = 'guarded' ORDER BY id DESC LIMIT 1")[0]
    assert _json(detail)["security"] == second and _json(detail)["security_before"] == first
    row = listing_row(c, "Guarded")
    assert "every answer scored" in row and "no retake window" in row
    assert "effort-moderated" not in row
    start(client, invite(site, aid))
    assert session_security(site, aid) == [first, second]
    assert security_fields(c.get(f"/recruiter/assessments/{aid}/edit").get_data(
        as_text=True)) == (False, "0")
    # changed on the command line since: the edit form shows the assessment's own settings
    monkeypatch.setenv("DATABASE_URL", site.url)
    assert main(["assessment", "security", "--org", "demo", "guarded",
                 "--effort-moderated", "on"]) == 0
    assert security_fields(c.get(f"/recruiter/assessments/{aid}/edit").get_data(
        as_text=True)) == (True, "0")
    (detail,) = site.sql("SELECT detail FROM audit_events WHERE action = 'assessment.updated' "
                         "AND target = 'guarded' ORDER BY id DESC LIMIT 1")[0]
    assert _json(detail)["security"] == {"effort_moderated": True, "retake_window_days": 0}


@pytest.mark.parametrize("days", ["-7", "5000", "soon"])
def test_a_bad_retake_window_on_edit_is_named_and_nothing_changes(site: Site, staff_client,
                                                                 monkeypatch, days):
    monkeypatch.setenv("DATABASE_URL", site.url)
    slug = "edit-bad-window-" + re.sub("[^a-z0-9]", "x", days)
    assert main(["assessment", "create", "--org", "demo", "--slug", slug, "--name", slug,
                 "--bank", _bank_slug(site), "--no-check", "--retake-window-days", "90"]) == 0
    aid = id_of(site, slug)
    before = site.sql("SELECT count(*) FROM feasibility_checks")
    status, page = submit(staff_client("recruiter"), f"/recruiter/assessments/{aid}/edit",
                          design(slug, slug, 0, retake_window_days=days,
                                 effort_moderated="1"))
    assert status == 422
    assert "field 'retake_window_days': must be a whole number of days from 0 to 3650" in page
    assert 'id="err-retake_window_days"' in page
    assert site.sql("SELECT count(*) FROM feasibility_checks") == before
    assert security_of(site, slug) == {"effort_moderated": False, "retake_window_days": 90}


def test_settings_made_on_the_command_line_are_shown_on_the_edit_form(site: Site, staff_client,
                                                                      monkeypatch):
    monkeypatch.setenv("DATABASE_URL", site.url)
    assert main(["assessment", "create", "--org", "demo", "--slug", "cli-guarded", "--name",
                 "CLI guarded", "--bank", _bank_slug(site), "--no-check", "--effort-moderated",
                 "--retake-window-days", "45"]) == 0
    c = staff_client("recruiter")
    aid = id_of(site, "cli-guarded")
    assert security_fields(c.get(f"/recruiter/assessments/{aid}/edit").get_data(
        as_text=True)) == (True, "45")
    row = listing_row(c, "CLI guarded")
    assert "effort-moderated" in row and "retake window 45 days" in row


@pytest.mark.parametrize(("options", "fields"), [
    ([], {}),
    (["--effort-moderated", "--retake-window-days", "0"],
     {"effort_moderated": "1", "retake_window_days": "0"}),
    (["--retake-window-days", "3650"], {"retake_window_days": "3650"}),
], ids=["defaults", "moderated-no-window", "longest-window"])
def test_the_command_line_and_the_web_store_the_same_security_settings(
        site: Site, staff_client, worker, monkeypatch, options, fields):
    monkeypatch.setenv("DATABASE_URL", site.url)
    tag = "-".join(options).replace("--", "")[:20] or "defaults"
    cli_slug, web_slug = f"cli-sec-{tag}", f"web-sec-{tag}"
    assert main(["assessment", "create", "--org", "demo", "--slug", cli_slug, "--name",
                 cli_slug, "--bank", _bank_slug(site), "--no-check", *options]) == 0
    c = staff_client("recruiter")
    save(c, checked(c, "/recruiter/assessments/new",
                    design(web_slug, web_slug, site.bank_id(), exposure_control=None,
                           **fields)))
    assert security_of(site, web_slug) == security_of(site, cli_slug)


def test_the_command_line_and_the_web_refuse_a_bad_window_with_the_same_words(
        site: Site, staff_client, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", site.url)
    code = main(["assessment", "create", "--org", "demo", "--slug", "cli-bad-window",
                 "--name", "Bad window", "--bank", _bank_slug(site), "--no-check",
                 "--retake-window-days", "-3"])
    err = capsys.readouterr().err
    status, page = submit(staff_client("recruiter"), "/recruiter/assessments/new",
                          design("Bad window", "web-bad-window", site.bank_id(),
                                 retake_window_days="-3"))
    words = "must be a whole number of days from 0 to 3650, got -3"
    assert code != 0 and words in err
    assert status == 422 and words in page
    assert not site.sql("SELECT id FROM assessments WHERE slug IN ('cli-bad-window', "
                        "'web-bad-window')")
