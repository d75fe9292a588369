"""The operations endpoint of every daemon: /metrics, /healthz and /readyz on one port.

/healthz answers 200 while the process serves requests and its ``alive`` callable (when
given) says every worker thread still runs (liveness): a daemon whose evaluator or
delivery thread died answers 503, so an orchestrator restarts it (issue 16: a dead rule
evaluator behind a green /healthz sent no alert again). /readyz answers 200
only while the daemon's ``ready`` callable says its dependencies answer (readiness), so
an orchestrator can tell "alive but waiting for the database" from "working".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


class HealthServer:
    """Serves the endpoints from a daemon thread; `stop` is idempotent."""

    def __init__(self, port: int, ready: Callable[[], bool], host: str = "127.0.0.1",
                 alive: Callable[[], bool] | None = None) -> None:
        self._ready = ready
        self._alive = alive
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        ready = self._ready
        alive = self._alive

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = alive is None or safe_check(alive)
                    self._send(200 if ok else 503, b"ok\n" if ok else b"worker thread died\n")
                elif self.path == "/readyz":
                    ok = (alive is None or safe_check(alive)) and safe_check(ready)
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Probes every few seconds would drown the daemon's own log.
                return

        return Handler

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="health",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


def safe_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # a failing probe means "not ready", never a crashed endpoint
        log.debug("readiness check raised", exc_info=True)
        return False


def start_health_server(
    port: int | None, ready: Callable[[], bool], host: str = "127.0.0.1",
    alive: Callable[[], bool] | None = None,
) -> HealthServer | None:
    """Start the endpoint on ``host:port``; None when no port is configured."""
    if port is None:
        return None
    server = HealthServer(port, ready, host, alive).start()
    log.info("serving /metrics, /healthz, /readyz", extra={"port": server.port})
    return server
