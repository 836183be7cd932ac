"""Invitations reaching candidates: the links as CSV, the invitation e-mail, the reminder before
expiry, and the scheduled maintenance that sends reminders and webhook deliveries.

The web pages and the CLI call these same functions. E-mail goes through `web.mail.send_mail`
(SMTP from the environment); the message is in the assessment's language (English when it has
none), since it is candidate-facing text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from sqlalchemy import Engine, select, update

from item_bank import db as item_db
from item_bank.models import Assessment, Candidate, Invitation, as_utc, utcnow
from web.mail import MailError, MailNotConfigured, send_mail
from web.services import webhooks
from web.services.staff import NewInvitation

log = logging.getLogger(__name__)

#: A reminder goes out once, this long before the invitation expires (PROFICIO_REMINDER_HOURS).
DEFAULT_REMINDER_HOURS = 48


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection (OWASP CSV injection guidance)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def links_csv(issued: Sequence[NewInvitation], emails: Sequence[str | None] = ()) -> str:
    """``candidate_id,name,email,link,expires_at``: one row per new invitation (the only
    moment the links exist: Proficio keeps only their hashes)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["candidate_id", "name", "email", "link", "expires_at"])
    padded = list(emails) + [None] * (len(issued) - len(emails))
    for inv, email in zip(issued, padded, strict=True):
        w.writerow([inv.candidate_public_id, _csv_safe(inv.name), _csv_safe(email), inv.link,
                    as_utc(inv.expires_at).isoformat()])
    return out.getvalue()


@dataclass(frozen=True)
class MailOutcome:
    sent: int
    problems: tuple[str, ...]  # one line per invitation that could not be e-mailed


def _language(db_session, assessment_id: int) -> str:
    return db_session.scalar(select(Assessment.language)
                             .where(Assessment.id == assessment_id)) or "en"


def _invitation_text(assessment: str, name: str | None, link: str,
                     expires: dt.datetime) -> tuple[str, str]:
    subject = _("Your invitation to the %(assessment)s assessment", assessment=assessment)
    greeting = _("Hello %(name)s,", name=name) if name else _("Hello,")
    body = "\n\n".join([
        greeting,
        _("you are invited to take the %(assessment)s assessment. It is an adaptive test: "
          "each question is chosen to match your previous answers, so some will feel "
          "difficult — that is expected.", assessment=assessment),
        _("Open your personal link to start (it works once, for you only; you can leave and "
          "come back to it):"),
        link,
        _("The link is valid until %(date)s.", date=format_date(expires, "long")),
    ])
    return subject, body + "\n"


def email_invitations(issued: Sequence[NewInvitation], emails: Sequence[str | None],
                      assessment_id: int) -> MailOutcome:
    """Send each new invitation that has an e-mail address its link; records ``emailed_at``.

    Needs an app context (the mail settings). Nothing is sent when e-mail is not configured.
    """
    from web.db import unit_of_work

    sent, problems = 0, []
    with unit_of_work() as db:
        assessment = db.get(Assessment, assessment_id)
        assert assessment is not None
        name, language = assessment.name, assessment.language or "en"
    for inv, email in zip(issued, emails, strict=False):
        if not email:
            continue
        with force_locale(language):
            subject, text = _invitation_text(name, inv.name, inv.link, as_utc(inv.expires_at))
        try:
            send_mail(email, subject, text)
        except MailNotConfigured:
            problems.append("e-mail is not configured on this server (MAIL_SERVER); send the "
                            "links yourself")
            break
        except (MailError, ValueError) as exc:
            problems.append(f"{inv.name or inv.candidate_public_id[:12]} <{email}>: {exc}")
            continue
        with unit_of_work() as db:
            db.execute(update(Invitation).where(Invitation.id == inv.invitation_id)
                       .values(emailed_at=utcnow()))
        sent += 1
    return MailOutcome(sent, tuple(problems))


