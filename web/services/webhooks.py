"""Signed webhooks: session events pushed to an organisation's applicant-tracking system.

Delivery model (a transactional outbox, at-least-once delivery with an idempotency key):

* `session_event` writes one `WebhookDelivery` row per active webhook of the organisation in
  the *same transaction* that completes, times out or revokes the session. The event exists
  if and only if its change was committed; a unique ``(webhook, event_key)`` makes a second
  emission of the same change impossible.
* `deliver_due` (run every minute by the job queue's scheduler and by ``proficio webhooks
  deliver``) claims due rows with a conditional UPDATE — a lease, so two dispatchers never send
  the same row at once — POSTs them, and records each attempt in the row (the delivery log).
  A 2xx answer marks the row delivered; anything else schedules a retry with exponential
  backoff (`backoff`), until `MAX_ATTEMPTS`, then the row is ``failed`` (a recruiter can
  retry it from the delivery log).
* A dispatcher killed between the POST and the bookkeeping sends the event again once its
  lease ends, with the same ``Proficio-Event-Id``: receivers deduplicate on that id, so every
  event takes effect exactly once.

Signature (the scheme of Stripe's and GitHub's webhooks): header
``Proficio-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``
(RFC 2104 HMAC; FIPS 180-4 SHA-256). Receivers recompute it over the raw body, compare in
constant time and reject old timestamps (replay). docs/recruiter-guide.md has the recipe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from item_bank import db as item_db
from item_bank.models import (
    Assessment,
    CandidateSession,
    Invitation,
    Webhook,
    WebhookDelivery,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Proficio-Signature"
EVENT_ID_HEADER = "Proficio-Event-Id"
EVENT_TYPE_HEADER = "Proficio-Event"
#: Attempts before a delivery is given up (``failed``); with `backoff` that spans ~1.5 days.
MAX_ATTEMPTS = 12
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 6 * 3600.0
#: How long a claimed delivery is reserved for the dispatcher that claimed it.
LEASE_S = 60.0
TIMEOUT_S = 10.0
MAX_URL_LENGTH = 2000


class WebhookNotFound(LookupError):
    """No such webhook in the caller's organisation."""


@dataclass(frozen=True)
class NewWebhook:
    webhook_id: int
    url: str
    secret: str  # shown once


@dataclass(frozen=True)
class DeliveryRun:
    delivered: int
    retried: int
    failed: int


