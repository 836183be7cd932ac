"""Recruiters in their own tools: invitation e-mail and reminders through a real local SMTP
server (aiosmtpd), the links CSV, accommodations (extra time, a break that stops the clock)
recorded with the result, revocation with confirmation and an honest message, one chart axis
for every report."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import socket
import urllib.parse
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.conftest import Site, csrf_of, expire_deadline, login
from tests.web.test_candidate_flow import pending, session_id_of, start, stored_answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ONE_SECOND = dt.timedelta(seconds=1)


class Inbox:
    """Messages received by the local SMTP server."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        msg = message_from_bytes(envelope.content, policy=policy.default)
        body = msg.get_body(("plain",)).get_content()
        self.messages.append((list(envelope.rcpt_tos), f"Subject: {msg['Subject']}\n\n{body}"))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def mail_app(site: Site, smtp) -> Iterator[Flask]:
    _, port = smtp
    yield site.app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                   MAIL_FROM="talent@demo.example", PROFICIO_BASE_URL="https://tests.example")
    site.close_apps()


def recruiter(app: Flask, site: Site) -> FlaskClient:
    c = app.test_client()
    cred = site.info.credentials("recruiter")
    login(c, cred.email, cred.password)
    return c


def invite_page(c: FlaskClient, names: str, send_email: bool = True) -> bytes:
    form = c.get("/recruiter/invitations/new")
    assessment = re.search(rb'<option value="(\d+)">Back-End Engineer', form.data).group(1)
    data = {"csrf_token": csrf_of(form.data), "assessment": assessment.decode(),
            "names": names, "expires_in_days": "7"}
    if send_email:
        data["send_email"] = "1"
    r = c.post("/recruiter/invitations/new", data=data)
    assert r.status_code == 200, r.data[:400]
    return r.data


def test_invitation_email_links_csv_and_one_reminder(site: Site, mail_app: Flask, smtp) -> None:
    inbox, _ = smtp
    c = recruiter(mail_app, site)
    page = invite_page(c, "Eve Example, eve@example.test\nNo Mail Person")
    assert b"1 invitation e-mail sent." in page
    links = re.findall(rb"https://tests\.example/t/[A-Za-z0-9_-]+", page)
    assert len(set(links)) == 2
    # the CSV download carries the same links, names and e-mail addresses
    href = re.search(rb'download="invitations.csv" href="data:text/csv;charset=utf-8,([^"]+)"',
                     page).group(1).decode()
    rows = list(csv.DictReader(io.StringIO(urllib.parse.unquote(href.replace("&amp;", "&")))))
    assert [(r["name"], r["email"]) for r in rows] == [("Eve Example", "eve@example.test"),
                                                     ("No Mail Person", "")]
    assert {r["link"].encode() for r in rows} == set(links)
    # the e-mail reached the local SMTP server with Eve's link
    (rcpt, text), = inbox.messages
    assert rcpt == ["eve@example.test"]
    assert "Hello Eve Example," in text and rows[0]["link"] in text
    assert "Back-End Engineer" in text.splitlines()[0]
    emailed = site.sql("SELECT count(*) FROM invitations WHERE emailed_at IS NOT NULL")[0][0]
    assert emailed == 1

    # a reminder goes out once when expiry is near, without repeating the link
    from web.db import database
    from web.services.invitations import send_reminders

    with mail_app.app_context():
        assert send_reminders(database().engine) == 0  # 7 days left: not yet
        site.sql("UPDATE invitations SET expires_at = :t WHERE emailed_at IS NOT NULL",
                 t=dt.datetime.now(dt.UTC) + dt.timedelta(hours=5))
        assert send_reminders(database().engine) == 1
        assert send_reminders(database().engine) == 0  # never twice
    rcpt, text = inbox.messages[-1]
    assert rcpt == ["eve@example.test"] and "Reminder" in text
    assert "/t/" not in text  # the link is not sent again in clear


def test_invitations_without_mail_server_are_still_created(site: Site, app: Flask) -> None:
    c = recruiter(app, site)
    page = invite_page(c, "Frank Nomail, frank@example.test")
    assert b"e-mail is not configured on this server" in page
    assert len(re.findall(rb"/t/[A-Za-z0-9_-]{20,}", page)) >= 1


def test_bad_invitation_line_names_the_line(site: Site, app: Flask) -> None:
    c = recruiter(app, site)
    form = c.get("/recruiter/invitations/new")
    r = c.post("/recruiter/invitations/new", data={
        "csrf_token": csrf_of(form.data), "assessment": "1",
        "names": "Ok Person\nBad Person, not an@address here"})
    assert r.status_code == 422 and b"line 2" in r.data


def _invitation_of(site: Site, token: str) -> int:
    from item_bank.security import hash_token

    return int(site.sql("SELECT id FROM invitations WHERE token_hash = :h",
                        h=hash_token(token))[0][0])


