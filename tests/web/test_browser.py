"""End to end in a real headless browser (Debian's chromium driven by Playwright).

* A candidate takes a whole adaptive test on a 375 px phone viewport, touch-sized targets and no
  horizontal scrolling on any page; a recruiter signs in and opens the report.
* axe-core (the npm package, installed from tests/package.json by ``make test``) runs on every
  page type — candidate, recruiter, psychometrician, errors — at 1280 px and 375 px and the
  test fails on any violation.
* The accessibility tree (what a screen reader gets): accessible names of the options and
  buttons, the countdown's polite live region and what it announces, and the "time is up" page
  the countdown leads to.

Screenshots of the question page and the report are saved under ``test-artifacts/screenshots/``
(the getting-started guide uses them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine import CatState
from item_bank.security import hash_token
from tests.web.conftest import Site

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
AXE = ROOT / "tests" / "node_modules" / "axe-core" / "axe.min.js"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core from its npm package (tests/package.json, pinned by package-lock.json)."""
    if not AXE.exists() and shutil.which("npm"):
        subprocess.run(["npm", "--prefix", str(AXE.parents[2]), "ci", "--no-audit", "--no-fund",
                        "--silent"], check=True, timeout=300)
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `npm --prefix tests ci` (make test does)")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def server(site: Site) -> Iterator[str]:
    app = site.app(PROFICIO_BASE_URL="http://127.0.0.1")
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(5)
    site.close_apps()


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def axe_violations(page, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every axe-core violation on the page (all rules axe enables by default, which include
    WCAG 2.0/2.1/2.2 A and AA and best practices), one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)  # evaluated by the devtools protocol: the page's CSP still holds
    result = page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] if isinstance(n["target"][0], str) else str(n["target"])
                        for n in v["nodes"][:3])
            for v in json.loads(result)]


def horizontal_overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many CSS px the page is wider than its viewport (0: no horizontal scrolling)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - "
                             "document.documentElement.clientWidth"))


def sign_in(page, server: str, site: Site, role: str) -> None:  # type: ignore[no-untyped-def]
    cred = site.info.credentials(role)
    page.goto(f"{server}/login")
    page.get_by_label("E-mail").fill(cred.email)
    page.get_by_label("Password").fill(cred.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def session_of(site: Site, token: str) -> int:
    return int(site.sql("SELECT s.id FROM test_sessions s JOIN invitations v ON "
                        "v.id = s.invitation_id WHERE v.token_hash = :h",
                        h=hash_token(token))[0][0])


def test_candidate_takes_a_test_on_a_phone_and_recruiter_reads_the_report(
        site: Site, server: str, browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (token,) = site.invite(candidate_names=["Ada Browser"])
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server}/t/{token}")
    assert horizontal_overflow(page) == 0
    page.get_by_role("button", name="Start the assessment").click()
    answered = 0
    while "/question" in page.url:
        assert page.get_by_role("heading", level=1).inner_text().startswith(
            f"Question {answered + 1} of at most")
        assert horizontal_overflow(page) == 0, f"question {answered + 1} scrolls sideways"
        if answered == 2:
            page.screenshot(path=str(ARTIFACTS / "question.png"), full_page=True)
        radios = page.get_by_role("radio")
        assert radios.count() >= 4
        for k in range(radios.count()):  # touch targets: the whole label row is ≥ 44 px high
            label = page.locator(f"label[for='{radios.nth(k).get_attribute('id')}']")
            box = label.bounding_box()
            assert box["height"] >= 44 and box["x"] + box["width"] <= PHONE["width"]
            radio_box = radios.nth(k).bounding_box()
            assert radio_box["width"] >= 24 and radio_box["height"] >= 24
        submit = page.get_by_role("button", name="Submit answer")
        assert submit.bounding_box()["height"] >= 44
        radios.nth(answered % radios.count()).check()
        submit.click()
        answered += 1
        assert answered <= 60
    assert "/done" in page.url and "completed the assessment" in page.content()
    assert horizontal_overflow(page) == 0
    assert answered >= 16  # the design's minimum: 2 questions in each of 8 skills

    staff = browser.new_page()
    sign_in(staff, server, site, "recruiter")
    staff.wait_for_url(f"{server}/recruiter/")
    row = staff.locator("tr", has_text="Ada Browser")
    assert "completed" in row.inner_text()
    row.get_by_role("link", name="Report of Ada Browser").click()
    assert staff.locator("h1").inner_text() == "Report: Ada Browser"
    assert staff.locator("svg.chart").count() == 1
    assert staff.get_by_role("heading", name="Overall score").count() == 1
    assert "90 % interval" in staff.locator("p.overall").inner_text()
    assert staff.locator("tbody tr").count() == 8
    decisions = staff.locator("tbody .badge").all_inner_texts()
    assert len(decisions) == 8 and set(decisions) <= {"pass", "fail", "undecided"}
    staff.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e]


