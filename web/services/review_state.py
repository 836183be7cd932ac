"""A result's current human review (the newest `ResultReview` row), read by the report and
written by `web.services.oversight` (kept apart so that the report does not import oversight,
which builds on the report)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from item_bank.accountability_models import ResultReview

STATUS_LABELS = {"reviewed": "Reviewed", "set_aside": "Set aside"}


@dataclass(frozen=True)
class Review:
    status: str
    reason: str
    reviewer: str
    at: dt.datetime

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


def current_review(db: Session, session_id: int) -> Review | None:
    row = db.scalar(select(ResultReview).where(ResultReview.session_id == session_id)
                    .order_by(ResultReview.id.desc()).limit(1))
    return None if row is None else Review(row.status, row.reason, row.reviewer, row.created_at)
