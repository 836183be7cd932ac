"""Issue 22 in a real headless browser: every response type answered on a 375 px phone and at
1280 px — keyboard-operable controls, the item's image shown with its alt text, no sideways
scrolling — with axe-core finding no violation on any of the question pages, nor on the staff
item page that shows and uploads images."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.web.test_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    DESKTOP,
    PHONE,
    axe_source,
    axe_violations,
    browser,
    horizontal_overflow,
    sign_in,
)
from tests.web.test_response_types_web import ITEMS, _invite, mixed  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture
def mixed_server(mixed) -> Iterator[str]:  # type: ignore[no-untyped-def]  # noqa: F811
    site, _ = mixed
    app = site.app(PROFICIO_BASE_URL="http://127.0.0.1")
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(5)


def _answer(page, kind: str, item: str) -> None:  # type: ignore[no-untyped-def]
    """Answer the question with the keyboard where a control needs choosing."""
    spec = next(i for i in ITEMS if i["id"] == item)
    if kind == "single":
        page.get_by_role("radio").first.check()
    elif kind == "multiple":
        boxes = page.get_by_role("checkbox")
        assert boxes.count() == len(spec["options"])
        boxes.first.focus()
        page.keyboard.press("Space")
        assert boxes.first.is_checked()
    elif kind == "ordering":
        for k, oid in enumerate(spec["correct"], start=1):
            select = page.get_by_label(f"Position {k}", exact=True)
            select.focus()
            select.select_option(oid)
    else:
        field = page.get_by_label("Your answer (a number)" if kind == "numeric"
                                  else "Your answer", exact=True)
        assert field.get_attribute("inputmode") == ("decimal" if kind == "numeric" else None)
        field.fill("8" if kind == "numeric" else "content-type")
    page.get_by_role("button", name="Submit answer").click()
    page.wait_for_load_state()


def test_every_response_type_is_accessible_on_phone_and_desktop(
        mixed, mixed_server: str, browser,  # noqa: F811
        axe_source: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    site, bank_id = mixed
    failures: list[str] = []
    for viewport in (PHONE, DESKTOP):
        size = f"{viewport['width']} px"
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        token = _invite(site)
        page.goto(f"{mixed_server}/t/{token}")
        page.get_by_role("button", name="Start the assessment").click()
        kinds = []
        while "/question" in page.url:
            item = page.locator("input[name=item_id]").get_attribute("value")
            kind = page.locator("input[name=kind]").get_attribute("value")
            kinds.append(kind)
            if horizontal_overflow(page):
                failures.append(f"{size} {kind}: scrolls sideways")
            failures += [f"{size} {kind}: {v}" for v in axe_violations(page, axe_source)]
            if item == "T1":  # a Markdown table in the stem
                assert page.locator(".stem table.md-table td").count() == 2
            if item == "S1":
                img = page.get_by_role("img", name="A grey horizontal bar")
                assert img.count() == 1
                assert page.evaluate("() => document.querySelector('.item-media img')"
                                     ".naturalWidth") == 2  # loaded under the CSP
            _answer(page, kind, item)
        assert sorted(kinds) == sorted(i.get("response_type", "single") for i in ITEMS)
        assert "/done" in page.url
        context.close()
    # the staff item page with its image and upload form
    for viewport in (DESKTOP, PHONE):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        sign_in(page, mixed_server, site, "psychometrician")
        page.goto(f"{mixed_server}/psychometrician/items/S1?bank={bank_id}")
        assert page.get_by_role("img", name="A grey horizontal bar").count() == 1
        failures += [f"{viewport['width']} px item page: {v}"
                     for v in axe_violations(page, axe_source)]
        context.close()
    assert not failures, "\n".join(failures)
