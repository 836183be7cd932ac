"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis).

Used by ``tests/reliability/test_fuzz_api.py`` (a few hundred examples, in ``make test``) and by
``benchmarks/bench_fuzz_api.py`` (thousands, figures in benchmarks/RESULTS.md).

Every operation of ``/api/openapi.json`` is exercised under four identities: anonymous, a
candidate holding the bearer token of a real session (the session id in the path is that
session's), a signed-in recruiter and a signed-in psychometrician (cookie + ``X-CSRFToken``).
Each response must pass schemathesis's checks (no 5xx, status code, content type, headers and
body conforming to the document) and one stricter check of ours: the status code must be
declared explicitly by the operation (the catch-all ``default`` does not count), so the
document lists the errors that really occur.

Schemathesis: Hatfield-Dodds & Dygalo (2022), "Deriving semantics-aware fuzzers from web API
schemas", ICSE-Companion; https://schemathesis.readthedocs.io (Python API: ``from_wsgi``,
``Case.call``/``Case.validate_response``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.core.failures import FailureGroup

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: One User-Agent for the sign-in and the generated calls: Flask-Login's "strong" session
#: protection drops a session whose User-Agent changes.
USER_AGENT = "proficio-fuzz"
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


@dataclass(frozen=True)
class Identity:
    """Who sends the generated requests; in about half the cases the path parameters and body
    fields named in the overrides take real values (a real session, invitation, assessment), so
    the fuzz reaches the working paths and not only the refusals."""

    name: str
    client: FlaskClient
    headers: dict[str, str] = field(default_factory=dict)
    path_overrides: dict[str, int] = field(default_factory=dict)
    body_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class FuzzReport:
    """Counts per identity and operation, and the first failures (message per distinct kind)."""

    requests: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def n_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def n_5xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


def declared_explicitly(operation: Any, status: int) -> bool:
    """True when the operation's responses name ``status`` itself (not only ``default``)."""
    responses = operation.definition.raw.get("responses", {})
    return str(status) in responses or f"{str(status)[0]}XX" in responses


def login(client: FlaskClient, email: str, password: str) -> str:
    """Sign in through the login form; returns the CSRF token for API writes."""
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    r = client.post("/login", data={"csrf_token": token, "email": email, "password": password})
    if r.status_code != 302:
        raise RuntimeError(f"login of {email} failed: {r.status_code}")
    # sign-in issues a new token (the one above no longer passes); any signed-in page has it
    page = client.get("/account").get_data(as_text=True)
    match = CSRF.search(page)
    return match.group(1) if match else token


def fuzz(app: Flask, identities: list[Identity], *, max_examples: int, seed: int = 0,
         modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE,),
         on_case: Callable[[str, str, int], None] | None = None) -> FuzzReport:
    """Run ``max_examples`` generated cases per operation, identity and generation mode
    (positive: valid by the document; negative: violating it, which must be refused with a
    4xx); never raises on a failed check (failures are collected in the report)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in modes:
            for who in identities:
                _fuzz_operation(operation, label, who, mode, max_examples, seed, report, on_case)
    return report


def _fuzz_operation(operation: Any, label: str, who: Identity, mode: GenerationMode,
                    max_examples: int, seed: int, report: FuzzReport,
                    on_case: Callable[[str, str, int], None] | None) -> None:
    seen: set[str] = set()

    @hypothesis_seed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=operation.as_strategy(generation_mode=mode), real_ids=st.booleans())
    def run(case: Any, real_ids: bool) -> None:
        negative = mode is GenerationMode.NEGATIVE  # overrides would repair the broken input
        if not negative and case.path_parameters is not None and (who.path_overrides and
                                                 (real_ids or who.name == "candidate")):
            for key, value in who.path_overrides.items():
                if key in case.path_parameters:
                    case.path_parameters[key] = value
        if not negative and real_ids and isinstance(case.body, dict):
            for key, value in who.body_overrides.items():
                if key in case.body:
                    case.body[key] = value
        response = case.call(session=who.client,
                             headers={"User-Agent": USER_AGENT, **who.headers})
        report.requests[(who.name, label)] += 1
        report.statuses[response.status_code] += 1
        if on_case is not None:
            on_case(who.name, label, response.status_code)
        problems = []
        try:
            case.validate_response(response, checks=CHECKS if mode is GenerationMode.POSITIVE
                                   else [*CHECKS, st_checks.negative_data_rejection])
        except FailureGroup as group:  # one entry per failed check
            problems.extend(f"{f.title}: {f.message.strip()[:300]}" for f in group.exceptions)
        if not declared_explicitly(operation, response.status_code):
            problems.append(f"status {response.status_code} is not declared")
        for problem in problems:
            key = f"{who.name} {label} ({mode.value}): {problem}"
            if key not in seen:
                seen.add(key)
                body = response.content[:300].decode("utf-8", "replace")
                report.failures.append(f"{key} [{case.method} {case.formatted_path} "
                                       f"body={case.body!r:.200}] -> {body}")

    try:
        run()
    except Unsatisfiable:  # nothing in the operation can be made invalid (no parameters, no body)
        if mode is GenerationMode.POSITIVE:
            raise
