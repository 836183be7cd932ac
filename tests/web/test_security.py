"""Security properties of the web tier, through the real app and database."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from item_bank.security import hash_token
from tests.web.conftest import Site, csrf_of, login
from web.app import create_app
from web.config import UnsafeConfiguration


def test_security_headers_on_every_kind_of_page(site: Site, client: FlaskClient):
    (token,) = site.invite()
    for url in ("/login", f"/t/{token}", "/api/openapi.json", "/t/unknown-token-000000000000"):
        r = client.get(url)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(site: Site, client: FlaskClient):
    (token,) = site.invite()
    for url in ("/login", f"/t/{token}"):
        body = client.get(url).data.lower()
        assert b"<script" not in body and b"style=" not in body and b"<style" not in body


def test_session_cookie_flags(site: Site, app):
    c = app.test_client()
    cred = site.info.credentials("recruiter")
    token = csrf_of(c.get("/login").data)
    r = c.post("/login", data={"csrf_token": token, "email": cred.email,
                               "password": cred.password})
    cookies = [h for h in r.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert cookies, r.headers.getlist("Set-Cookie")
    assert "HttpOnly" in cookies[-1] and "SameSite=Lax" in cookies[-1]


def test_login_form_requires_csrf_and_wrong_password_is_refused(site: Site, client: FlaskClient):
    cred = site.info.credentials("recruiter")
    assert client.post("/login", data={"email": cred.email, "password": cred.password}
                       ).status_code == 400
    token = csrf_of(client.get("/login").data)
    r = client.post("/login", data={"csrf_token": token, "email": cred.email,
                                    "password": "wrong"})
    assert r.status_code == 401 and b"wrong password" in r.data
    assert client.get("/recruiter/").status_code == 302


def test_logout_invalidates_copies_of_the_cookie(site: Site, app):
    c = app.test_client()
    cred = site.info.credentials("recruiter")
    login(c, cred.email, cred.password)
    stolen = c.get_cookie("session").value
    assert c.get("/recruiter/").status_code == 200
    token = csrf_of(c.get("/recruiter/").data)
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    r = thief.get("/recruiter/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_open_redirect_after_login_is_ignored(site: Site, client: FlaskClient):
    cred = site.info.credentials("recruiter")
    token = csrf_of(client.get("/login").data)
    r = client.post("/login?next=https://evil.example/", data={
        "csrf_token": token, "email": cred.email, "password": cred.password})
    assert r.headers["Location"] == "/recruiter/"


def test_login_is_rate_limited(site: Site):
    app = site.app(RATELIMIT_ENABLED=True)
    c = app.test_client()
    token = csrf_of(c.get("/login").data)
    # a different address each time: the per-address back-off (test_accounts) is not in play
    codes = [c.post("/login", data={"csrf_token": token, "email": f"x{i}@y.z", "password": "p"}
                    ).status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    site.close_apps()


def test_request_size_is_bounded(site: Site, client: FlaskClient):
    (token,) = site.invite()
    big = "x" * (11 * 1024 * 1024)
    r = client.post("/api/v1/sessions", data=json.dumps({"invitation": token, "pad": big}),
                    content_type="application/json")
    assert r.status_code == 413
    assert r.json["code"] == 413


def test_invitation_tokens_are_stored_only_as_hashes(site: Site):
    (token,) = site.invite()
    rows = site.sql("SELECT token_hash FROM invitations")
    hashes = {r[0] for r in rows}
    assert hash_token(token) in hashes and token not in hashes
    assert len(token) >= 22  # ≥ 128 bits of URL-safe base64


def test_production_refuses_demo_secret(monkeypatch, site: Site):
    monkeypatch.setenv("PROFICIO_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(UnsafeConfiguration, match="SECRET_KEY"):
        create_app({"DATABASE_URL": site.url})
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(UnsafeConfiguration, match="SECRET_KEY"):
        create_app({"DATABASE_URL": site.url})


def test_app_refuses_a_schema_that_is_behind(tmp_path):
    from item_bank.db import SchemaError

    with pytest.raises(SchemaError, match="proficio db upgrade"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})


def test_csv_export_neutralises_formula_injection(site: Site, staff_client):
    (token,) = site.invite(candidate_names=["=HYPERLINK(\"http://x\")"])
    c = staff_client("recruiter")
    r = c.post("/api/v1/sessions", json={"invitation": token})
    sid, bearer = r.json["session_id"], r.json["token"]
    state = r.json
    while state["status"] == "in_progress":
        it = state["pending_item"]
        state = c.post(f"/api/v1/sessions/{sid}/responses",
                       headers={"Authorization": f"Bearer {bearer}"},
                       json={"item_id": it["item_id"], "answer": it["options"][0]["id"]}).json
    aid = site.sql("SELECT assessment_id FROM test_sessions WHERE id = :s", s=sid)[0][0]
    csv_text = c.get(f"/recruiter/assessments/{aid}/compare.csv").data.decode()
    assert "'=HYPERLINK" in csv_text
    assert "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text


def test_trusted_proxy_gives_each_client_its_own_login_budget(site: Site, monkeypatch):
    monkeypatch.setenv("PROFICIO_TRUSTED_PROXIES", "1")
    app = site.app(RATELIMIT_ENABLED=True)
    c = app.test_client()
    token = csrf_of(c.get("/login").data)

    emails = (f"proxy{i}@y.z" for i in range(100))  # the per-address back-off is not in play

    def attempt(address: str) -> int:
        return c.post("/login", data={"csrf_token": token, "email": next(emails),
                                      "password": "p"},
                      headers={"X-Forwarded-For": address}).status_code

    assert [attempt("203.0.113.7") for _ in range(11)][-1] == 429
    assert attempt("198.51.100.9") == 401  # another client behind the proxy is not blocked
    site.close_apps()
