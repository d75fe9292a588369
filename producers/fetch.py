"""Fetching feeds politely: conditional GET, bounded bodies and time, a few per host.

`Fetcher.fetch` returns a `FetchResult` (200 with a body, or 304 "not modified", which
costs no parsing) or raises `FeedError` carrying what the scheduler needs as data:
``retryable`` (timeouts, network errors, 429 and 5xx), ``retry_after_s`` (429/503),
``gone`` (410) and the HTTP ``status``. Everything else about politeness lives here:

- an honest User-Agent; Accept asks for feeds; gzip/deflate accepted (httpx decodes);
- If-None-Match / If-Modified-Since from the feed's last validators;
- connect/read timeouts, and a total deadline on the whole request (connect, headers,
  redirects and body: `newswatch.http_deadline`) so a server that drips bytes, even its
  header bytes, cannot hold a worker forever; the daemon's stop abandons a request within
  a quarter second; a redirect limit, so a loop ends as an error;
- a body limit counted on the decoded bytes (so a gzip bomb is stopped too), which also
  bounds memory: gzip and deflate are inflated here, never more than the limit at a time
  (httpx inflates each network read whole: 64 KB of a bomb became 64 MB before the limit
  was checked; found by tests/hostile); a body that is gzip without saying so is inflated
  within the same limit;
- at most ``per_host`` requests in flight to one host, whatever the number of workers;
- ``untrusted=True`` (article pages, whose links come from feed content) goes through the
  egress policy of `producers.egress`: http(s) only, and every connection, redirects
  included, to a public address or one ``producer_fulltext_allow`` lists.

``file://`` URLs (what feeds.yaml's local paths become) are read from disk with the same
limit; the file's mtime and size act as its ETag, so an unchanged file is "not modified".

``before_send`` (the daemon's lease fence, `producers.lease`) runs right before the first
byte of each request is written, after the host slot, the connection and TLS, as late as
the client lets it run: from httpcore's documented ``trace`` extension, at
``send_request_headers.started`` (each redirect hop, each retry on a new connection).
What it raises abandons the request unsent and propagates to the caller as it is.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from newswatch.daemon import StopFlag
from newswatch.errors import FeedError
from newswatch.http_deadline import RequestCancelledError, deadline_transport, request_deadline
from newswatch.retry_after import parse_retry_after
from newswatch.settings import Settings
from producers.egress import EgressDeniedError, EgressPolicy, guarded_transport, parse_allow

log = logging.getLogger(__name__)

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_MAX_AGE = re.compile(r"(?:^|,)\s*(s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Validators:
    """What the server said last time, sent back so it can answer 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """A successful answer: 200 with ``body``, or 304 with an empty body."""

    url: str
    status: int
    body: bytes
    validators: Validators
    fetched_at: datetime
    max_age_s: float | None = None
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def charset(self) -> str | None:
        match = _CHARSET.search(self.content_type or "")
        return match.group(1) if match else None



def parse_max_age(cache_control: str | None) -> float | None:
    """``max-age`` (or ``s-maxage``) of a Cache-Control header in seconds, if any."""
    if not cache_control or "no-store" in cache_control.lower():
        return None
    ages = [float(match.group(2)) for match in _MAX_AGE.finditer(cache_control)]
    return max(ages) if ages else None


def host_of(url: str) -> str:
    """What the per-host limits count by: scheme, host and port (file: URLs: one host)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class HostLimiter:
    """At most ``per_host`` concurrent requests to each host. Thread-safe."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = host_of(url)
        with self._lock:
            semaphore = self._semaphores.get(host)
            if semaphore is None:
                semaphore = self._semaphores[host] = threading.BoundedSemaphore(self._per_host)
        with semaphore:
            yield


