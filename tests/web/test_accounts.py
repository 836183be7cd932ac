"""Staff accounts: e-mail through a real local SMTP server (aiosmtpd), password reset and change,
the per-address back-off, a fresh session and CSRF token at sign-in, the TOTP second factor."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from flask import Flask
from flask.testing import FlaskClient

from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import Organisation
from item_bank.security import hash_token
from tests.web.conftest import Site, csrf_of, login
from web import mail
from web.services import accounts

SMTP_USER, SMTP_PASSWORD = "relay-user", "relay-password"


@dataclass
class Inbox:
    """Messages the local SMTP server accepted."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, timeout: float = 20.0) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for m in self.messages:
                    if m["To"] == to:
                        return m
                left = deadline - time.monotonic()
                assert left > 0, f"no e-mail to {to} arrived"
                self.arrived.wait(left)

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the relay's STARTTLS) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "relay.pem", folder / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Inbox]]:
    """A local relay that requires STARTTLS before AUTH, as a real submission server does.
    Its self-signed certificate is made trusted through ``SSL_CERT_FILE`` (read by OpenSSL's
    default verify paths), so web.mail's default, verifying TLS context accepts it."""
    cert, key = _self_signed(tmp_path_factory.mktemp("smtp"))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=True, authenticator=_authenticator,
                            auth_required=True)
    saved = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(cert)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()
        if saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved


@pytest.fixture
def mail_app(site: Site, smtp: tuple[int, Inbox]) -> Iterator[Flask]:
    app = site.app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp[0], MAIL_USE_TLS=True,
                   MAIL_USERNAME=SMTP_USER, MAIL_PASSWORD=SMTP_PASSWORD,
                   MAIL_FROM="proficio@demo.example", PROFICIO_BASE_URL="http://localhost")
    yield app
    site.close_apps()


def new_staff(site: Site, role: str = "recruiter", org: str = "demo") -> tuple[str, str]:
    """A fresh account (tests change passwords; the shared demo accounts stay as they are)."""
    address = f"{role}-{uuid.uuid4().hex[:8]}@{org}.example"
    password = "initial-password-" + uuid.uuid4().hex[:6]
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            o = db.query(Organisation).filter_by(slug=org).one()
            repo.create_staff_user(db, o, address, role, password)
    finally:
        eng.dispose()
    return address, password


def post_login(client: FlaskClient, address: str, password: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/login").data)
    return client.post("/login", data={"csrf_token": token, "email": address,
                                       "password": password})


def post_form(client: FlaskClient, page: str, action: str, **data: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(page).data)
    return client.post(action, data={"csrf_token": token, **data})


# -- e-mail ---------------------------------------------------------------------------------


def test_send_mail_delivers_through_the_relay_with_login(mail_app: Flask, smtp) -> None:
    _, inbox = smtp
    with mail_app.app_context():
        mail.send_mail("someone@example.org", "Hello", "plain body", html="<p>html body</p>")
    msg = inbox.wait_for("someone@example.org")
    assert msg["Subject"] == "Hello" and msg["From"] == "proficio@demo.example"
    assert msg.get_body(("plain",)).get_content().strip() == "plain body"
    assert "<p>html body</p>" in msg.get_body(("html",)).get_content()


def test_send_mail_errors(site: Site, smtp) -> None:
    app = site.app(MAIL_SERVER="")
    with app.app_context(), pytest.raises(mail.MailNotConfigured):
        mail.send_mail("a@b.example", "s", "t")
    bad_login = site.app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp[0], MAIL_USE_TLS=True,
                         MAIL_USERNAME=SMTP_USER, MAIL_PASSWORD="wrong")
    with bad_login.app_context(), pytest.raises(mail.MailError, match=r"127\.0\.0\.1"):
        mail.send_mail("a@b.example", "s", "t")
    closed = site.app(MAIL_SERVER="127.0.0.1", MAIL_PORT=_free_port(), MAIL_USE_TLS=False)
    with closed.app_context(), pytest.raises(mail.MailError):
        mail.send_mail("a@b.example", "s", "t")
    no_tls = site.app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp[0], MAIL_USE_TLS=False,
                      MAIL_USERNAME=SMTP_USER, MAIL_PASSWORD=SMTP_PASSWORD)
    with no_tls.app_context(), pytest.raises(mail.MailError):  # the relay requires STARTTLS
        mail.send_mail("a@b.example", "s", "t")
    with bad_login.app_context(), pytest.raises(ValueError, match="single line"):
        mail.send_mail("a@b.example", "s\r\nBcc: x@evil.example", "t")
    site.close_apps()


