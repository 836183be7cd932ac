"""``proficio config check``: effective configuration, masking, exit status, completeness."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.web.conftest import Site
from web.cli import main
from web.commands.config import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "x9Fq2LrT7vK0pW3sZ8mB1nC6dH4jE5gA"
VARIABLE_NAMES = [v.name for v in VARIABLES]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in VARIABLE_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path / "instance"))
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["config", "check", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_development_defaults_are_fine(clean_env: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys)
    assert code == 0, out
    assert "configuration OK" in out
    for name in VARIABLE_NAMES:
        assert name in out


def test_unsafe_production_exits_nonzero_and_names_each_problem(
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("PROFICIO_ENV", "production")
    clean_env.setenv("SECRET_KEY", "changeme")
    clean_env.setenv("SESSION_COOKIE_SECURE", "0")
    code, out = run(capsys)
    assert code == 1
    unsafe = [line for line in out.splitlines() if line.startswith("UNSAFE: ")]
    assert any("SECRET_KEY" in line for line in unsafe)
    assert any("SESSION_COOKIE_SECURE" in line for line in unsafe)
    assert any("RATELIMIT_STORAGE_URI" in line for line in unsafe)
    assert "changeme" not in out


def test_safe_production_passes_with_secrets_masked(clean_env: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("PROFICIO_ENV", "production")
    clean_env.setenv("SECRET_KEY", GOOD_SECRET)
    clean_env.setenv("DATABASE_URL", "postgresql+psycopg://app:db-pass-123@db.internal/proficio")
    clean_env.setenv("PROFICIO_QUEUE_URL", "redis://:queue-pass-456@redis.internal:6379/0")
    clean_env.setenv("RATELIMIT_STORAGE_URI", "redis://:queue-pass-456@redis.internal:6379/1")
    clean_env.setenv("PROFICIO_METRICS_TOKEN", "metrics-token-789")
    code, out = run(capsys, "--json")
    assert code == 0, out
    for secret in (GOOD_SECRET, "db-pass-123", "queue-pass-456", "metrics-token-789"):
        assert secret not in out
    doc = json.loads(out)
    values = {row["name"]: row for row in doc["variables"]}
    assert values["SECRET_KEY"]["value"] == "*** (set)"
    assert values["DATABASE_URL"]["value"] == \
        "postgresql+psycopg://app:***@db.internal/proficio"
    assert values["PROFICIO_LOG_FORMAT"] == {"name": "PROFICIO_LOG_FORMAT", "value": "json",
                                             "source": "default"}
    assert doc["problems"] == [] and doc["ok"] is True


def test_unparseable_value_is_a_one_line_error(clean_env: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("PROFICIO_ENV", "prod")
    code, out = run(capsys)
    assert code == 2
    assert out.strip().count("\n") == 0 and "PROFICIO_ENV" in out


def test_connect_checks_the_real_database(site: Site, clean_env: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    clean_env.setenv("DATABASE_URL", site.url)
    code, out = run(capsys, "--connect", "--json")
    assert code == 0, out
    checks = {c["name"]: c["ok"] for c in json.loads(out)["checks"]}
    assert checks == {"database": True, "schema": True, "queue": True}
    missing = tmp_path / "missing.sqlite3"
    clean_env.setenv("DATABASE_URL", f"sqlite:///{missing}")
    code, out = run(capsys, "--connect")
    assert code == 1 and "check database: FAILED" in out
    assert not missing.exists()  # checking does not create an empty database


def test_every_variable_the_code_reads_is_listed() -> None:
    read: set[str] = set()
    for path in [ROOT / "web" / "config.py", ROOT / "web" / "jobs.py",
                 ROOT / "web" / "commands" / "serve.py"]:
        read |= set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z_]+)["']""",
                               path.read_text()))
    assert read, "the scan found nothing"
    assert read <= set(VARIABLE_NAMES), read - set(VARIABLE_NAMES)
