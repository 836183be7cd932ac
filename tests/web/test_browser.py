"""End to end in a real headless browser (Debian's chromium driven by Playwright).

A candidate takes a whole adaptive test from the invitation link using the keyboard and mouse;
a recruiter signs in and opens the report. Screenshots of the question page and the report are
saved under ``test-artifacts/screenshots/`` (the getting-started guide uses them).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.web.conftest import Site

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="Debian chromium is not installed (.ci/run installs it)")


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


def test_candidate_takes_a_test_and_recruiter_reads_the_report(site: Site, server: str,
                                                               browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (token,) = site.invite(candidate_names=["Ada Browser"])
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server}/t/{token}")
    assert "adaptive test" in page.content()
    page.get_by_role("button", name="Start the assessment").click()
    answered = 0
    while "/question" in page.url:
        heading = page.locator(".progress").inner_text()
        assert heading.startswith(f"Question {answered + 1}, at most")
        if answered == 2:
            page.screenshot(path=str(ARTIFACTS / "question.png"), full_page=True)
        radios = page.get_by_role("radio")
        assert radios.count() >= 4
        radios.nth(answered % radios.count()).check()  # labels are clickable, keyboard works
        page.get_by_role("button", name="Submit answer").click()
        answered += 1
        assert answered <= 60
    assert "/done" in page.url and "completed the assessment" in page.content()
    assert answered >= 24

    staff = browser.new_page()
    cred = site.info.credentials("recruiter")
    staff.goto(f"{server}/login")
    staff.get_by_label("E-mail").fill(cred.email)
    staff.get_by_label("Password").fill(cred.password)
    staff.get_by_role("button", name="Sign in").click()
    staff.wait_for_url(f"{server}/recruiter/")
    row = staff.locator("tr", has_text="Ada Browser")
    assert "completed" in row.inner_text()
    row.get_by_role("link", name="Report").click()
    assert staff.locator("h1").inner_text() == "Report: Ada Browser"
    assert staff.locator("svg.chart").count() == 1
    assert staff.locator("tbody tr").count() == 8
    decisions = staff.locator("tbody .badge").all_inner_texts()
    assert len(decisions) == 8 and set(decisions) <= {"pass", "fail", "undecided"}
    staff.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e]
