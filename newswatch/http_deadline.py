"""Whole-request deadlines for outbound HTTP, interruptible by shutdown.

httpx's timeouts are per network operation: a server that sends its status line and then
one header byte per second never trips a 30 s read timeout, and a 60 s body deadline only
starts once the headers are in. Such a server held a producer worker (or an alert
delivery worker) forever, and SIGTERM waited for it (issue 16).

`deadline_transport` builds an httpx transport whose sockets obey the deadline of the
request in hand: `request_deadline` sets it (and the `StopFlag` whose stop cancels it) for
the calling thread, and every connect, read and write of that thread is cut to what is
left of it, in slices of at most `SLICE_S` so that a stop is noticed within one slice.
When the deadline passes, httpx sees a `httpcore.ReadTimeout` (a `httpx.TimeoutException`
for callers); when the stop flag is set, a `RequestCancelledError` (a `ReadTimeout` too, so
every caller's timeout handling covers it). The sync client runs each request on the
caller's thread, so a thread-local deadline is the request's deadline, and a connection
reused by a later request obeys that request's deadline, not the first one's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from newswatch.daemon import StopFlag

SLICE_S = 0.25
_local = threading.local()


class RequestCancelledError(httpcore.ReadTimeout):
    """The daemon is stopping: the request in hand was abandoned."""


@contextmanager
def request_deadline(seconds: float, stop: StopFlag | None = None) -> Iterator[None]:
    """Bound every socket operation of this thread's requests inside the block to
    ``seconds`` in total, and abandon them once ``stop`` is set."""
    previous = getattr(_local, "state", None)
    _local.state = (time.monotonic() + seconds, seconds, stop)
    try:
        yield
    finally:
        _local.state = previous


def _remaining(timeout: float | None) -> tuple[float | None, float | None]:
    """(timeout for the next slice, the whole-request time left) for this thread; raises
    when the deadline passed or the stop flag is set."""
    state = getattr(_local, "state", None)
    if state is None:
        return timeout, None
    deadline, seconds, stop = state
    if stop is not None and stop.stopping:
        raise RequestCancelledError("request abandoned: the daemon is stopping")
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout(f"the whole request took longer than {seconds:.0f}s")
    step = min(left, SLICE_S)
    return (step if timeout is None else min(timeout, step)), left


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        started = time.monotonic()
        while True:
            step, left = _remaining(timeout)
            if left is None:
                return self._inner.read(max_bytes, timeout)
            try:
                return self._inner.read(max_bytes, step)
            except httpcore.ReadTimeout:
                # One slice without data: nothing was read, so trying again loses nothing.
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _, left = _remaining(timeout)
        # A write blocks only when the peer stops reading: bound it by the time left.
        self._inner.write(buffer, timeout if left is None else min(timeout or left, left))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        _, left = _remaining(timeout)
        bound = timeout if left is None else min(timeout or left, left)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bound))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Wraps a network backend so its streams obey `request_deadline`."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        _, left = _remaining(timeout)
        bound = timeout if left is None else min(timeout or left, left)
        return _DeadlineStream(self._inner.connect_tcp(host, port, bound, local_address,
                                                       socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(limits: httpx.Limits,
                       backend: httpcore.NetworkBackend | None = None) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through ``DeadlineBackend(backend)``."""
    transport = httpx.HTTPTransport(limits=limits)
    # httpx has no parameter for the network backend: its pool is rebuilt with ours and
    # the settings HTTPTransport gives it.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=DeadlineBackend(backend),
    )
    return transport
