"""Refuse NUL characters in the URL, the query string and form fields before any view runs.

PostgreSQL text cannot hold U+0000: a query comparing a column with such a string fails with a
``DataError``, which the app would answer as a 503 "try again" although the request, not the
database, is at fault (found for the login e-mail, item ids in paths, and e-mails in invitation
CSV uploads). No legitimate input of Proficio contains a NUL, so the request is refused with a
400 naming the field. JSON bodies are validated by their schemas (control characters refused in
names and item text).
"""

from __future__ import annotations

from flask import Flask, abort, request

NUL = "\x00"


def _refuse_nul() -> None:
    if NUL in request.path:
        abort(400, description="the URL contains a NUL character")
    for where, values in (("query parameter", request.args), ("field", request.form)):
        for key in values:
            if NUL in key or any(NUL in v for v in values.getlist(key)):
                abort(400, description=f"{where} {key.replace(NUL, '')!r} contains a NUL "
                                       "character")


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul)
