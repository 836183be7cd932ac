"""The pages of issue 21 in a real browser (chromium via Playwright): the session replay, the
report's review section, the candidate explanation (recruiter's printable page and the last page
of the test when the organisation enables it), the candidate-data page and the privacy settings
pass axe-core and do not scroll sideways at 375 px, like the candidate pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.web import test_browser as _browser_tests
from tests.web.conftest import Site
from tests.web.test_browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    axe_violations,
    horizontal_overflow,
    sign_in,
)
from tests.web.test_reports import _keys

# the browser test module's fixtures: a served app, chromium, axe-core
server, browser, axe_source = (_browser_tests.server, _browser_tests.browser,
                               _browser_tests.axe_source)

pytestmark = pytest.mark.skipif(__import__("shutil").which(CHROMIUM) is None,
                                reason="Debian chromium is not installed")


def _take_test(page: Page, server: str, site: Site) -> tuple[str, int]:
    (token,) = site.invite()
    page.goto(f"{server}/t/{token}")
    page.get_by_role("button", name="Start the assessment").click()
    keys = _keys(site)
    while "/done" not in page.url:
        item = page.locator("input[name=item_id]").get_attribute("value")
        page.locator(f"input[name=answer][value='{keys[item]}']").check()
        page.get_by_role("button", name="Submit answer").click()
        page.wait_for_load_state()
    sid = site.sql("SELECT max(id) FROM test_sessions")[0][0]
    return token, int(sid)


def test_accountability_pages_pass_axe_and_fit_a_phone(site: Site, server: str, browser,
                                                       axe_source: str) -> None:
    context = browser.new_context(viewport=PHONE)
    token, sid = _take_test(context.new_page(), server, site)
    context.close()
    site.sql("INSERT INTO organisation_privacy (organisation_id, retention_days, "
             "explain_to_candidates, updated_at) SELECT id, NULL, TRUE, CURRENT_TIMESTAMP "
             "FROM organisations WHERE slug = 'demo'")
    public_id = site.sql("SELECT c.public_id FROM candidates c JOIN test_sessions s ON "
                         "s.candidate_id = c.id WHERE s.id = :s", s=sid)[0][0]
    failures: list[str] = []
    try:
        for viewport in (DESKTOP, PHONE):
            size = f"{viewport['width']} px"

            def check(name: str, page: Page, size: str = size) -> None:
                page.wait_for_load_state()
                failures.extend(f"{name} @ {size}: {v}"
                                for v in axe_violations(page, axe_source))
                if horizontal_overflow(page):
                    failures.append(f"{name} @ {size}: {horizontal_overflow(page)} px wider "
                                    "than the viewport")

            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(f"{server}/t/{token}/done")
            assert "How your result was obtained" in page.content()
            check("candidate explanation at the end", page)
            sign_in(page, server, site, "psychometrician")
            page.goto(f"{server}/psychometrician/sessions")
            check("sessions", page)
            page.get_by_role("link", name=f"Replay session {sid}").click()
            assert "Reproduced." in page.content()
            check("replay", page)
            context.close()

            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            sign_in(page, server, site, "recruiter")
            page.goto(f"{server}/recruiter/sessions/{sid}")
            check("report with review", page)
            page.get_by_label("Reviewed").check()
            page.get_by_label("Reason").fill("read with the interview notes")
            page.get_by_role("button", name="Record review").click()
            page.wait_for_load_state()
            assert "read with the interview notes" in page.content()
            check("report reviewed", page)
            page.get_by_role("link", name="Explanation for the candidate").click()
            check("explanation (recruiter)", page)
            page.goto(f"{server}/recruiter/candidates/{public_id}/erase")
            check("candidate data", page)
            context.close()
    finally:
        site.sql("DELETE FROM organisation_privacy")
    assert not failures, "\n".join(failures)
