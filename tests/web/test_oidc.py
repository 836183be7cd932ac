"""Single sign-on through a real OpenID Connect provider process (tests/web/oidc_provider.py):
discovery, JWKS, authorisation code with PKCE and signed ID tokens over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask.testing import FlaskClient

from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import Organisation
from tests.web.conftest import Site

CLIENT_ID, CLIENT_SECRET = "proficio-test", "client-secret-for-tests"
REDIRECT = "http://localhost/login/oidc/callback"


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("oidc_provider.py")),
                             CLIENT_ID, CLIENT_SECRET, REDIRECT],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("http://127.0.0.1:"), line
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]


def _staff(site: Site, role: str = "recruiter", org: str = "demo") -> str:
    email = f"sso-{uuid.uuid4().hex[:8]}@demo.example"
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            o = db.query(Organisation).filter_by(slug=org).one()
            repo.create_staff_user(db, o, email, role, "a-long-password-123")
    finally:
        eng.dispose()
    return email


def _sso(client: FlaskClient, *, sub: str, email: str = "", verified: bool = True,
         mode: str = "", next_path: str | None = None):  # type: ignore[no-untyped-def]
    """Run the browser's part of the flow; returns the app's answer to the callback."""
    start = client.get("/login/oidc" + (f"?next={next_path}" if next_path else ""))
    assert start.status_code == 302, start.data[:300]
    authorize = start.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    with httpx.Client() as browser:
        assert browser.get(authorize).status_code == 200
        back = browser.post(authorize.split("?")[0], data={
            **query, "sub": sub, "email": email, "email_verified": "true" if verified else "",
            "mode": mode})
    assert back.status_code == 302
    target = urlsplit(back.headers["Location"])
    return client.get(f"{target.path}?{target.query}")


@pytest.fixture
def sso_app(site: Site, issuer: str):  # type: ignore[no-untyped-def]
    app = site.app(OIDC_ISSUER=issuer, OIDC_CLIENT_ID=CLIENT_ID,
                   OIDC_CLIENT_SECRET=CLIENT_SECRET, OIDC_PROVIDER_NAME="Test IdP")
    yield app
    site.close_apps()


def test_sign_in_maps_a_verified_email_to_an_existing_account(site: Site, sso_app) -> None:
    email = _staff(site)
    client = sso_app.test_client()
    assert b"Sign in with Test IdP" in client.get("/login").data
    r = _sso(client, sub="user-1-" + email, email=email, next_path="/recruiter/")
    assert r.status_code == 302 and r.headers["Location"] == "/recruiter/"
    assert client.get("/recruiter/").status_code == 200
    linked = site.sql("SELECT s.email, i.subject FROM staff_identities i JOIN staff_users s "
                      "ON s.id = i.user_id WHERE i.subject = :s", s="user-1-" + email)
    assert linked == [(email, "user-1-" + email)]
    events = site.sql("SELECT actor, action, detail FROM audit_events WHERE actor = :e", e=email)
    assert [(a, act) for a, act, _ in events] == [(email, "login")]
    assert "oidc" in str(events[0][2])


def test_the_linked_subject_signs_in_even_after_the_email_changes(site: Site, sso_app) -> None:
    email = _staff(site)
    sub = "stable-" + uuid.uuid4().hex
    assert _sso(sso_app.test_client(), sub=sub, email=email).status_code == 302
    r = _sso(sso_app.test_client(), sub=sub, email="renamed@elsewhere.example")
    assert r.status_code == 302


@pytest.mark.parametrize("case", ["unknown", "unverified"])
def test_no_account_is_created_and_unverified_emails_do_not_match(site: Site, sso_app,
                                                                 case: str) -> None:
    email = f"nobody-{uuid.uuid4().hex[:6]}@demo.example" if case == "unknown" else _staff(site)
    before = site.sql("SELECT COUNT(*) FROM staff_users")[0][0]
    client = sso_app.test_client()
    r = _sso(client, sub="x-" + uuid.uuid4().hex, email=email, verified=case == "unknown")
    assert r.status_code == 403 and b"no Proficio staff account" in r.data
    assert site.sql("SELECT COUNT(*) FROM staff_users")[0][0] == before
    assert client.get("/recruiter/").status_code == 302  # still anonymous


@pytest.mark.parametrize("mode", ["rogue", "wrong_audience", "expired", "bad_nonce"])
def test_forged_or_misdirected_id_tokens_are_refused(site: Site, sso_app, mode: str) -> None:
    email = _staff(site)
    client = sso_app.test_client()
    r = _sso(client, sub="m-" + uuid.uuid4().hex, email=email, mode=mode)
    assert r.status_code == 401 and b"Single sign-on failed" in r.data
    assert client.get("/recruiter/").status_code == 302
    assert site.sql("SELECT COUNT(*) FROM staff_identities i JOIN staff_users s ON "
                    "s.id = i.user_id WHERE s.email = :e", e=email)[0][0] == 0


def test_a_callback_without_the_flow_state_is_refused(sso_app) -> None:
    r = sso_app.test_client().get("/login/oidc/callback?code=abc&state=forged")
    assert r.status_code == 401


def test_sso_is_off_without_configuration(client: FlaskClient) -> None:
    assert client.get("/login/oidc").status_code == 404
    assert b"Sign in with" not in client.get("/login").data


def test_an_unreachable_provider_is_a_clear_503(site: Site) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    app = site.app(OIDC_ISSUER=f"http://127.0.0.1:{port}", OIDC_CLIENT_ID=CLIENT_ID,
                   OIDC_CLIENT_SECRET=CLIENT_SECRET)
    r = app.test_client().get("/login/oidc")
    assert r.status_code == 503 and b"Single sign-on is unavailable" in r.data
    assert b"Traceback" not in r.data and str(port).encode() not in r.data
    site.close_apps()
