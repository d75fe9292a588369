"""A real webhook receiver on 127.0.0.1: scripted answers, every request recorded.

It answers each POST with the next of ``statuses`` (then ``default_status``), after
``delay_s``; ``on_request`` runs before the answer (a test may hold the answer there).
`down` closes the listening socket (connection refused, like a receiver that is not
running) and `up` listens again on the same port. The alert, end-to-end and fault tests
and the alert benchmarks count deliveries with it: a dedup key accepted twice is a
duplicate alert.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port
from tests.support.waits import WaitTimeoutError, wait_for


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.time() when it arrived

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @cached_property
    def payload(self) -> Any:
        """The JSON body (the alert payload)."""
        return json.loads(self.body)

    @property
    def alert_id(self) -> int:
        return int(self.headers["X-Newswatch-Alert-Id"])

    @property
    def dedup_key(self) -> str:
        return self.headers["X-Newswatch-Dedup-Key"]


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up (the alert daemon was killed mid-send): expected


class WebhookReceiver:
    """Listens at once on a free port; `close` (or `down`) stops it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.statuses: deque[int] = deque()
        self.default_status = 200
        self.delay_s = 0.0
        self.on_request: Callable[[Received], None] | None = None
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.accepted]

    @property
    def refused(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if not r.accepted)

    def keys(self) -> Counter[str]:
        """How many times each dedup key was accepted."""
        return Counter(r.dedup_key for r in self.accepted)

    def article_arrivals(self) -> dict[str, float]:
        """When each article id first arrived in an accepted alert (for latencies)."""
        first: dict[str, float] = {}
        for received in self.accepted:
            for article in received.payload.get("articles", []):
                first.setdefault(article["id"], received.at)
        return first

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The accepted requests once there are ``count`` (or all there are at the bound:
        the caller asserts on the number)."""
        with contextlib.suppress(WaitTimeoutError):
            wait_for(lambda: len(self.accepted) >= count, timeout,
                     f"{count} accepted webhook requests", interval_s=0.02)
        return self.accepted

    def start(self) -> WebhookReceiver:
        self.up()
        return self

    def up(self) -> None:
        if self._server is not None:
            return
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver.lock:
                    status = (receiver.statuses.popleft() if receiver.statuses
                              else receiver.default_status)
                    record = Received(self.path, dict(self.headers.items()), body, status,
                                      time.time())
                    receiver.requests.append(record)
                if receiver.on_request is not None:
                    receiver.on_request(record)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                return

        def bind() -> bool:
            try:
                self._server = _Quiet(("127.0.0.1", self.port), Handler)
            except OSError:  # the old socket is still closing
                return False
            return True

        wait_for(bind, 10, f"port {self.port} to listen again", interval_s=0.1)
        assert self._server is not None
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def close(self) -> None:
        self.down()

    stop = close
