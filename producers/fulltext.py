"""Full text for feeds that carry only summaries: fetch each article page, extract its text.

Off by default; on per feed with ``full_text: true`` in feeds.yaml. Bounded three ways:
at most ``producer_fulltext_max_items`` pages per refresh (the rest keep their summary),
``producer_fulltext_concurrency`` pages at once, and ``producer_fulltext_max_bytes`` per
page, with the fetcher's timeouts and per-host limit. Any failure (HTTP error, timeout,
nothing extractable) leaves the article as the feed gave it: the summary stands. Links
come from feed content, so pages are fetched under the egress policy
(`producers.egress`): http(s) only, public addresses unless ``producer_fulltext_allow``
lists them; a refused link is logged as a warning and counted (``kind="egress"``).

The extracted text replaces ``content`` but not ``content_hash``, which stays the hash of
what the feed itself said: pages change (ads, comment counts) without the story changing,
and a revision is published only when the feed's own text changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from newswatch import metrics
from newswatch.errors import FeedError
from newswatch.settings import Settings
from producers.entries import MAX_CONTENT_CHARS
from producers.fetch import PAGE_ACCEPT, Fetcher
from producers.text import clip, plain_to_text
from schemas.messages import Article

log = logging.getLogger(__name__)


def extract_text(page: bytes, url: str | None = None) -> str:
    """The main text of an HTML page (trafilatura), as plain text; "" when none is found."""
    import trafilatura  # imported on first use: it is large and most feeds never need it

    extracted: Any = trafilatura.extract(page, url=url, include_comments=False,
                                         include_tables=False, favor_precision=True)
    return clip(plain_to_text(extracted), MAX_CONTENT_CHARS) if isinstance(extracted, str) else ""


class FullText:
    """Fills in ``content`` from article pages; see the module docstring. `close` when done."""

    def __init__(self, fetcher: Fetcher, settings: Settings) -> None:
        self._fetcher = fetcher
        self._max_items = settings.producer_fulltext_max_items
        self._max_bytes = settings.producer_fulltext_max_bytes
        self._pool = ThreadPoolExecutor(max_workers=settings.producer_fulltext_concurrency,
                                        thread_name_prefix="fulltext")

    def complete(self, articles: Sequence[Article], feed_id: str) -> list[Article]:
        """``articles`` with ``content`` extracted from their pages where that worked."""
        wanted = [a for a in articles if a.url][: self._max_items]
        if len(wanted) < sum(1 for a in articles if a.url):
            log.info("full-text limit reached; the rest keep their summary",
                     extra={"feed": feed_id, "limit": self._max_items})
        texts = dict(zip((a.id for a in wanted),
                         self._pool.map(lambda a: self._text(a, feed_id), wanted), strict=True))
        return [a.model_copy(update={"content": texts[a.id]}) if texts.get(a.id) else a
                for a in articles]

    def _text(self, article: Article, feed_id: str) -> str:
        assert article.url is not None
        try:
            page = self._fetcher.fetch(article.url, max_bytes=self._max_bytes,
                                       accept=PAGE_ACCEPT, untrusted=True)
            text = extract_text(page.body, page.url)
        except FeedError as exc:
            if exc.kind == "egress":  # feed content pointing inside: worth a warning
                metrics.FEED_ERRORS.labels(feed_id, "egress").inc()
                log.warning("article link refused by the egress policy; keeping the "
                            "summary: %s", exc, extra={"feed": feed_id,
                                                      "article_id": article.id,
                                                      "url": article.url})
                return ""
            log.info("full text not fetched; keeping the summary: %s", exc,
                     extra={"feed": feed_id, "article_id": article.id, "url": article.url})
            return ""
        except Exception:  # trafilatura on hostile HTML: a page must not stop the feed
            log.warning("full-text extraction failed; keeping the summary", exc_info=True,
                        extra={"feed": feed_id, "article_id": article.id, "url": article.url})
            return ""
        if len(text) <= len(article.summary):
            return ""
        return text

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
