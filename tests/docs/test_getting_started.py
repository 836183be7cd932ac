"""The documentation check: every code block of docs/getting-started.md runs, in order, in a
fresh folder, and every ``text`` block matches the output of the command block before it.

Blocks are ``sh`` (run by bash, one shell for the whole page, so variables carry over) or
``text`` (expected output; ``<name>`` placeholders stand for values that change each run). An
HTML comment before a block changes how it runs:

* ``<!-- doc-test: background -->`` — a server: started in the background, and the page goes on
  once its ``/readyz`` says ready (as an orchestrator waits before sending it traffic: a moment
  of "unavailable" while the workers open the database and the job queue is what the probe is
  for);
* ``<!-- doc-test: dry-run -->`` — ``make`` targets, checked with ``make -n`` (running the
  whole test suite inside the test suite is not an option).

Port 5000 in commands is replaced by a free port. Any other kind of block fails the test, so
the page cannot grow an unchecked block.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
BLOCK = re.compile(r"(?:<!-- doc-test: (?P<mode>[a-z-]+) -->\n)?```(?P<lang>[a-z]*)\n(?P<code>.*?)"
                   r"^```$", re.S | re.M)
PLACEHOLDER = re.compile(r"<[a-z]+>")
TIMEOUT_S = 240
#: How long a background server may take to become ready; past it the page goes on, and the
#: output check shows what ``/readyz`` said and the server log's warnings.
READY_WAIT_S = 90


@dataclass(frozen=True)
class Block:
    mode: str
    lang: str
    code: str


def blocks(text: str) -> list[Block]:
    return [Block(m["mode"] or "run", m["lang"], m["code"]) for m in BLOCK.finditer(text)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_pattern(line: str) -> re.Pattern[str]:
    parts = PLACEHOLDER.split(line.rstrip())
    return re.compile(".+?".join(re.escape(p) for p in parts))


def matches_in_order(expected: str, actual: str) -> list[str]:
    """Expected lines not found (in order) among the actual output lines."""
    lines = [x.rstrip() for x in actual.splitlines()]
    missing, at = [], 0
    for want in expected.strip("\n").splitlines():
        pattern = line_pattern(want)
        for k in range(at, len(lines)):
            if pattern.fullmatch(lines[k]):
                at = k + 1
                break
        else:
            missing.append(want)
    return missing


def test_the_page_has_only_checked_blocks() -> None:
    found = blocks(PAGE.read_text())
    assert len(found) >= 8
    for b in found:
        assert (b.lang, b.mode) in {("sh", "run"), ("sh", "background"), ("sh", "dry-run"),
                                    ("text", "run")}, b
    assert found[0].mode == "dry-run" and "make run" in found[0].code


def test_make_targets_of_the_page_exist_and_do_what_it_says() -> None:
    (dry,) = [b for b in blocks(PAGE.read_text()) if b.mode == "dry-run"]
    targets = re.findall(r"^make (\w+)", dry.code, re.M)
    assert targets == ["run", "test"]
    expect = {"run": ["proficio demo"], "test": ["ruff check", "pytest"]}
    for target in targets:
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        for word in expect[target]:
            assert word in out.stdout, (target, out.stdout)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None,
                    reason="the page's API tour needs curl and jq")
def test_every_command_of_the_page_runs(tmp_path: Path) -> None:
    port = free_port()
    page = [b for b in blocks(PAGE.read_text()) if b.mode != "dry-run"]
    script = ["set -euo pipefail", f"cd {tmp_path}"]
    expected: list[tuple[int, str]] = []
    last = -1
    for k, b in enumerate(page):
        if b.lang == "text":
            expected.append((last, b.code))
            continue
        code = b.code.replace("5000", str(port))
        last = k
        script.append(f"echo {k} > {tmp_path}/.block")
        if b.mode == "background":
            script.append(f"{code.strip()} > {tmp_path}/server.log 2>&1 &")
            script.append(f"echo $! > {tmp_path}/server.pid")
            script.append(f"for _ in $(seq 1 {READY_WAIT_S * 2}); do "
                          f"curl -sf http://127.0.0.1:{port}/readyz >/dev/null && break; "
                          "sleep 0.5; done")
        else:
            script.append(f"{{\n{code}}} > {tmp_path}/out{k}.txt 2>&1")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROFICIO_", "PROMETHEUS_")) and k not in (
               "DATABASE_URL", "SECRET_KEY", "RATELIMIT_STORAGE_URI", "SESSION_COOKIE_SECURE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        run = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True,
                             text=True, timeout=TIMEOUT_S)
    finally:
        _stop_server(tmp_path / "server.pid")
    server = tmp_path / "server.log"
    if run.returncode != 0:
        k = int((tmp_path / ".block").read_text())
        out = tmp_path / f"out{k}.txt"
        pytest.fail(f"block {k} failed ({run.returncode}):\n{page[k].code}\n--- output:\n"
                    f"{out.read_text() if out.exists() else run.stderr}\n--- server log:\n"
                    f"{_log_digest(server)}")
    for k, text in expected:
        actual = (tmp_path / f"out{k}.txt").read_text()
        missing = matches_in_order(text, actual)
        assert not missing, f"output of block {k} differs from the page:\n{missing}\n" \
                            f"--- actual:\n{actual}\n--- server log:\n{_log_digest(server)}"


def _log_digest(log: Path) -> str:
    """The server log's warnings and errors, then its last lines."""
    if not log.exists():
        return ""
    lines = log.read_text().splitlines()
    alarms = [line for line in lines if " WARNING " in line or " ERROR " in line]
    return "\n".join([*alarms[-30:], "…", *lines[-30:]])


def _stop_server(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGINT)  # the server this test started (gunicorn: quick shutdown)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
