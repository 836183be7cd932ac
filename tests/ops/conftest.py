"""The web fixtures (a real demo database per backend, the real app on it) for the ops tests."""

from tests.web.conftest import app, client, site  # noqa: F401  (pytest fixtures)
