"""A real HTTP server on 127.0.0.1 serving feeds (or anything) from routes a test sets.

Each route answers a `Reply` (status, headers, body, a delay before the status line,
chunked or not) or computes one from the request headers (conditional GETs); the server
records every request and how many were in flight at once. The producer, hostile-input,
end-to-end and fault tests and the benchmarks serve their feeds with it;
`FeedServerProcess` runs one in a child process, for a benchmark whose publisher must not
share the measured process's GIL.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any


@dataclass
class Reply:
    """What the server answers: status, headers, body, and how slowly."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    chunked: bool = False  # no Content-Length: the body's size is unknown until read


Route = Callable[[dict[str, str]], Reply]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients that hang up early (timeouts, size limits) are what tests do


class FeedServer:
    """A threaded http.server whose routes tests set; it records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, reply: Reply | Route) -> str:
        self.routes[path] = reply if callable(reply) else (lambda _headers: reply)
        return self.url(path)

    def feed(self, path: str, document: bytes, *, etag: str | None = None,
             last_modified: str | None = None, content_type: str = "application/rss+xml",
             extra: dict[str, str] | None = None) -> str:
        """Serve ``document`` with validators; a matching conditional GET gets 304."""

        def route(headers: dict[str, str]) -> Reply:
            reply_headers = {"Content-Type": content_type, **(extra or {})}
            if etag:
                reply_headers["ETag"] = etag
            if last_modified:
                reply_headers["Last-Modified"] = last_modified
            if (etag and headers.get("if-none-match") == etag) or (
                    last_modified and not etag
                    and headers.get("if-modified-since") == last_modified):
                return Reply(304, b"", reply_headers)
            return Reply(200, document, reply_headers)

        return self.add(path, route)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append((self.path, headers))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    route = server.routes.get(self.path)
                    reply = route(headers) if route else Reply(404, b"not found")
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for start in range(0, len(reply.body), 65536):
                            chunk = reply.body[start:start + 65536]
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.send_header("Content-Length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeouts, size limits): expected in tests
                finally:
                    with server._lock:
                        server.active -= 1

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class FeedServerProcess:
    """A `FeedServer` in a forked child process: ``setup`` adds its routes there.

    The child serves until `close`; ``base`` and `url` address it as they do a
    `FeedServer`. What the child records (requests, in-flight counts) stays in the child.
    """

    def __init__(self, setup: Callable[[FeedServer], None], timeout_s: float = 30.0) -> None:
        context = multiprocessing.get_context("fork")
        here, there = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve_in_child, args=(setup, there),
                                        name="feed-server", daemon=True)
        self._process.start()
        there.close()
        if not here.poll(timeout_s):
            self.close()
            raise RuntimeError(f"the feed server process did not listen in {timeout_s:.0f}s")
        self.base: str = here.recv()
        here.close()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self._process.terminate()
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def _serve_in_child(setup: Callable[[FeedServer], None], ready: Connection) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, if it set one
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C reaches the parent; it closes us
    server = FeedServer()
    setup(server)
    ready.send(server.base)
    ready.close()
    threading.Event().wait()  # the server's thread serves until the parent terminates us
