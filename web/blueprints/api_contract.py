"""Pieces of the JSON API's contract shared by its blueprints.

* `UtcDateTime`: timestamps are stored in UTC, but SQLite hands them back without a time zone,
  which serializes as ``2026-01-01T10:00:00`` — not an RFC 3339 ``date-time`` as the OpenAPI
  document promises. This field writes every timestamp with its UTC offset.
* `errors`: declares the error responses an operation really answers with (found by fuzzing the
  API from its own document; see tests/reliability/fuzz.py), all in the uniform error body
  ``{"code", "status", "message", "errors"?}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask_smorest import Blueprint
from flask_smorest.error_handler import ErrorSchema
from marshmallow import fields

#: Error statuses and what they mean in this API (the text goes into the OpenAPI document).
ERROR_MEANINGS = {
    400: "Malformed request: body that is not JSON, a NUL character in the URL or query, or a "
         "missing/invalid X-CSRFToken header on a staff write",
    401: "Not authenticated: no staff login, or no/malformed candidate bearer token",
    403: "Signed in, but this role may not use this operation",
    404: "No such resource for this caller (other organisations' rows are not found either)",
    409: "Conflict with the current state (not the pending question, session closed, ...)",
    410: "The invitation is expired, used up or withdrawn",
    413: "Request body larger than PROFICIO_MAX_UPLOAD_MB",
    422: "The body or query failed validation; 'errors' names the fields",
    429: "Too many requests; see the Retry-After header",
}


class UtcDateTime(fields.DateTime):
    """ISO 8601 timestamp with a time zone; naive values are taken as UTC."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any,
                   **kwargs: Any) -> str | float | None:  # float: the "timestamp" formats
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def errors(blp: Blueprint, *codes: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator declaring ``codes`` as documented error responses of a view of ``blp``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        for code in codes:
            view = blp.alt_response(
                code, schema=ErrorSchema,
                description=f"{HTTPStatus(code).phrase}: {ERROR_MEANINGS[code]}")(view)
        return view

    return decorate
