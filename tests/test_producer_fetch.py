"""Fetching: unit tests at the transport (httpx.MockTransport), then a real local server."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from newswatch.errors import FeedError
from newswatch.retry_after import parse_retry_after
from newswatch.settings import Settings
from producers.fetch import Fetcher, Validators, parse_max_age
from producers.parse import parse
from tests.producer_fixtures import news_items, rss
from tests.support.feed_server import FeedServer, Reply

FEED = rss(news_items("f", 3))


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"producer_connect_timeout_s": 1.0,
                              "producer_read_timeout_s": 1.0,
                              "producer_total_timeout_s": 3.0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    client = Fetcher(_settings(producer_max_body_bytes=1024 * 1024, producer_max_redirects=3))
    try:
        yield client
    finally:
        client.close()


def _mock(handler: Any, **overrides: Any) -> Fetcher:
    return Fetcher(_settings(**overrides), transport=httpx.MockTransport(handler))


# --- Unit: one function at the transport ----------------------------------------------


def test_request_is_polite_and_conditional() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304, headers={"ETag": '"v2"', "Cache-Control": "max-age=1800"})

    fetcher = _mock(handler, producer_user_agent="Newswatch/test (+ops@example.org)")
    result = fetcher.fetch("https://a.example/rss", Validators('"v1"', "Tue, 24 Nov 2026"))
    headers = seen[0].headers
    assert headers["user-agent"] == "Newswatch/test (+ops@example.org)"
    assert headers["if-none-match"] == '"v1"'
    assert headers["if-modified-since"] == "Tue, 24 Nov 2026"
    assert "gzip" in headers["accept-encoding"]
    assert "application/rss+xml" in headers["accept"]
    assert result.not_modified
    assert result.body == b""
    assert result.validators == Validators('"v2"', "Tue, 24 Nov 2026")
    assert result.max_age_s == 1800


def test_compressed_body_is_decoded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=gzip.compress(FEED),
                              headers={"Content-Encoding": "gzip",
                                       "Content-Type": "text/xml; charset=windows-1251"})

    result = _mock(handler).fetch("https://a.example/rss")
    assert result.body == FEED
    assert result.charset == "windows-1251"


def test_gzip_without_header_is_inflated() -> None:
    result = _mock(lambda r: httpx.Response(200, content=gzip.compress(FEED))).fetch(
        "https://a.example/rss")
    assert result.body == FEED


@pytest.mark.parametrize(("status", "headers", "retryable", "retry_after", "gone"), [
    (404, {}, False, None, False),
    (403, {}, False, None, False),
    (410, {}, False, None, True),
    (429, {"Retry-After": "120"}, True, 120.0, False),
    (503, {"Retry-After": "30"}, True, 30.0, False),
    (500, {}, True, None, False),
    (502, {}, True, None, False),
])
def test_status_becomes_error_data(status: int, headers: dict[str, str], retryable: bool,
                                   retry_after: float | None, gone: bool) -> None:
    fetcher = _mock(lambda r: httpx.Response(status, headers=headers))
    with pytest.raises(FeedError) as caught:
        fetcher.fetch("https://a.example/rss")
    error = caught.value
    assert (error.status, error.retryable, error.retry_after_s, error.gone) == (
        status, retryable, retry_after, gone)
    assert str(status) in str(error)


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"<" * (50 * 1024 * 1024))
    fetcher = _mock(lambda r: httpx.Response(200, content=bomb,
                                             headers={"Content-Encoding": "gzip"}),
                    producer_max_body_bytes=1024 * 1024)
    with pytest.raises(FeedError, match=r"exceeds the 1\.0 MB limit") as caught:
        fetcher.fetch("https://a.example/rss")
    assert caught.value.kind == "too_large"


def test_network_error_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(FeedError) as caught:
        _mock(handler).fetch("https://a.example/rss")
    assert caught.value.retryable
    assert caught.value.kind == "network"


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0), ("0", 0.0), ("1.5", 1.5), (" 7 ", 7.0), ("soon", None), (None, None),
    ("", None), ("-3", None), ("nan", None), ("inf", None), ("1e9", None),
    ("Thu, 26 Nov 2026 12:05:00 GMT", 300.0),
    ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),  # in the past: now
])
def test_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("max-age=600", 600.0), ("public, s-maxage=60, max-age=300", 300.0),
    ("no-cache", None), ("no-store, max-age=600", None), (None, None),
])
def test_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


def test_local_file_and_file_url(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    first = fetcher.fetch(path.as_uri())
    assert first.status == 200
    assert first.body == FEED
    again = fetcher.fetch(path.as_uri(), first.validators)
    assert again.not_modified
    path.write_bytes(FEED + b"\n")
    assert fetcher.fetch(path.as_uri(), first.validators).status == 200
    with pytest.raises(FeedError, match="no such file"):
        fetcher.fetch((tmp_path / "missing.xml").as_uri())


def test_oversized_local_file(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b" " * 4096)
    small = Fetcher(_settings(producer_max_body_bytes=1024))
    with pytest.raises(FeedError, match="exceeds"):
        small.fetch(path.as_uri())
    small.close()


# --- Integration: a real HTTP server on 127.0.0.1 --------------------------------------



@pytest.mark.integration
def test_200_then_304_with_etag(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.feed("/rss", FEED, etag='"abc"', last_modified="Wed, 25 Nov 2026")
    first = fetcher.fetch(url)
    assert first.status == 200
    assert len(parse(first.body).entries) == 3
    second = fetcher.fetch(url, first.validators)
    assert second.not_modified
    assert feed_server.hits("/rss")[1]["if-none-match"] == '"abc"'


@pytest.mark.integration
def test_304_by_last_modified(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.feed("/rss", FEED, last_modified="Wed, 25 Nov 2026 10:00:00 GMT")
    first = fetcher.fetch(url)
    assert fetcher.fetch(url, first.validators).not_modified


@pytest.mark.integration
@pytest.mark.parametrize(("reply", "match", "attrs"), [
    (Reply(404, b"nope"), "HTTP 404", {"retryable": False, "gone": False}),
    (Reply(410, b"gone"), "HTTP 410", {"gone": True}),
    (Reply(429, b"", {"Retry-After": "90"}), "Retry-After 90s",
     {"retryable": True, "retry_after_s": 90.0}),
    (Reply(500, b"oops"), "HTTP 500", {"retryable": True}),
])
def test_error_statuses(feed_server: FeedServer, fetcher: Fetcher, reply: Reply, match: str,
                        attrs: dict[str, object]) -> None:
    url = feed_server.add("/rss", reply)
    with pytest.raises(FeedError, match=match) as caught:
        fetcher.fetch(url)
    for name, value in attrs.items():
        assert getattr(caught.value, name) == value


@pytest.mark.integration
def test_slow_server_times_out(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.add("/slow", Reply(200, FEED, delay_s=3.0))
    with pytest.raises(FeedError, match="timed out") as caught:
        fetcher.fetch(url)
    assert caught.value.retryable
    # The fetcher gave up while the server was still holding the answer back.
    assert feed_server.active == 1


@pytest.mark.integration
def test_redirects_are_followed_and_loops_end(feed_server: FeedServer,
                                              fetcher: Fetcher) -> None:
    target = feed_server.feed("/new", FEED)
    feed_server.add("/old", Reply(301, b"", {"Location": "/new"}))
    result = fetcher.fetch(feed_server.url("/old"))
    assert result.url == target
    assert result.body == FEED
    feed_server.add("/loop-a", Reply(302, b"", {"Location": "/loop-b"}))
    feed_server.add("/loop-b", Reply(302, b"", {"Location": "/loop-a"}))
    with pytest.raises(FeedError, match="more than 3 redirects") as caught:
        fetcher.fetch(feed_server.url("/loop-a"))
    assert caught.value.kind == "redirects"
    assert len(feed_server.hits("/loop-a")) + len(feed_server.hits("/loop-b")) == 4


class FencedError(Exception):
    """What the test's ``before_send`` raises: the lease fence of the daemon, in short."""


