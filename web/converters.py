"""URL converters.

Every ``<int:…>`` in a route is a database id. Werkzeug's ``int`` accepts any number of digits,
and PostgreSQL refuses an id beyond its ``integer`` range with a ``DataError`` (answered as a
503 "try again" page, although nothing is wrong with the database). `DatabaseId` bounds the
value, so a path such as ``/api/v1/reports/99999999999`` simply does not match: a 404, like any
other id that is not there. flask-smorest documents the bound (``maximum``) in the OpenAPI
document because the class derives from Werkzeug's ``IntegerConverter``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

#: Largest value of a PostgreSQL ``integer`` (and of the ids SQLite hands out here).
MAX_ID = 2**31 - 1


class DatabaseId(IntegerConverter):
    """``int`` path parameter in ``[0, MAX_ID]``."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
