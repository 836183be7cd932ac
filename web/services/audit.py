"""The audit log of staff actions: who did what, to what, when — per organisation.

Every action is written by `record`, inside the caller's transaction where there is one (so the
event and the change commit or roll back together). Admins of an organisation read its events
(`events`) and export them (`export_csv`, `export_json`); no one reads another organisation's.

Actions (``action``): ``login``, ``login.oidc``, ``password.changed``, ``password.reset``,
``password.reset_requested``, ``totp.enabled``, ``totp.disabled``, ``recovery_code.used``,
``staff.created``, ``staff.role_changed``, ``staff.password_set``, ``invitations.created``,
``invitation.revoked``, ``bank.imported``, ``calibration.published``,
``calibration.rolled_back``, ``item.status_changed``; issue 21: ``result.reviewed``,
``result.set_aside``, ``candidate.erased``, ``candidates.erased_by_retention``,
``privacy.settings_changed``; issue 17: ``item_alarm.dismissed``, ``item_alarm.held``,
``item_alarm.retired`` (a watch-list decision; holding or retiring changes the item's status);
issue 22: ``skill.created``, ``skill.updated``, ``item.media_added``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from item_bank.account_models import AuditEvent
from item_bank.models import StaffUser, as_utc, utcnow

#: The actor label of changes made with the ``proficio`` command (no staff account).
COMMAND_LINE = "command line"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: Largest export in one file (newest first); older events are reachable with ``before``.
MAX_EXPORT = 100_000
MAX_TARGET = 500
#: Leading characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    entries: tuple[AuditEntry, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def record(session: Session, *, actor: StaffUser | None, action: str, target: str,
           detail: Mapping[str, Any] | None = None,
           organisation_id: int | None = None) -> AuditEvent:
    """Add one audit event to ``session`` (committed with the caller's transaction).

    ``actor`` is the staff member acting (None: the command line, which then must name the
    ``organisation_id`` the change belongs to, or None for installation-wide changes such as
    the shared item bank). ``detail`` must be JSON-serialisable; it never holds secrets.
    """
    org = organisation_id if organisation_id is not None else \
        (actor.organisation_id if actor is not None else None)
    event = AuditEvent(at=utcnow(), organisation_id=org,
                       actor_id=actor.id if actor is not None else None,
                       actor=actor.email if actor is not None else COMMAND_LINE,
                       action=action, target=str(target)[:MAX_TARGET],
                       detail=json.loads(json.dumps(dict(detail or {}), default=str)))
    session.add(event)
    session.flush()
    return event


def _entry(e: AuditEvent) -> AuditEntry:
    return AuditEntry(e.id, as_utc(e.at), e.actor, e.action, e.target, dict(e.detail or {}))


def events(session: Session, org_id: int, *, page: int = 1, per_page: int = PAGE_SIZE,
           action: str | None = None) -> AuditPage:
    """One page of the organisation's events, newest first."""
    per_page = min(max(1, per_page), MAX_PAGE_SIZE)
    page = max(1, page)
    where = [AuditEvent.organisation_id == org_id]
    if action:
        where.append(AuditEvent.action == action)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    rows = session.scalars(select(AuditEvent).where(*where)
                           .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return AuditPage(tuple(_entry(e) for e in rows), page, per_page, total)


def actions(session: Session, org_id: int) -> list[str]:
    """The distinct actions recorded for the organisation (for the filter)."""
    return list(session.scalars(select(AuditEvent.action).distinct()
                                .where(AuditEvent.organisation_id == org_id)
                                .order_by(AuditEvent.action)))


def _all(session: Session, org_id: int) -> Iterator[AuditEntry]:
    stmt = (select(AuditEvent).where(AuditEvent.organisation_id == org_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(MAX_EXPORT)
            .execution_options(yield_per=1000))
    for e in session.scalars(stmt):
        yield _entry(e)


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text (a leading ``'`` before formula characters)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(session: Session, org_id: int) -> str:
    """Columns ``id, at, actor, action, target, detail`` (detail as JSON), newest first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "at", "actor", "action", "target", "detail"])
    for e in _all(session, org_id):
        writer.writerow([e.id, e.at.isoformat(), _cell(e.actor), _cell(e.action),
                         _cell(e.target), _cell(json.dumps(e.detail, sort_keys=True))])
    return out.getvalue()


def export_json(session: Session, org_id: int) -> list[dict[str, Any]]:
    return [{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
             "target": e.target, "detail": e.detail} for e in _all(session, org_id)]


def record_by_id(session: Session, user_id: int, *, action: str, target: str,
                 detail: Mapping[str, Any] | None = None) -> AuditEvent:
    """`record` for the staff member with id ``user_id`` (the signed-in user of a view)."""
    return record(session, actor=session.get(StaffUser, user_id), action=action, target=target,
                  detail=detail)


def log(user_id: int, action: str, target: str,
        detail: Mapping[str, Any] | None = None) -> None:
    """`record` in its own transaction, for views whose change a service already committed."""
    from web.db import unit_of_work

    with unit_of_work() as session:
        record_by_id(session, user_id, action=action, target=target, detail=detail)


def import_detail(report: Any) -> dict[str, Any]:
    """The counts of a bank import (`item_bank.repository.ImportReport`) for the log."""
    detail = {k: getattr(report, k) for k in ("skills_created", "items_created", "items_updated",
                                              "parameter_versions", "calibration_run_id")
              if hasattr(report, k)}
    if getattr(report, "skipped", ()):
        detail["items_skipped"] = len(report.skipped)
    return detail
