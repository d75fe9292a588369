"""Real servers on 127.0.0.1 that the end-to-end and fault tests can take down and bring
back on the same port: a webhook receiver (http.server) and an SMTP server (aiosmtpd).

Both record every alert they accept by its ``X-Newswatch-Alert-Id`` and dedup key, which
is how the tests count deliveries: a key accepted twice is a duplicate alert.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from tests.support.ports import free_port


@dataclass(frozen=True)
class Accepted:
    """One alert a receiver took (answered 2xx / 250)."""

    alert_id: int
    dedup_key: str
    at: float
    body: Any  # the JSON payload (webhook) or the parsed EmailMessage (SMTP)


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up (the alert daemon was killed mid-send): expected


class WebhookReceiver:
    """Answers each POST with ``status`` (200 unless set) and records the 2xx ones.

    `down` closes the listening socket (connection refused, like a receiver that is not
    running); `up` listens again on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.accepted: list[Accepted] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        if self._server is not None:
            return
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.status
                with receiver._lock:
                    if 200 <= status < 300:
                        payload = json.loads(body)
                        receiver.accepted.append(Accepted(
                            int(self.headers["X-Newswatch-Alert-Id"]),
                            self.headers["X-Newswatch-Dedup-Key"], time.time(), payload))
                    else:
                        receiver.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                return

        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = _Quiet(("127.0.0.1", self.port), Handler)
                break
            except OSError:  # the old socket is still closing
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(item.dedup_key for item in self.accepted)

    def close(self) -> None:
        self.down()


class _Inbox:
    """The aiosmtpd handler: accepts (250) or refuses with a temporary error (451)."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_DATA(self, server: aiosmtp.SMTP, session: Session,
                          envelope: Envelope) -> str:
        owner = self._owner
        if owner.refusing:
            with owner._lock:
                owner.refused += 1
            return "451 4.3.0 Mail server temporarily rejected message"
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with owner._lock:
            # A long header value is folded onto a continuation line; unfolded, it keeps
            # the leading space, so strip it as any receiver would.
            owner.accepted.append(Accepted(int(str(message["X-Newswatch-Alert-Id"]).strip()),
                                           str(message["X-Newswatch-Dedup-Key"]).strip(),
                                           time.time(), message))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``refusing`` makes it answer 451 to every message, `down`
    stops listening and `up` listens again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.refusing = False
        self.accepted: list[Accepted] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.up()

    def up(self) -> None:
        if self._controller is not None:
            return
        deadline = time.monotonic() + 10
        while True:
            controller = Controller(_Inbox(self), hostname="127.0.0.1", port=self.port)
            try:
                controller.start()
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._controller = controller

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(item.dedup_key for item in self.accepted)

    def close(self) -> None:
        self.down()