def reminder_hours() -> float:
    raw = current_app.config.get("PROFICIO_REMINDER_HOURS") or DEFAULT_REMINDER_HOURS
    try:
        hours = float(raw)
    except (TypeError, ValueError):
        hours = -1.0
    if not 0 < hours <= 24 * 365:
        raise ValueError(f"PROFICIO_REMINDER_HOURS must be a number of hours in (0, 8760], "
                         f"got {raw!r}")
    return hours


def send_reminders(engine: Engine, now: dt.datetime | None = None) -> int:
    """One reminder per e-mailed, unstarted invitation that expires within the reminder window.

    Each is claimed with a conditional UPDATE before sending, so two schedulers never remind
    twice; a failed send releases the claim for the next run. Returns how many were sent.
    """
    now = now or utcnow()
    horizon = now + dt.timedelta(hours=reminder_hours())
    with item_db.transaction(engine, write=False) as db:
        rows = db.execute(
            select(Invitation.id, Invitation.expires_at, Invitation.emailed_at, Candidate.email,
                   Candidate.name, Assessment.name, Assessment.language)
            .join(Candidate, Invitation.candidate_id == Candidate.id)
            .join(Assessment, Invitation.assessment_id == Assessment.id)
            .where(Invitation.status == "pending", Invitation.emailed_at.is_not(None),
                   Invitation.reminded_at.is_(None), Invitation.expires_at > now,
                   Invitation.expires_at <= horizon, Candidate.email.is_not(None))).all()
    sent = 0
    for inv_id, expires, emailed, email, name, assessment, language in rows:
        if emailed is None or email is None:  # the WHERE above selects only rows with both
            raise RuntimeError(f"invitation {inv_id}: no e-mail address or e-mail date")
        with item_db.transaction(engine) as db:
            won = db.execute(update(Invitation).where(Invitation.id == inv_id,
                                                      Invitation.reminded_at.is_(None))
                             .values(reminded_at=now))
            if item_db.rowcount(won) != 1:
                continue
        with force_locale(language or "en"):
            subject = _("Reminder: your invitation to the %(assessment)s assessment expires "
                        "soon", assessment=assessment)
            text = "\n\n".join([
                _("Hello %(name)s,", name=name) if name else _("Hello,"),
                _("your invitation to take the %(assessment)s assessment expires on "
                  "%(date)s and you have not started it yet.", assessment=assessment,
                  date=format_date(as_utc(expires), "long")),
                _("Please use the personal link from our e-mail of %(date)s. For your "
                  "security the link is not repeated here; if you cannot find it, ask the "
                  "organisation that invited you for a new one.",
                  date=format_date(as_utc(emailed), "long")),
            ]) + "\n"
        try:
            send_mail(email, subject, text)
            sent += 1
        except (MailError, MailNotConfigured, ValueError) as exc:
            from web.services.privacy import redact_addresses  # the relay may name them

            log.warning("reminder for invitation %s not sent: %s", inv_id,
                        redact_addresses(str(exc)))
            with item_db.transaction(engine) as db:
                db.execute(update(Invitation).where(Invitation.id == inv_id)
                           .values(reminded_at=None))
            if isinstance(exc, MailNotConfigured):
                break
    return sent


@dataclass(frozen=True)
class MaintenanceRun:
    timed_out: int
    reminders: int
    deliveries: webhooks.DeliveryRun


def run_maintenance(engine: Engine) -> MaintenanceRun:
    """What the scheduler runs every minute (in an app context: mail settings, sessions):
    close sessions past their deadline, send due reminders, deliver due webhook events."""
    from web.services.candidate import close_overdue_sessions

    timed_out = close_overdue_sessions()
    reminders = 0
    if current_app.config.get("MAIL_SERVER"):
        reminders = send_reminders(engine)
    return MaintenanceRun(timed_out, reminders, webhooks.deliver_due(engine))