# -- password reset -------------------------------------------------------------------------


def _reset_work_done() -> None:
    """Wait for the reset requests this process handed to background threads."""
    from web.blueprints.auth import RESET_THREAD

    for t in threading.enumerate():
        if t.name == RESET_THREAD:
            t.join(30)


def _reset_link(inbox: Inbox, address: str) -> str:
    body = inbox.wait_for(address).get_body(("plain",)).get_content()
    return re.search(r"http://localhost(/password/reset/\S+)", body).group(1)


def test_password_reset_by_email(site: Site, mail_app: Flask, smtp) -> None:
    _, inbox = smtp
    address, old = new_staff(site)
    client = mail_app.test_client()
    r = post_form(client, "/password/forgot", "/password/forgot", email=address.upper())
    assert r.status_code == 200 and b"If a staff account has that address" in r.data
    path = _reset_link(inbox, address)
    token = path.rsplit("/", 1)[1]
    stored = site.sql("SELECT t.token_hash FROM password_reset_tokens t JOIN staff_users s "
                      "ON s.id = t.user_id WHERE s.email = :e", e=address)
    assert stored == [(hash_token(token),)]  # only the hash is kept
    assert client.get(path).status_code == 200
    r = post_form(client, path, path, new_password="short", confirm_password="short")
    assert r.status_code == 400 and b"at least 12" in r.data
    new = "a-brand-new-password-1"
    r = post_form(client, path, path, new_password=new, confirm_password=new)
    assert r.status_code == 302  # signed in
    assert client.get("/recruiter/").status_code == 200
    assert client.get(path).status_code == 404  # single use
    fresh = mail_app.test_client()
    assert post_login(fresh, address, old).status_code == 401
    assert post_login(fresh, address, new).status_code == 302
    actions = [a for (a,) in site.sql("SELECT action FROM audit_events WHERE actor = :e "
                                      "ORDER BY id", e=address)]
    assert actions[:3] == ["password.reset_requested", "password.reset", "login"]


def test_reset_link_expires_and_unknown_addresses_get_the_same_answer(
        site: Site, mail_app: Flask, smtp) -> None:
    _, inbox = smtp
    address, _ = new_staff(site)
    client = mail_app.test_client()
    unknown = f"nobody-{uuid.uuid4().hex[:6]}@demo.example"
    a = post_form(client, "/password/forgot", "/password/forgot", email=unknown)
    b = post_form(client, "/password/forgot", "/password/forgot", email=address)
    assert a.status_code == b.status_code == 200
    strip = re.compile(rb'name="csrf_token" value="[^"]+"')
    assert strip.sub(b"", a.data) == strip.sub(b"", b.data)
    path = _reset_link(inbox, address)
    site.sql("UPDATE password_reset_tokens SET expires_at = :t WHERE user_id = "
             "(SELECT id FROM staff_users WHERE email = :e)",
             t=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1), e=address)
    assert client.get(path).status_code == 404
    r = post_form(client, "/password/forgot", path, new_password="x" * 20,
                  confirm_password="x" * 20)
    assert r.status_code == 404
    _reset_work_done()
    assert inbox.to(unknown) == []


