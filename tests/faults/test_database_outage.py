"""Database outage: the connection to PostgreSQL is cut (a TCP proxy between the app and the
server drops every connection and refuses new ones) and later restored.

During the outage a candidate gets a clear "try again" page or a 503 JSON error — never a stack
trace — and afterwards retrying the same answer records it exactly once; nothing acknowledged
before the outage is lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import threading
from pathlib import Path

import pytest

from tests.web.conftest import new_site

PG = os.environ.get("DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not PG.startswith(("postgres://", "postgresql")),
                                reason="needs DATABASE_URL pointing at PostgreSQL")


class CuttableProxy:
    """A loopback TCP proxy to PostgreSQL whose link can be cut and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                if not self.up.is_set():
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for a, b in self.pairs:
                for s in (a, b):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
            self.pairs.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.stopped = True
        self.cut()
        self.listener.close()


def test_outage_gives_503_then_the_retry_records_once(tmp_path: Path):
    with new_site("postgresql", tmp_path) as site:
        proxy = CuttableProxy(("127.0.0.1", 5432))
        try:
            proxied = re.sub(r"@([^/:]+)(:\d+)?/", f"@127.0.0.1:{proxy.port}/", site.url, count=1)
            app = site.app(DATABASE_URL=proxied)
            client = app.test_client()
            (token,) = site.invite()
            body = client.post("/api/v1/sessions", json={"invitation": token}).json
            sid, auth = body["session_id"], {"Authorization": f"Bearer {body['token']}"}
            acknowledged = []
            for _ in range(2):
                it = body["pending_item"]
                answer = {"item_id": it["item_id"], "answer": it["options"][0]["id"]}
                body = client.post(f"/api/v1/sessions/{sid}/responses", json=answer,
                                   headers=auth).json
                acknowledged.append((answer["item_id"], answer["answer"]))

            proxy.cut()
            it = body["pending_item"]
            answer = {"item_id": it["item_id"], "answer": it["options"][1]["id"]}
            r = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
            assert r.status_code == 503
            assert r.json["code"] == 503 and "try again" in r.json["message"]
            assert r.headers["Retry-After"]
            page = client.get(f"/t/{token}/question")
            assert page.status_code == 503
            assert b"Please try again" in page.data and b"Traceback" not in page.data

            proxy.restore()
            r = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
            assert r.status_code == 200, r.data[:300]
            acknowledged.append((answer["item_id"], answer["answer"]))
            again = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
            assert again.status_code == 200 and again.json == r.json
            stored = site.sql("SELECT i.external_id, r.raw_answer FROM responses r JOIN items i "
                              "ON i.id = r.item_id WHERE r.session_id = :s ORDER BY r.position",
                              s=sid)
            assert [tuple(x) for x in stored] == acknowledged
        finally:
            proxy.close()
