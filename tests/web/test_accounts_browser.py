"""Two-step sign-in set up and used in a real headless browser (Debian's chromium through
Playwright), under the production Content-Security-Policy: the QR code must render and no
console errors (CSP violations are reported there) may appear."""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from tests.web.conftest import Site
from tests.web.test_accounts import new_staff
from tests.web.test_browser import CHROMIUM, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(__import__("shutil").which(CHROMIUM) is None,
                                reason="Debian chromium is not installed")


def test_enrol_and_sign_in_with_an_authenticator(site: Site, server: str,  # noqa: F811
                                                 browser) -> None:  # noqa: F811
    address, password = new_staff(site)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)  # 404s: checked below
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400
            and not r.url.endswith("/favicon.ico") else None)
    page.goto(f"{server}/login")
    page.get_by_label("E-mail").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Set up two-step sign in").click()
    qr = page.get_by_alt_text("QR code of the authenticator key")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")  # rendered under CSP
    secret = re.search(r"Key: ([A-Z2-7]+)", page.inner_text("main")).group(1)
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("button", name="Sign out").click()

    page.get_by_label("E-mail").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/login/verify")
    page.get_by_label(re.compile("Code from your authenticator")).fill(
        totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    assert page.url.endswith("/recruiter/")
    assert errors == [] and failed == []