class Fetcher:
    """One shared HTTP client for all feeds. Thread-safe; `close` when done."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None,
                 stop: StopFlag | None = None) -> None:
        self._stop = stop
        self.max_bytes = settings.producer_max_body_bytes
        self.max_redirects = settings.producer_max_redirects
        self.total_timeout_s = settings.producer_total_timeout_s
        self._timeout = httpx.Timeout(connect=settings.producer_connect_timeout_s,
                                      read=settings.producer_read_timeout_s,
                                      write=settings.producer_read_timeout_s,
                                      pool=settings.producer_total_timeout_s)
        self._limiter = HostLimiter(settings.producer_per_host_concurrency)
        connections = settings.producer_concurrency + settings.producer_fulltext_concurrency
        limits = httpx.Limits(max_connections=connections * 2,
                              max_keepalive_connections=connections * 2)
        self._client = self._make_client(settings, limits,
                                         transport or deadline_transport(limits))
        self.egress = EgressPolicy(parse_allow(settings.producer_fulltext_allow))
        self._pages = self._make_client(
            settings, limits, transport or guarded_transport(self.egress, limits))

    def _make_client(self, settings: Settings, limits: httpx.Limits,
                     transport: httpx.BaseTransport | None) -> httpx.Client:
        return httpx.Client(
            timeout=self._timeout,
            follow_redirects=True,
            max_redirects=settings.producer_max_redirects,
            headers={"User-Agent": settings.producer_user_agent},
            limits=limits,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()
        self._pages.close()

    def fetch(self, url: str, validators: Validators = Validators(), *,
              max_bytes: int | None = None, accept: str = FEED_ACCEPT,
              untrusted: bool = False,
              before_send: Callable[[], None] | None = None) -> FetchResult:
        """GET ``url`` (http, https or file) within the limits; see the module docstring.
        ``untrusted`` URLs (from feed content) obey the egress policy; ``before_send``
        runs right before each request is sent (or the file read) and may raise."""
        limit = max_bytes or self.max_bytes
        if untrusted:
            self.egress.check_url(url)
        client = self._pages if untrusted else self._client
        if urlsplit(url).scheme.lower() == "file":
            if before_send is not None:
                before_send()
            return _read_file(url, validators, limit)
        headers = {"Accept": accept}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        fetched_at = datetime.now(UTC)
        extensions = {"trace": _run_before_send(before_send)} if before_send else None
        try:
            with (self._limiter.slot(url), request_deadline(self.total_timeout_s, self._stop),
                  client.stream("GET", url, headers=headers, extensions=extensions) as r):
                if r.status_code == 304:
                    return FetchResult(url=str(r.url), status=304, body=b"",
                                       validators=_validators(r, validators),
                                       fetched_at=fetched_at,
                                       max_age_s=parse_max_age(r.headers.get("cache-control")))
                _raise_for_status(r)
                body = self._read_body(r, limit)
        except httpx.TooManyRedirects:
            raise FeedError(f"more than {self.max_redirects} redirects (a redirect loop?)",
                            kind="redirects") from None
        except httpx.TimeoutException as exc:
            if isinstance(exc.__cause__, RequestCancelledError):
                raise FeedError("request abandoned: the producer is stopping", retryable=True,
                                kind="cancelled") from None
            raise FeedError(f"timed out ({exc or type(exc).__name__})", retryable=True,
                            kind="timeout") from None
        except httpx.DecodingError as exc:
            raise FeedError(f"undecodable response body: {exc}", kind="decode") from None
        except (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            if isinstance(exc.__cause__, EgressDeniedError):
                raise FeedError(str(exc.__cause__), kind="egress") from None
            raise FeedError(f"network error: {type(exc).__name__}: {exc}", retryable=True,
                            kind="network") from None
        return FetchResult(
            url=str(r.url), status=r.status_code, body=_maybe_gunzip(body, limit),
            validators=_validators(r, Validators()), fetched_at=fetched_at,
            max_age_s=parse_max_age(r.headers.get("cache-control")),
            content_type=r.headers.get("content-type"),
        )

    def _read_body(self, response: httpx.Response, limit: int) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit, f"Content-Length {int(declared)}")
        deadline = time.monotonic() + self.total_timeout_s
        if response.is_stream_consumed:  # read already (a MockTransport's): decoded
            pieces, decoders = response.iter_bytes(), _Decoders("", limit)
        else:
            pieces = response.iter_raw()
            decoders = _Decoders(response.headers.get("content-encoding", ""), limit)
        chunks: list[bytes] = []
        size = 0
        for raw in pieces:
            chunk = decoders.decode(raw, limit - size)
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, f"more than {limit} bytes received")
            if time.monotonic() > deadline:
                raise FeedError(f"download took longer than {self.total_timeout_s:.0f}s",
                                retryable=True, kind="timeout")
            chunks.append(chunk)
        return b"".join(chunks)


def _run_before_send(before_send: Callable[[], None]) -> Callable[[str, object], None]:
    """An httpcore ``trace`` callback that runs ``before_send`` as the request's headers
    are about to be written (HTTP/1.1 and HTTP/2 alike)."""
    def trace(event: str, _info: object) -> None:
        if event.endswith(".send_request_headers.started"):
            before_send()
    return trace


class _Decoders:
    """Content-Encoding gzip / deflate undone with bounded output (see the module
    docstring); other codings are left as they are, as httpx does."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        self._limit = limit
        names = [name.strip().lower() for name in content_encoding.split(",")]
        # Codings are listed in the order they were applied: undo the last first.
        self._names = [name for name in reversed(names) if name in _WBITS]
        self._inflaters = [zlib.decompressobj(wbits=_WBITS[name]) for name in self._names]
        self._started = [False] * len(self._names)

    def decode(self, data: bytes, room: int) -> bytes:
        """``data`` decoded; raises the too-large error once more than ``room`` bytes
        would come out, before inflating them."""
        for i, name in enumerate(self._names):
            data = self._inflate(i, name, data, max(room, 0))
        return data

    def _inflate(self, i: int, name: str, data: bytes, room: int) -> bytes:
        try:
            out = self._inflaters[i].decompress(data, room + 1)
        except zlib.error as exc:
            if name == "deflate" and not self._started[i]:
                # Servers send raw deflate as often as zlib-wrapped: try raw (as httpx does).
                self._inflaters[i] = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
                self._started[i] = True
                return self._inflate(i, name, data, room)
            raise FeedError(f"undecodable response body: {name}: {exc}", kind="decode") from None
        self._started[i] = True
        if len(out) > room or self._inflaters[i].unconsumed_tail:
            raise _too_large(self._limit, f"once {name} is inflated")
        return out


