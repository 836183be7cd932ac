"""Structured logs: request ids (echoed, propagated into jobs), JSON lines, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from tests.web.conftest import Site
from web import observability as obs


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Capture the root logger through the production logging set-up (JSON formatter, request
    id and redaction filters), and restore the previous handlers afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(obs.JsonFormatter())
    handler.addFilter(obs.RequestIdFilter())
    handler.addFilter(obs.RedactingFilter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_request_id_is_echoed_or_generated(client: FlaskClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.9"})
    assert r.headers["X-Request-ID"] == "lb-7f3a.9"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 16 and generated != client.get("/healthz").headers["X-Request-ID"]
    # a header that could forge log lines is replaced, not echoed
    r = client.get("/healthz", headers={"X-Request-ID": 'x" "level": "ERROR'})
    assert r.headers["X-Request-ID"] != 'x" "level": "ERROR'


def test_access_log_is_json_with_route_template_and_no_token(site: Site, client: FlaskClient,
                                                             json_log: io.StringIO) -> None:
    (token,) = site.invite()
    r = client.get(f"/t/{token}", headers={"X-Request-ID": "req-welcome-1"})
    assert r.status_code == 200
    lines = records(json_log)
    access = [x for x in lines if x["logger"] == "proficio.access"]
    assert access, lines
    line = access[-1]
    assert line["request_id"] == "req-welcome-1"
    assert line["route"] == "/t/<token>" and line["method"] == "GET" and line["status"] == 200
    assert line["duration_ms"] >= 0 and line["level"] == "INFO" and "time" in line
    assert token not in json_log.getvalue()


def test_api_flow_logs_no_tokens_or_passwords(site: Site, client: FlaskClient,
                                              json_log: io.StringIO) -> None:
    (token,) = site.invite()
    r = client.post("/api/v1/sessions", json={"invitation": token})
    session = r.get_json()
    client.get(f"/api/v1/sessions/{session['session_id']}",
               headers={"Authorization": f"Bearer {session['token']}"})
    cred = site.info.credentials("recruiter")
    client.post("/login", data={"email": cred.email, "password": cred.password})
    text = json_log.getvalue()
    assert text, "nothing was logged"
    for secret in (token, session["token"], cred.password):
        assert secret not in text


@pytest.mark.parametrize(("message", "secret"), [
    ("Authorization: Bearer abcDEF123-_.xyz", "abcDEF123-_.xyz"),
    ("login failed password=hunter2-long for x", "hunter2-long"),
    ("connect postgresql+psycopg://app:s3cr3t-pw@db:5432/prod", "s3cr3t-pw"),
    ("settings secret_key: 'k3y-value-here'", "k3y-value-here"),
    ("link https://p.example/t/AbCdEfGhIjKlMnOpQrStUvWx0123 opened",
     "AbCdEfGhIjKlMnOpQrStUvWx0123"),
    ("answer_key=b for item X", "answer_key=b"),
])
def test_redaction_masks_secrets_in_messages(message: str, secret: str,
                                             json_log: io.StringIO) -> None:
    logging.getLogger("proficio.test").warning(message)
    logging.getLogger("proficio.test").warning("%s", message)  # arguments are merged first
    (first, second) = records(json_log)
    for line in (first, second):
        assert secret not in line["message"] and "***" in line["message"]


def test_job_log_records_carry_the_enqueuing_request_id(site: Site,
                                                        json_log: io.StringIO) -> None:
    from web import jobs

    q = jobs.queue()
    before = obs.CALIBRATION_JOBS.labels("skipped")._value.get()
    q.huey.immediate = True  # run the task in this thread, through huey's real task path
    try:
        with obs.bind_request_id("req-calibrate-42"):
            jobs.enqueue_calibration(987654321, site.url)  # no such job: logged and skipped
    finally:
        q.huey.immediate = False
    skipped = [x for x in records(json_log) if "not queued" in x["message"]]
    assert skipped and skipped[0]["request_id"] == "req-calibrate-42"
    assert skipped[0]["logger"] == "web.services.calibrations"
    assert obs.CALIBRATION_JOBS.labels("skipped")._value.get() == before + 1
    assert obs.current_request_id() is None  # the binding ended with the block


def test_logging_config_is_valid_for_dictconfig() -> None:
    import logging.config

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        config = obs.logging_config("json", "INFO")
        config["handlers"]["stderr"]["stream"] = stream
        logging.config.dictConfig(config)
        with obs.bind_request_id("cfg-1"):
            logging.getLogger("gunicorn.error").info("Booting worker with pid: %d", 1)
        (line,) = records(stream)
        assert line == {**line, "logger": "gunicorn.error", "request_id": "cfg-1",
                        "message": "Booting worker with pid: 1", "level": "INFO"}
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