def _grant(c: FlaskClient, invitation: int, extra: int, minutes: int, note: str = "") -> None:
    page = c.get(f"/recruiter/invitations/{invitation}/accommodations")
    assert page.status_code == 200
    r = c.post(f"/recruiter/invitations/{invitation}/accommodations",
               data={"csrf_token": csrf_of(page.data), "extra_time_percent": str(extra),
                     "break_minutes": str(minutes), "note": note})
    assert r.status_code == 302, r.data[:300]


def _deadline(site: Site, sid: int) -> dt.datetime:
    raw = site.sql("SELECT deadline FROM test_sessions WHERE id = :s", s=sid)[0][0]
    value = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(str(raw))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_accommodations_extra_time_and_a_break_are_recorded_with_the_result(
        site: Site, app: Flask, client: FlaskClient) -> None:
    (token,) = site.invite(candidate_names=["Grace Accommodated"])
    inv = _invitation_of(site, token)
    staff = recruiter(app, site)
    _grant(staff, inv, 50, 5, "dyslexia")
    welcome = client.get(f"/t/{token}")
    assert b"Time limit: 90 minutes" in welcome.data  # 60 min + 50 %
    assert b"breaks of up to 5 minutes" in welcome.data
    csrf = start(client, token)
    sid = session_id_of(site, token)
    started = site.sql("SELECT started_at FROM test_sessions WHERE id = :s", s=sid)[0][0]
    started = started if isinstance(started, dt.datetime) else \
        dt.datetime.fromisoformat(str(started))
    started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
    assert abs((_deadline(site, sid) - started) - dt.timedelta(minutes=90)) < ONE_SECOND

    item, options, page = pending(client, token)
    assert b"Take a break" in page
    r = client.post(f"/t/{token}/break", data={"csrf_token": csrf})
    assert r.status_code == 302
    on_break = client.get(f"/t/{token}/question")
    assert b"You are on a break" in on_break.data and b'name="answer"' not in on_break.data
    # two minutes pass on the break: the clock stood still, so the deadline moves by them
    before = _deadline(site, sid)
    site.sql("UPDATE accommodations SET break_started_at = :t WHERE invitation_id = :i",
             t=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120), i=inv)
    r = client.post(f"/t/{token}/resume", data={"csrf_token": csrf})
    assert r.status_code == 302
    moved = (_deadline(site, sid) - before).total_seconds()
    assert 120 <= moved < 150
    # a break longer than what is left only counts up to the allowance (5 min in all)
    client.post(f"/t/{token}/break", data={"csrf_token": csrf})
    site.sql("UPDATE accommodations SET break_started_at = :t WHERE invitation_id = :i",
             t=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), i=inv)
    item, options, page = pending(client, token)  # allowance used up: the question again
    assert b"Take a break" not in page
    used = site.sql("SELECT break_used_seconds FROM accommodations WHERE invitation_id = :i",
                    i=inv)[0][0]
    assert used == 300
    assert abs((_deadline(site, sid) - started) - dt.timedelta(minutes=95)) < ONE_SECOND

    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                            "answer": options[0]})
    expire_deadline(site, sid)
    assert client.get(f"/t/{token}/question").headers["Location"].endswith("/done")
    report = staff.get(f"/api/v1/reports/{sid}").get_json()
    assert report["status"] == "timed out"
    assert report["accommodation"] == {"extra_time_percent": 50, "break_minutes": 5,
                                       "break_used_minutes": 5.0, "note": "dyslexia"}
    html = staff.get(f"/recruiter/sessions/{sid}").data
    assert b"+50 % time" in html and b"5.0 min taken" in html and b"dyslexia" in html
    # ended: accommodations can no longer change
    page = staff.get(f"/recruiter/invitations/{inv}/accommodations")
    r = staff.post(f"/recruiter/invitations/{inv}/accommodations",
                   data={"csrf_token": csrf_of(page.data), "extra_time_percent": "100",
                         "break_minutes": "0"})
    assert r.status_code == 422 and b"has ended" in r.data


def test_extra_time_granted_during_a_test_moves_its_deadline(site: Site, app: Flask,
                                                            client: FlaskClient) -> None:
    (token,) = site.invite()
    start(client, token)
    sid = session_id_of(site, token)
    before = _deadline(site, sid)
    _grant(recruiter(app, site), _invitation_of(site, token), 25, 0)
    assert _deadline(site, sid) - before == dt.timedelta(minutes=15)


