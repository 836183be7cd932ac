"""Input refused before any view runs, and the parsing helpers views share.

* NUL characters in the URL, the query string and form fields. PostgreSQL text cannot hold
  U+0000: a query comparing a column with such a string fails with a ``DataError``, which the
  app would answer as a 503 "try again" although the request, not the database, is at fault
  (found for the login e-mail, item ids in paths, and e-mails in invitation CSV uploads). No
  legitimate input of Proficio contains a NUL, so the request is refused with a 400 naming the
  field.
* JSON bodies nested deeper than `MAX_JSON_DEPTH`. Python's ``json`` parser recurses once per
  level: a body of 100,000 ``[`` raised ``RecursionError`` (a 500 with a 3 KB traceback, also
  for anonymous callers, before any authentication). The depth is measured by one linear scan
  of the body (strings skipped) and the request refused with a 400 before anything parses it.
  No Proficio document nests deeper than 6 levels.
* Query-string ids (`query_id`): ASCII digits within the database's id range. ``str.isdigit``
  accepts ``²`` (then ``int`` fails: a 500), and an id beyond SQLite's 64-bit or PostgreSQL's
  32-bit integers failed in the driver (a 500 on SQLite, a 503 "try again" on PostgreSQL).

JSON bodies are otherwise validated by their schemas (control characters refused in names and
item text).
"""

from __future__ import annotations

import re

from flask import Flask, abort, request

from web.converters import MAX_ID

NUL = "\x00"
#: Deepest nesting of arrays/objects accepted in a JSON body.
MAX_JSON_DEPTH = 64
#: A JSON string (skipped whole) or a bracket.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


_FORM_MIMETYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _refuse_nul() -> None:
    if NUL in request.path:
        abort(400, description="the URL contains a NUL character")
    sources = [("query parameter", request.args)]
    if request.mimetype in _FORM_MIMETYPES:  # werkzeug parses no other body into ``form``
        sources.append(("field", request.form))
    for where, values in sources:
        for key in values:
            if NUL in key or any(NUL in v for v in values.getlist(key)):
                abort(400, description=f"{where} {key.replace(NUL, '')!r} contains a NUL "
                                       "character")


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of the arrays/objects in ``body`` (a JSON text), counted up to ``limit + 1``
    (the scan stops there: linear in the body, never recursive)."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(body):
        tok = match.group()
        if tok in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif tok in (b"]", b"}"):
            depth = max(0, depth - 1)
    return deepest


def _refuse_deep_json() -> None:
    if not request.is_json:
        return
    body = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH (413 beyond it)
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and \
            json_depth(body) > MAX_JSON_DEPTH:
        abort(400, description=f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


def query_id(name: str) -> int | None:
    """The query parameter ``name`` as a database id; None when absent or empty.

    Not ASCII digits → 400 naming the parameter; beyond the id range → 404 (no such row), like
    an out-of-range id in a path (`web.converters.DatabaseId`)."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        abort(400, description=f"query parameter {name!r} must be a number")
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
        abort(404)
    return int(digits)


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul)
    app.before_request(_refuse_deep_json)