def test_reset_mails_per_hour_are_capped(site: Site, mail_app: Flask, smtp) -> None:
    address, _ = new_staff(site)
    client = mail_app.test_client()
    for _ in range(accounts.MAX_RESETS_PER_HOUR + 2):
        post_form(client, "/password/forgot", "/password/forgot", email=address)
    _reset_work_done()
    n = site.sql("SELECT COUNT(*) FROM password_reset_tokens t JOIN staff_users s ON "
                 "s.id = t.user_id WHERE s.email = :e", e=address)[0][0]
    assert n == accounts.MAX_RESETS_PER_HOUR


def test_forgot_page_without_mail_configuration(client: FlaskClient) -> None:
    page = client.get("/password/forgot").data
    assert b"does not send e-mail" in page and b"proficio staff set-password" in page


# -- password change ------------------------------------------------------------------------


def test_password_change_needs_the_current_password_and_signs_out_other_sessions(
        site: Site, app: Flask) -> None:
    address, old = new_staff(site)
    me, elsewhere = app.test_client(), app.test_client()
    login(me, address, old)
    login(elsewhere, address, old)
    new = "changed-password-456"
    r = post_form(me, "/account", "/account/password", current_password="not-it-at-all",
                  new_password=new, confirm_password=new)
    assert r.status_code == 400 and b"current password is wrong" in r.data
    r = post_form(me, "/account", "/account/password", current_password=old,
                  new_password=new, confirm_password=new)
    assert r.status_code == 302
    assert me.get("/recruiter/").status_code == 200  # this session continues
    assert elsewhere.get("/recruiter/").status_code == 302  # the other one was signed out
    assert post_login(app.test_client(), address, old).status_code == 401
    login(app.test_client(), address, new)


# -- throttling -----------------------------------------------------------------------------


def test_backoff_schedule_is_capped() -> None:
    waits = [accounts.backoff(n) for n in range(1, 30)]
    assert waits[:accounts.FREE_ATTEMPTS - 1] == [dt.timedelta(0)] * (accounts.FREE_ATTEMPTS - 1)
    assert waits[accounts.FREE_ATTEMPTS - 1] == accounts.BASE_BACKOFF
    assert waits[accounts.FREE_ATTEMPTS] == 2 * accounts.BASE_BACKOFF
    assert max(waits) == accounts.MAX_BACKOFF == waits[-1]