def backoff(attempts: int) -> dt.timedelta:
    """Wait before attempt ``attempts + 1``: 30 s · 2^(attempts − 1), at most 6 h."""
    return dt.timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Proficio-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0
           ) -> bool:
    """The receiver's check (the documented recipe, used by the tests as a receiver would)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def validate_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("field 'url': expected an http:// or https:// address")
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 33 for ch in url):
        raise ValueError("field 'url': too long or contains spaces/control characters")
    if parts.username or parts.password:
        raise ValueError("field 'url': credentials in the address are not allowed; the "
                         "signature authenticates Proficio")
    return url


# -- configuration (organisation-scoped) -------------------------------------------------------


def create_webhook(db: Session, org_id: int, url: str, user_id: int | None = None) -> NewWebhook:
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = Webhook(organisation_id=org_id, url=validate_url(url), secret=secret,
                   created_by_id=user_id)
    db.add(hook)
    db.flush()
    return NewWebhook(hook.id, hook.url, secret)


def webhooks(db: Session, org_id: int) -> list[Webhook]:
    return list(db.scalars(select(Webhook).where(Webhook.organisation_id == org_id,
                                                 Webhook.active.is_(True))
                           .order_by(Webhook.id)))


def _webhook(db: Session, org_id: int, webhook_id: int) -> Webhook:
    hook = db.get(Webhook, webhook_id)
    if hook is None or hook.organisation_id != org_id or not hook.active:
        raise WebhookNotFound("no such webhook")
    return hook


def deactivate_webhook(db: Session, org_id: int, webhook_id: int) -> None:
    """Stop sending to a webhook (its delivery log is kept; pending deliveries are dropped)."""
    hook = _webhook(db, org_id, webhook_id)
    hook.active = False
    db.execute(update(WebhookDelivery)
               .where(WebhookDelivery.webhook_id == hook.id,
                      WebhookDelivery.status == "pending")
               .values(status="failed", last_error="webhook removed"))


def delivery_log(db: Session, org_id: int, limit: int = 100) -> list[WebhookDelivery]:
    return list(db.scalars(select(WebhookDelivery).join(Webhook)
                           .where(Webhook.organisation_id == org_id)
                           .order_by(WebhookDelivery.id.desc()).limit(limit)))


def retry_delivery(db: Session, org_id: int, delivery_id: int) -> None:
    """Send a failed delivery again (same event id) at the next dispatcher run."""
    row = db.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook.organisation_id != org_id or not row.webhook.active:
        raise WebhookNotFound("no such delivery")
    if row.status == "failed":
        row.status = "pending"
        row.attempts = 0
        row.next_attempt_at = utcnow()


# -- events ------------------------------------------------------------------------------------


def session_event(db: Session, row: CandidateSession, event_type: str) -> int:
    """Queue ``event_type`` for ``row`` to every active webhook of its organisation (in the
    caller's transaction); returns how many deliveries were queued."""
    hooks = list(db.scalars(select(Webhook).join(
        Assessment, Assessment.organisation_id == Webhook.organisation_id)
        .where(Assessment.id == row.assessment_id, Webhook.active.is_(True))
        .order_by(Webhook.id)))
    if not hooks:
        return 0
    org_id = hooks[0].organisation_id
    from web.services import forensics, reports

    db.flush()
    if row.status != "in_progress":
        # the payload carries the result as the result endpoint returns it, integrity notes
        # included: judge them now (stored) rather than on the report's first view
        forensics.session_integrity(db, row.id, row.assessment.bank_id)
    report = reports.report_json(reports.report(int(org_id or 0), row.id, db))
    invitation = db.get(Invitation, row.invitation_id)
    now = utcnow()
    for hook in hooks:
        event_id = f"evt_{uuid.uuid4().hex}"
        payload = {"id": event_id, "type": event_type,
                   "created_at": now.isoformat().replace("+00:00", "Z"),
                   "data": {"session_id": row.id,
                            "invitation_id": row.invitation_id,
                            "candidate_email": invitation.candidate.email if invitation else None,
                            "report": report}}
        db.add(WebhookDelivery(webhook_id=hook.id, event_id=event_id,
                               event_key=f"{event_type}:{row.id}", event_type=event_type,
                               payload=payload, next_attempt_at=now))
    db.flush()
    return len(hooks)


def invitation_event(db: Session, invitation: Invitation, event_type: str) -> int:
    """Queue an event about an invitation that has no session (e.g. revoked before start)."""
    hooks = list(db.scalars(select(Webhook).where(
        Webhook.organisation_id == invitation.assessment.organisation_id,
        Webhook.active.is_(True))))
    now = utcnow()
    for hook in hooks:
        event_id = f"evt_{uuid.uuid4().hex}"
        payload = {"id": event_id, "type": event_type,
                   "created_at": now.isoformat().replace("+00:00", "Z"),
                   "data": {"session_id": None, "invitation_id": invitation.id,
                            "candidate_email": invitation.candidate.email,
                            "candidate_public_id": invitation.candidate.public_id,
                            "candidate_name": invitation.candidate.name, "report": None}}
        db.add(WebhookDelivery(webhook_id=hook.id, event_id=event_id,
                               event_key=f"{event_type}:invitation:{invitation.id}",
                               event_type=event_type, payload=payload, next_attempt_at=now))
    db.flush()
    return len(hooks)


# -- delivery ----------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a redirect is a failure
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT_S
         ) -> int:
    """POST ``body``; the HTTP status (exceptions for network failures)."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "Proficio-Webhooks/1", **headers})
    try:
        with _opener.open(req, timeout=timeout) as resp:
            resp.read(1024)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def deliver_due(engine: Engine, *, now: Callable[[], dt.datetime] = utcnow,
                limit: int = 100,
                send: Callable[[str, bytes, dict[str, str]], int] = post) -> DeliveryRun:
    """Send every due delivery once (claimed under a lease); returns what happened."""
    delivered = retried = failed = 0
    with item_db.transaction(engine, write=False) as db:
        due = list(db.scalars(select(WebhookDelivery.id).join(Webhook)
                              .where(WebhookDelivery.status == "pending", Webhook.active.is_(True),
                                     WebhookDelivery.next_attempt_at <= now())
                              .order_by(WebhookDelivery.id).limit(limit)))
    for delivery_id in due:
        claimed_at = now()
        with item_db.transaction(engine) as db:
            won = db.execute(update(WebhookDelivery)
                             .where(WebhookDelivery.id == delivery_id,
                                    WebhookDelivery.status == "pending",
                                    WebhookDelivery.next_attempt_at <= claimed_at)
                             .values(next_attempt_at=claimed_at + dt.timedelta(seconds=LEASE_S)))
            if item_db.rowcount(won) != 1:
                continue  # another dispatcher has it
            row = db.get(WebhookDelivery, delivery_id)
            assert row is not None
            url, secret = row.webhook.url, row.webhook.secret
            body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
            event_id, event_type = row.event_id, row.event_type
        stamp = int(now().timestamp())
        headers = {SIGNATURE_HEADER: sign(secret, stamp, body), EVENT_ID_HEADER: event_id,
                   EVENT_TYPE_HEADER: event_type}
        status: int | None = None
        error: str | None = None
        try:
            status = send(url, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        finished = now()
        with item_db.transaction(engine) as db:
            row = db.get(WebhookDelivery, delivery_id)
            assert row is not None
            row.attempts += 1
            row.last_attempt_at = finished
            row.last_status_code = status
            row.last_error = error
            if error is None:
                row.status, row.delivered_at = "delivered", finished
                delivered += 1
            elif row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                failed += 1
            else:
                row.next_attempt_at = finished + backoff(row.attempts)
                retried += 1
        if error:
            log.warning("webhook delivery %s (%s) attempt failed: %s", event_id, event_type,
                        error)
    return DeliveryRun(delivered, retried, failed)


def next_attempt(row: WebhookDelivery) -> dt.datetime | None:
    return as_utc(row.next_attempt_at) if row.status == "pending" else None
