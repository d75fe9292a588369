"""A hostile HTTP server on 127.0.0.1 that answers its status line and then drips its
response headers, one byte a second, for as long as it is allowed (issue 16, fault 3).

Each byte arrives well within any per-read timeout, so only a whole-request deadline
ends such a request. `requests` counts the connections it accepted.
"""

from __future__ import annotations

import socket
import threading
import time


class DripServer:
    """Accepts connections on 127.0.0.1 and drips headers on each; `close` ends them."""

    def __init__(self, drip_for_s: float = 120.0, every_s: float = 1.0) -> None:
        self.drip_for_s = drip_for_s
        self.every_s = every_s
        self.requests = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="drip-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.requests += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            ends = time.monotonic() + self.drip_for_s
            while time.monotonic() < ends and not self._closed.wait(self.every_s):
                conn.sendall(b"X")  # a header name that never ends
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