def test_failed_sign_ins_back_off_per_address_known_or_not(site: Site, app: Flask) -> None:
    address, password = new_staff(site)
    unknown = f"ghost-{uuid.uuid4().hex[:6]}@demo.example"
    client = app.test_client()
    for who in (address, unknown):
        codes = [post_login(client, who, "wrong-password-x").status_code
                 for _ in range(accounts.FREE_ATTEMPTS + 1)]
        assert codes == [401] * accounts.FREE_ATTEMPTS + [429], who
    r = post_login(client, address, password)  # even the right password waits
    assert r.status_code == 429 and b"Try again in 1 minute" in r.data
    # another address is not affected
    other, other_pw = new_staff(site)
    assert post_login(app.test_client(), other, other_pw).status_code == 302
    # the wait passes on its own
    site.sql("UPDATE login_throttles SET locked_until = :t",
             t=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert post_login(client, address, password).status_code == 302


def test_concurrent_failures_for_one_address_are_all_counted(site: Site, app: Flask) -> None:
    """Parallel wrong passwords for one new address: no 5xx (the first insert of the throttle
    row wins, the others increment it) and every failure counted."""
    address = f"race-{uuid.uuid4().hex[:8]}@demo.example"
    clients = [app.test_client() for _ in range(6)]
    tokens = [csrf_of(c.get("/login").data) for c in clients]
    barrier = threading.Barrier(len(clients))
    codes: list[int] = []

    def attempt(c: FlaskClient, token: str) -> None:
        barrier.wait()
        codes.append(c.post("/login", data={"csrf_token": token, "email": address,
                                            "password": "wrong-password-x"}).status_code)

    threads = [threading.Thread(target=attempt, args=(c, t)) for c, t in zip(clients, tokens,
                                                                             strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [401] * 6 or (all(c in (401, 429) for c in codes)
                                          and codes.count(401) >= accounts.FREE_ATTEMPTS)
    failures = site.sql("SELECT failures FROM login_throttles WHERE email_hash = :h",
                        h=accounts.email_key(address))
    assert failures == [(codes.count(401),)]


def test_a_password_reset_clears_the_backoff(site: Site, mail_app: Flask, smtp) -> None:
    _, inbox = smtp
    address, _ = new_staff(site)
    client = mail_app.test_client()
    for _ in range(accounts.FREE_ATTEMPTS + 3):
        post_login(client, address, "wrong-password-x")
    assert post_login(client, address, "wrong-password-x").status_code == 429
    post_form(client, "/password/forgot", "/password/forgot", email=address)
    path = _reset_link(inbox, address)
    new = "after-lockout-password"
    assert post_form(client, path, path, new_password=new,
                     confirm_password=new).status_code == 302
    assert post_login(mail_app.test_client(), address, new).status_code == 302


# -- session and CSRF renewal ---------------------------------------------------------------


def test_sign_in_starts_a_new_session_and_csrf_token(site: Site, app: Flask) -> None:
    address, password = new_staff(site)
    client = app.test_client()
    before = csrf_of(client.get("/login").data)
    cookie_before = client.get_cookie("session").value
    r = client.post("/login", data={"csrf_token": before, "email": address,
                                    "password": password})
    assert r.status_code == 302
    assert client.get_cookie("session").value != cookie_before
    after = csrf_of(client.get("/account").data)
    assert after != before
    # the pre-login token (e.g. one planted by an attacker) no longer passes
    r = client.post("/account/totp", data={"csrf_token": before})
    assert r.status_code == 400
    assert client.post("/account/totp", data={"csrf_token": after}).status_code == 302


# -- TOTP -----------------------------------------------------------------------------------


def test_pyotp_matches_the_rfc6238_test_vectors() -> None:
    """RFC 6238 Appendix B, SHA-1 rows: secret "12345678901234567890", 8 digits."""
    import base64

    totp = pyotp.TOTP(base64.b32encode(b"12345678901234567890").decode(), digits=8)
    vectors = {59: "94287082", 1111111109: "07081804", 1111111111: "14050471",
               1234567890: "89005924", 2000000000: "69279037", 20000000000: "65353130"}
    assert {t: totp.at(t) for t in vectors} == vectors


def _enrol(client: FlaskClient) -> tuple[pyotp.TOTP, list[str]]:
    assert post_form(client, "/account", "/account/totp").status_code == 302
    page = client.get("/account").data
    assert b"data:image/svg+xml;base64," in page  # the QR code
    secret = re.search(rb"Key: <code>([A-Z2-7]+)</code>", page).group(1).decode()
    totp = pyotp.TOTP(secret)
    r = post_form(client, "/account", "/account/totp/confirm", code="000000"
                  if totp.now() != "000000" else "111111")
    assert r.status_code == 400
    r = post_form(client, "/account", "/account/totp/confirm", code=totp.now())
    assert r.status_code == 200 and b"recovery codes" in r.data
    codes = re.findall(rb"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>", r.data)
    assert len(codes) == accounts.RECOVERY_CODES
    return totp, [c.decode() for c in codes]


def test_totp_second_factor(site: Site, app: Flask) -> None:
    address, password = new_staff(site)
    me = app.test_client()
    login(me, address, password)
    totp, codes = _enrol(me)
    (sealed,) = site.sql("SELECT t.secret FROM staff_totp t JOIN staff_users s ON "
                         "s.id = t.user_id WHERE s.email = :e", e=address)[0]
    assert sealed.startswith("f1:") and totp.secret not in sealed  # encrypted at rest
    stored = site.sql("SELECT code_hash FROM staff_recovery_codes c JOIN staff_users s ON "
                      "s.id = c.user_id WHERE s.email = :e", e=address)
    assert len(stored) == len(codes) and all(codes[0] not in h for (h,) in stored)

    client = app.test_client()
    r = post_login(client, address, password)
    assert r.status_code == 302 and r.headers["Location"] == "/login/verify"
    assert client.get("/recruiter/").status_code == 302  # not signed in yet
    r = post_form(client, "/login/verify", "/login/verify", code="123456"
                  if totp.at(time.time() + 30) != "123456" else "654321")
    assert r.status_code == 401
    code = totp.at(time.time() + 30)  # the next step (the current one was used at enrolment)
    r = post_form(client, "/login/verify", "/login/verify", code=code)
    assert r.status_code == 302 and r.headers["Location"] == "/recruiter/"
    assert client.get("/recruiter/").status_code == 200

    replay = app.test_client()
    post_login(replay, address, password)
    assert post_form(replay, "/login/verify", "/login/verify", code=code).status_code == 401

    recovery = app.test_client()
    post_login(recovery, address, password)
    assert post_form(recovery, "/login/verify", "/login/verify",
                     code=codes[0].lower()).status_code == 302
    again = app.test_client()
    post_login(again, address, password)
    assert post_form(again, "/login/verify", "/login/verify",
                     code=codes[0]).status_code == 401  # a recovery code works once

    r = post_form(me, "/account", "/account/totp/disable", password="not-the-password")
    assert r.status_code == 400
    assert post_form(me, "/account", "/account/totp/disable",
                     password=password).status_code == 302
    assert post_login(app.test_client(), address, password).headers["Location"] == "/recruiter/"
    actions = [a for (a,) in site.sql("SELECT action FROM audit_events WHERE actor = :e",
                                      e=address)]
    assert {"totp.enabled", "recovery_code.used", "totp.disabled"} <= set(actions)


def test_too_many_wrong_codes_restart_the_sign_in(site: Site, app: Flask) -> None:
    address, password = new_staff(site)
    me = app.test_client()
    login(me, address, password)
    _enrol(me)
    client = app.test_client()
    post_login(client, address, password)
    codes = [post_form(client, "/login/verify", "/login/verify", code="00000" + str(i))
             .status_code for i in range(5)]
    assert codes[:4] == [401] * 4 and codes[4] == 302
    assert client.get("/login/verify").headers["Location"] == "/login"


# -- configuration --------------------------------------------------------------------------


def test_config_check_shows_mail_and_sso_settings_masked(monkeypatch, tmp_path, capsys) -> None:
    import json as _json

    from web.cli import main

    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path))
    env = {"MAIL_SERVER": "smtp.example.com", "MAIL_PORT": "2525", "MAIL_USERNAME": "relay",
           "MAIL_PASSWORD": "relay-secret-value", "MAIL_FROM": "hr@example.com",
           "OIDC_ISSUER": "https://login.example.com", "OIDC_CLIENT_ID": "proficio",
           "OIDC_CLIENT_SECRET": "oidc-secret-value"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["config", "check", "--json"]) == 0
    out = capsys.readouterr().out
    rows = {r["name"]: r["value"] for r in _json.loads(out)["variables"]}
    assert rows["MAIL_SERVER"] == "smtp.example.com" and rows["MAIL_PORT"] == "2525"
    assert rows["MAIL_USE_TLS"] == "1" and rows["MAIL_FROM"] == "hr@example.com"
    assert rows["OIDC_ISSUER"] == "https://login.example.com"
    assert rows["MAIL_PASSWORD"] == rows["OIDC_CLIENT_SECRET"] == "*** (set)"
    assert "relay-secret-value" not in out and "oidc-secret-value" not in out
    monkeypatch.setenv("MAIL_PORT", "not-a-port")
    assert main(["config", "check"]) == 2
    assert "MAIL_PORT" in capsys.readouterr().err
    monkeypatch.setenv("MAIL_PORT", "587")
    monkeypatch.delenv("OIDC_CLIENT_ID")
    assert main(["config", "check"]) == 2
    assert "OIDC_ISSUER and OIDC_CLIENT_ID" in capsys.readouterr().err
