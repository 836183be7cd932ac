"""The web fixtures (real demo database per backend, real app, signed-in clients), shared with
tests/web, plus helpers for hostile input."""

from __future__ import annotations

from tests.web.conftest import (  # noqa: F401  (fixtures are found by name)
    WEB_BACKENDS,
    Site,
    app,
    client,
    csrf_of,
    login,
    new_site,
    site,
    staff_client,
)