def _code_question(site: Site, token: str) -> str:
    """Make the pending question of ``token``'s session the bank item with the widest code
    block (197-character lines), to check reflow on the worst case."""
    sid = session_of(site, token)
    stems = site.sql("SELECT external_id, stem FROM items WHERE stem LIKE :p", p="%```%")
    widest = max(stems, key=lambda r: max(len(line) for line in r[1].splitlines()))[0]
    raw = site.sql("SELECT engine_state FROM test_sessions WHERE id = :s", s=sid)[0][0]
    state = CatState.from_dict(raw if isinstance(raw, dict) else json.loads(raw))
    data = state.to_dict()
    data["pending"] = widest
    site.sql("UPDATE test_sessions SET engine_state = :e WHERE id = :s",
             e=json.dumps(data), s=sid)
    return widest


def _candidate_pages(site: Site, server: str, browser) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One URL (or state) per candidate page type, prepared through the real flow."""
    page = browser.new_page()
    urls: dict[str, str] = {}
    welcome, breaking, late, withdrawn = site.invite(4, candidate_names=[
        "Welcome Page", "Break Taker", "Late Larry", "Withdrawn Wanda"])
    urls["welcome"] = f"{server}/t/{welcome}"
    urls["invalid link"] = f"{server}/t/this-link-does-not-exist-0123456789"
    # a break granted: question page with the break button, then the break page
    inv = site.sql("SELECT id FROM invitations WHERE token_hash = :h",
                   h=hash_token(breaking))[0][0]
    site.sql("INSERT INTO accommodations (invitation_id, extra_time_percent, break_minutes, "
             "note, granted_at, break_used_seconds) VALUES (:i, 25, 10, '', "
             "CURRENT_TIMESTAMP, 0)", i=inv)
    page.goto(f"{server}/t/{breaking}")
    page.get_by_role("button", name="Start the assessment").click()
    _code_question(site, breaking)
    urls["question (code, break granted)"] = f"{server}/t/{breaking}/question"
    for token in (late, withdrawn):
        page.goto(f"{server}/t/{token}")
        page.get_by_role("button", name="Start the assessment").click()
    site.sql("UPDATE test_sessions SET deadline = :d WHERE id = :s",
             d="2000-01-01 00:00:00", s=session_of(site, late))
    urls["time is up"] = f"{server}/t/{late}/done"
    site.sql("UPDATE invitations SET status = 'revoked' WHERE token_hash = :h",
             h=hash_token(withdrawn))
    site.sql("UPDATE test_sessions SET status = 'abandoned' WHERE id = :s",
             s=session_of(site, withdrawn))
    urls["withdrawn"] = f"{server}/t/{withdrawn}/done"
    urls["break"] = f"{server}/t/{breaking}/question#break"
    page.close()
    return urls


def _finished_check(site: Site) -> int:
    """A succeeded feasibility check of the demo's first assessment (the shipped default design
    and its stored figures, with one warning), as the check job leaves it."""
    from item_bank.shipped import DEFAULT_DESIGN
    from web.services.feasibility import DesignChoices

    stored = json.loads(DEFAULT_DESIGN.read_text())
    aid, org, bank, bp = site.sql("SELECT id, organisation_id, bank_id, blueprint FROM "
                                  "assessments ORDER BY id LIMIT 1")[0]
    skills = [s["skill"] for s in (bp if isinstance(bp, dict) else json.loads(bp))["skills"]]
    form = {"name": "Back-End Engineer", "slug": "x", "bank_id": bank, "time_limit_minutes": 60,
            "language": None, "cut_score": None,
            "choices": DesignChoices(skills=tuple(skills)).to_dict()}
    result = {**stored["feasibility"], "warnings": ["the overall SE target 0.10 is reached by "
                                                    "0% of candidates"]}
    return site.sql("INSERT INTO feasibility_checks (organisation_id, bank_id, assessment_id, "
                    "created_at, status, message, form, blueprint, result) VALUES (:o, :b, :a, "
                    "CURRENT_TIMESTAMP, 'succeeded', 'done', :f, :bp, :r) RETURNING id",
                    o=org, b=bank, a=aid, f=json.dumps(form), bp=json.dumps(stored["blueprint"]),
                    r=json.dumps(result))[0][0]


def test_axe_finds_no_violation_on_any_page_type_at_desktop_and_phone_sizes(
        site: Site, server: str, browser, axe_source: str) -> None:
    candidate = _candidate_pages(site, server, browser)
    breaking_question = candidate.pop("break")
    staff_pages = {
        "login": "/login",
        "candidates": "/recruiter/",
        "invite": "/recruiter/invitations/new",
        "webhooks": "/recruiter/webhooks",
        "compare": "/recruiter/assessments/1/compare",
        "assessments": "/recruiter/assessments",
        "new assessment": "/recruiter/assessments/new",
        "edit assessment": "/recruiter/assessments/1/edit",
        "feasibility check": f"/recruiter/assessments/checks/{_finished_check(site)}",
    }
    failures: list[str] = []
    for viewport in (DESKTOP, PHONE):
        size = f"{viewport['width']} px"
        context = browser.new_context(viewport=viewport)
        page = context.new_page()

        def check(name: str, page=page, size=size) -> None:  # type: ignore[no-untyped-def]
            page.wait_for_load_state()
            failures.extend(f"{name} @ {size}: {v}" for v in axe_violations(page, axe_source))
            if horizontal_overflow(page):
                failures.append(f"{name} @ {size}: {horizontal_overflow(page)} px wider than "
                                f"the viewport")

        for name, url in candidate.items():
            page.goto(url)
            check(name)
        page.goto(breaking_question.split("#")[0])
        page.get_by_role("button", name="Take a break (the clock stops)").click()
        assert "You are on a break" in page.content()
        check("break")
        page.get_by_role("button", name="Continue the assessment").click()

        page.goto(f"{server}/login")
        check("login")
        sign_in(page, server, site, "recruiter")
        for name, path in staff_pages.items():
            if name == "login":
                continue
            page.goto(server + path)
            check(name)
        page.goto(f"{server}/recruiter/invitations/new")
        page.get_by_label("Candidates, one per line").fill("New Person, new@example.test")
        page.get_by_role("button", name="Create invitations").click()
        check("invitations created")
        page.goto(f"{server}/recruiter/")
        page.get_by_role("link", name="Accommodations for Break Taker").click()
        check("accommodations")
        page.goto(f"{server}/recruiter/")
        page.get_by_role("link", name="Revoke the invitation of Break Taker").click()
        check("revoke confirmation")
        page.goto(f"{server}/recruiter/")
        page.get_by_role("link", name="Report of Late Larry").click()
        check("report")
        page.goto(f"{server}/recruiter/no-such-page")
        check("not found")

        context.close()
        context = browser.new_context(viewport=viewport)  # signed out: another account
        staff2 = context.new_page()
        sign_in(staff2, server, site, "psychometrician")
        staff2.goto(f"{server}/psychometrician/")
        job = site.sql("INSERT INTO calibration_jobs (bank_id, created_at, status, progress, "
                       "message, settings) VALUES (:b, CURRENT_TIMESTAMP, 'running', 0.4, "
                       "'EM cycle 12', :s) RETURNING id", b=site.bank_id(),
                       s=json.dumps({"model": "2pl", "mode": "live"}))[0][0]
        staff2.goto(f"{server}/psychometrician/calibrations/{job}")
        assert staff2.locator("meta[http-equiv=refresh]").count() == 0
        assert staff2.get_by_label("Progress").get_attribute("value") == "0.4"
        check("calibration running", page=staff2)
        site.sql("UPDATE calibration_jobs SET status = 'failed', message = 'stopped by the "
                 "test' WHERE id = :i", i=job)
        staff2.wait_for_function("() => document.body.textContent.includes('stopped by the "
                                 "test') && !document.querySelector('progress')",
                                 timeout=20_000)  # jobstatus.js shows the ended job
        for name, path in (("item bank", "/psychometrician/"),
                           ("item", "/psychometrician/items/DB-001"),
                           ("import", "/psychometrician/import"),
                           ("calibrations", "/psychometrician/calibrations")):
            staff2.goto(server + path)
            check(name, page=staff2)
        context.close()
    assert not failures, "\n".join(failures)


def test_screen_reader_sees_names_and_a_polite_countdown_that_leads_to_time_is_up(
        site: Site, server: str, browser) -> None:
    (token,) = site.invite()
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(f"{server}/t/{token}")
    page.get_by_role("button", name="Start the assessment").click()
    sid = session_of(site, token)
    # 62 seconds left: the region announces "1 minute left" when the clock reaches a minute
    from datetime import UTC, datetime, timedelta

    site.sql("UPDATE test_sessions SET deadline = :d WHERE id = :s",
             d=datetime.now(UTC) + timedelta(seconds=62), s=sid)
    page.reload()
    tree = page.locator("main").aria_snapshot()
    assert "- heading \"Question 1 of at most" in tree
    from playwright.sync_api import expect

    options = page.get_by_role("radio")
    assert options.count() >= 2
    for k in range(options.count()):
        # the name a screen reader announces is the option's visible label (whatever markup
        # the option's text has: code, quotes, line breaks), compared by the browser's own
        # accessible-name computation rather than by quoting it into the snapshot's syntax
        label = " ".join(options.nth(k).evaluate("e => e.labels[0].textContent").split())
        assert label
        expect(options.nth(k)).to_have_accessible_name(label)
    assert '- button "Submit answer"' in tree
    live = page.get_by_role("status")
    assert live.count() == 1
    assert live.get_attribute("aria-live") == "polite"
    assert live.get_attribute("aria-atomic") == "true"
    assert live.inner_text() == ""  # no chatter on load
    page.wait_for_function("() => document.querySelector('[role=status]').textContent"
                           " === '1 minute left'", timeout=20_000)
    # the clock counts down from what the server said; at zero the server decides
    site.sql("UPDATE test_sessions SET deadline = :d WHERE id = :s",
             d=datetime.now(UTC) + timedelta(seconds=3), s=sid)
    page.reload()
    page.wait_for_url(f"{server}/t/{token}/done", timeout=20_000)
    assert page.get_by_role("heading", level=1).inner_text() == "Time is up"
    assert site.sql("SELECT status FROM test_sessions WHERE id = :s", s=sid)[0][0] == \
        "timed_out"