def test_extra_time_is_a_share_of_the_time_limit_the_test_started_under(
        site: Site, app: Flask, client: FlaskClient) -> None:
    (token,) = site.invite()
    start(client, token)
    sid = session_id_of(site, token)
    aid, started_limit = site.sql("SELECT s.assessment_id, a.time_limit_minutes FROM "
                                  "test_sessions s JOIN assessments a ON a.id = s.assessment_id "
                                  "WHERE s.id = :s", s=sid)[0]
    assert site.sql("SELECT time_limit_minutes FROM test_sessions WHERE id = :s",
                    s=sid)[0][0] == started_limit
    before = _deadline(site, sid)
    # the recruiter doubles the assessment's limit while this test runs: the running test keeps
    # its deadline, and extra time granted now is a share of the limit it started under
    site.sql("UPDATE assessments SET time_limit_minutes = :m WHERE id = :a",
             m=2 * started_limit, a=aid)
    try:
        _grant(recruiter(app, site), _invitation_of(site, token), 25, 0)
    finally:
        site.sql("UPDATE assessments SET time_limit_minutes = :m WHERE id = :a",
                 m=started_limit, a=aid)
    assert _deadline(site, sid) - before == dt.timedelta(minutes=started_limit / 4)


def test_accommodation_form_rejects_bad_values_and_other_organisations(
        site: Site, app: Flask, staff_client) -> None:
    (token,) = site.invite()
    inv = _invitation_of(site, token)
    c = recruiter(app, site)
    page = c.get(f"/recruiter/invitations/{inv}/accommodations")
    r = c.post(f"/recruiter/invitations/{inv}/accommodations",
               data={"csrf_token": csrf_of(page.data), "extra_time_percent": "33",
                     "break_minutes": "5"})
    assert r.status_code == 422 and b"extra_time_percent" in r.data
    r = c.post(f"/recruiter/invitations/{inv}/accommodations",
               data={"csrf_token": csrf_of(page.data), "extra_time_percent": "25",
                     "break_minutes": "-1"})
    assert r.status_code == 422 and b"break_minutes" in r.data
    assert staff_client("other").get(f"/recruiter/invitations/{inv}/accommodations") \
        .status_code == 404
    assert site.sql("SELECT count(*) FROM accommodations WHERE invitation_id = :i",
                    i=inv)[0][0] == 0


def test_revoke_asks_first_and_the_candidate_is_told_the_truth(site: Site, app: Flask,
                                                               client: FlaskClient) -> None:
    (token,) = site.invite(candidate_names=["Ivan Midtest"])
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                            "answer": options[0]})
    inv = _invitation_of(site, token)
    staff = recruiter(app, site)
    listing = staff.get("/recruiter/").data
    assert f"/recruiter/invitations/{inv}/revoke".encode() in listing
    confirm = staff.get(f"/recruiter/invitations/{inv}/revoke")
    assert confirm.status_code == 200
    assert b"Ivan Midtest is taking the test now" in confirm.data
    assert b"1 question answered" in confirm.data
    # nothing happened yet
    assert client.get(f"/t/{token}/question").status_code == 200
    r = staff.post(f"/recruiter/invitations/{inv}/revoke",
                   data={"csrf_token": csrf_of(confirm.data)})
    assert r.status_code == 302
    assert b"test has ended without a result" in staff.get("/recruiter/").data
    done = client.get(f"/t/{token}/done").data
    assert b"Assessment withdrawn" in done and b"No result has been produced" in done
    assert b"results are now available" not in done
    sid = session_id_of(site, token)
    assert len(stored_answers(site, sid)) == 1


def test_every_report_chart_has_the_same_axis(site: Site, app: Flask,
                                              client: FlaskClient) -> None:
    staff = recruiter(app, site)
    axes = []
    for answer_index in (0, 1):
        (token,) = site.invite()
        csrf = start(client, token)
        for _ in range(5):
            item, options, _ = pending(client, token)
            client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                                    "answer": options[answer_index]})
        sid = session_id_of(site, token)
        expire_deadline(site, sid)
        client.get(f"/t/{token}/question")
        svg = staff.get(f"/recruiter/sessions/{sid}").data
        ticks = re.findall(rb'text-anchor="middle" fill="#444">(\d+)</text>', svg)
        axes.append(ticks)
    assert axes[0] == axes[1]
    assert axes[0][0] == b"200" and axes[0][-1] == b"800"


def test_the_scheduler_closes_abandoned_sessions_past_their_deadline(
        site: Site, app: Flask, client: FlaskClient) -> None:
    """A candidate who closed the tab: the result (and its webhook) does not wait for a visit."""
    from web.db import database
    from web.services.invitations import run_maintenance

    (token,) = site.invite()
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                            "answer": options[0]})
    sid = session_id_of(site, token)
    expire_deadline(site, sid)
    with app.app_context():
        run = run_maintenance(database().engine)
    assert run.timed_out >= 1
    assert site.sql("SELECT status FROM test_sessions WHERE id = :s", s=sid)[0][0] == \
        "timed_out"
    assert site.sql("SELECT sum(n_items) FROM skill_results WHERE session_id = :s",
                    s=sid)[0][0] == 1