@pytest.mark.integration
def test_before_send_runs_before_each_request_and_can_stop_it(
        feed_server: FeedServer, fetcher: Fetcher, tmp_path: Path) -> None:
    feed_server.feed("/new", FEED)
    feed_server.add("/old", Reply(301, b"", {"Location": "/new"}))
    calls: list[int] = []

    def count() -> None:
        calls.append(len(feed_server.requests))

    fetcher.fetch(feed_server.url("/old"), before_send=count)
    assert calls == [0, 1], "once before each hop, before the server saw it"

    def refuse() -> None:
        raise FencedError

    fetcher.fetch(feed_server.url("/new"))  # a kept-alive connection to reuse
    hits = len(feed_server.requests)
    with pytest.raises(FencedError):
        fetcher.fetch(feed_server.url("/new"), before_send=refuse)
    assert len(feed_server.requests) == hits, "the refused request reached the server"
    assert fetcher.fetch(feed_server.url("/new")).body == FEED, "the client still works"
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    with pytest.raises(FencedError):
        fetcher.fetch(path.as_uri(), before_send=refuse)


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_rejected(feed_server: FeedServer, fetcher: Fetcher,
                                    chunked: bool) -> None:
    url = feed_server.add("/big", Reply(200, b"<rss>" + b" " * (2 * 1024 * 1024),
                                        chunked=chunked))
    with pytest.raises(FeedError, match=r"exceeds the 1\.0 MB limit"):
        fetcher.fetch(url)


@pytest.mark.integration
def test_html_page_instead_of_a_feed(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.add("/page", Reply(200, b"<!doctype html><html><body>Welcome</body>"
                                              b"</html>", {"Content-Type": "text/html"}))
    with pytest.raises(FeedError, match="HTML page, not a feed"):
        parse(fetcher.fetch(url).body)


@pytest.mark.integration
def test_gzip_content_encoding_from_server(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.add("/gz", Reply(200, gzip.compress(FEED), {"Content-Encoding": "gzip"}))
    assert fetcher.fetch(url).body == FEED


@pytest.mark.integration
def test_per_host_limit(feed_server: FeedServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(8):
        feed_server.add(f"/f{i}", Reply(200, FEED, delay_s=0.2))
    fetcher = Fetcher(_settings(producer_per_host_concurrency=2, producer_concurrency=8))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: fetcher.fetch(feed_server.url(f"/f{i}")), range(8)))
    fetcher.close()
    assert feed_server.max_active == 2
