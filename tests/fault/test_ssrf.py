"""Fault 4 of issue 16: SSRF through feed content with ``full_text: true``.

Item links pointing at 127.0.0.1 (the producer's own /metrics, an internal page),
169.254.169.254, a ``file:`` path, or a public page that redirects inside were fetched and
their text published as the article. Real servers on loopback: 127.0.0.2 plays the public
site (allowed through ``producer_fulltext_allow``) and 127.0.0.1 the internal one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newswatch.errors import ConfigError
from newswatch.settings import Settings
from producers.egress import EgressPolicy, parse_allow
from producers.fetch import Fetcher
from producers.fulltext import FullText
from tests.enrich_fixtures import article
from tests.support.feed_server import FeedServer, Reply

pytestmark = pytest.mark.integration

SECRET = "INTERNAL-ONLY secret text of an intranet page that must never be published. " * 8
PUBLIC = "The public story, told in full by the news site that published it today. " * 8


def _page(text: str) -> Reply:
    body = f"<html><body><article><h1>Page</h1><p>{text}</p></article></body></html>"
    return Reply(200, body.encode(), {"Content-Type": "text/html"})


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, FeedServer]]:
    internal, public = FeedServer("127.0.0.1"), FeedServer("127.0.0.2")
    internal.add("/internal", _page(SECRET))
    public.add("/story", _page(PUBLIC))
    public.add("/moved", Reply(302, b"", {"Location": internal.url("/internal")}))
    public.add("/to-metadata", Reply(302, b"", {"Location": "http://169.254.169.254/latest/"}))
    yield internal, public
    internal.close()
    public.close()


def test_article_links_pointing_inside_are_not_fetched(
        servers: tuple[FeedServer, FeedServer]) -> None:
    internal, public = servers
    settings = Settings(producer_fulltext_allow="127.0.0.2/32", producer_connect_timeout_s=2)
    links = {
        "loopback": internal.url("/internal"),
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "private": "http://10.0.0.1/admin",
        "redirect": public.url("/moved"),
        "redirect-metadata": public.url("/to-metadata"),
        "file": "file:///etc/hostname",
        "public": public.url("/story"),
    }
    articles = [article(name, summary="Teaser.", url=url, id=f"{i:016x}")
                for i, (name, url) in enumerate(links.items())]
    fetcher = Fetcher(settings)
    fulltext = FullText(fetcher, settings)
    try:
        done = {a.title: a.content for a in fulltext.complete(articles, "feed")}
    finally:
        fulltext.close()
        fetcher.close()
    assert "public story" in done["public"]  # the allowed site still works
    for name in links.keys() - {"public"}:
        assert "INTERNAL-ONLY" not in done[name], name
        assert done[name] == "", f"{name}: {done[name][:80]!r}"
    assert not [path for path, _ in internal.requests], "the internal server was reached"


@pytest.mark.parametrize(("address", "refused"), [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
    ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("fe80::1", "link-local"), ("0.0.0.0", "private"),
    ("100.64.0.1", "not global"), ("93.184.216.34", None), ("2606:4700::1111", None),
])
def test_policy_table(address: str, refused: str | None) -> None:
    import ipaddress

    reason = EgressPolicy().refusal(ipaddress.ip_address(address))
    assert (reason is None) == (refused is None), reason
    allowed = EgressPolicy(parse_allow(f"{address}/128" if ":" in address else address))
    assert allowed.refusal(ipaddress.ip_address(address)) is None


def test_bad_allow_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an address"):
        parse_allow("127.0.0.1, intranet.example")