_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


def _too_large(limit: int, detail: str) -> FeedError:
    return FeedError(f"response body exceeds the {limit / 1_048_576:.1f} MB limit ({detail})",
                     kind="too_large")


def _validators(response: httpx.Response, previous: Validators) -> Validators:
    return Validators(etag=response.headers.get("etag") or previous.etag,
                      last_modified=response.headers.get("last-modified")
                      or previous.last_modified)


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status == 410:
        raise FeedError(f"{reason}: the feed is gone; it will not be polled again",
                        status=status, gone=True, kind="gone")
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        suffix = f" (Retry-After {retry_after:.0f}s)" if retry_after is not None else ""
        raise FeedError(reason + suffix, status=status, retryable=True,
                        retry_after_s=retry_after, kind="throttled" if status == 429 else "http")
    raise FeedError(reason, status=status, retryable=status >= 500, kind="http")


def _maybe_gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body sent without Content-Encoding, within the same size limit."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise FeedError(f"the body looks gzipped but does not inflate: {exc}",
                        kind="decode") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit, "after inflating a gzip body")
    return out


def _read_file(url: str, validators: Validators, limit: int) -> FetchResult:
    path = Path(url2pathname(urlsplit(url).path))
    fetched_at = datetime.now(UTC)
    try:
        stat = path.stat()
        if stat.st_size > limit:
            raise _too_large(limit, f"file of {stat.st_size} bytes")
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        current = Validators(etag=etag, last_modified=email.utils.formatdate(
            stat.st_mtime, usegmt=True))
        if validators.etag == etag:
            return FetchResult(url=url, status=304, body=b"", validators=current,
                               fetched_at=fetched_at)
        body = path.read_bytes()
    except FileNotFoundError:
        raise FeedError(f"no such file: {path}", kind="not_found") from None
    except OSError as exc:
        raise FeedError(f"cannot read {path}: {exc}", retryable=True, kind="io") from None
    return FetchResult(url=url, status=200, body=_maybe_gunzip(body, limit), validators=current,
                       fetched_at=fetched_at)
