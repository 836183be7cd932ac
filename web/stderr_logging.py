"""A logging handler that follows ``sys.stderr`` (kept apart from `web.observability` so the
command line can log without importing Flask, Prometheus or SQLAlchemy)."""

from __future__ import annotations

import logging
import sys


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now, not the one at set-up, unless given a
    ``stream``: commands run in-process one after another (tests, notebooks) never log to a
    replaced or closed stream."""

    def __init__(self, stream=None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self):
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        self._fixed = value if value is not sys.stderr else None
