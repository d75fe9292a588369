"""Full-text articles of realistic length, built from the real texts in the project.

    articles = fulltext_articles(600, copies=0.3)   # (title, text) pairs, 500-700 words

The project ships real news text in short pieces: the labelled sets
(tests/data/labelled/*.jsonl: feed descriptions and opening paragraphs; the English items
only, the multilingual sets beside them are left out), the
seed article (newswatch/demo/seed-article.txt) and the English items of the demo feed
captures (newswatch/demo/feeds). Feed summaries of ~94 words made the README's enrich
figures; real articles are 500-700 words (issue 17). Each article here is a real title
followed by real paragraphs in an order of its own until it holds 560-700 words: the
sentences are real, their sequence is not, which is what NER's cost depends on (tokens
per document and per batch), not what a reader would accept as a story.

``copies`` makes that share of the stream exact copies of earlier articles (same title
and text, as syndicated wire copy is), each original copied at most once, the rest
distinct: a test of analysis reuse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import bench_enrich

ROOT = Path(__file__).resolve().parent.parent

MIN_WORDS, MAX_WORDS = 560, 700  # a mean near 590 words
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")


def _paragraphs(text: str, target_words: int = 80) -> list[str]:
    """``text`` as paragraphs of about ``target_words``, split at sentence ends."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(block.split())) if s.strip()]
        current: list[str] = []
        for sentence in sentences:
            current.append(sentence)
            if sum(len(s.split()) for s in current) >= target_words:
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
    return [p for p in out if len(p.split()) >= 8]


def real_texts() -> tuple[list[str], list[str]]:
    """(titles, paragraphs) of every real English text the project ships."""
    titles: list[str] = []
    paragraphs: list[str] = []
    for path in sorted((ROOT / "tests" / "data" / "labelled").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                # The multilingual sets (es, de, pl, ...) share the folder: English only,
                # so the raw run's English NER analyses what the enricher does.
                if record.get("lang", "en") != "en":
                    continue
                titles.append(record["title"])
                paragraphs += _paragraphs(record["text"])
    paragraphs += _paragraphs((ROOT / "newswatch" / "demo" / "seed-article.txt")
                              .read_text(encoding="utf-8"))
    for article in bench_enrich.load_articles():
        if article.feed_id in bench_enrich.ENGLISH_FEEDS:
            if article.title:
                titles.append(article.title)
            paragraphs += _paragraphs(article.content or article.summary)
    seen: set[str] = set()
    unique = [p for p in paragraphs if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    return titles, unique


def fulltext_articles(n: int, copies: float = 0.0) -> list[tuple[str, str]]:
    """``n`` (title, text) articles of MIN_WORDS-MAX_WORDS words; ``copies`` of them
    exact copies of an earlier one (deterministic, spread through the stream)."""
    titles, paragraphs = real_texts()
    count = len(paragraphs)
    distinct: list[tuple[str, str]] = []
    seen: set[str] = set()
    number = 0
    needed = n - round(n * copies)
    while len(distinct) < needed:
        # Article ``number`` walks the paragraphs from its own start with its own stride,
        # so no two articles share their sequence.
        start, stride = (number * 7919) % count, 1 + (number // count) % (count - 1)
        chosen: list[str] = []
        words = 0
        index = start
        skipped = 0
        while words < MIN_WORDS:
            paragraph = paragraphs[index % count]
            length = len(paragraph.split())
            if words + length > MAX_WORDS and skipped < count:
                index += stride
                skipped += 1
                continue
            chosen.append(paragraph)
            words += length
            index += stride
        text = "\n\n".join(chosen)
        number += 1
        if text not in seen:
            seen.add(text)
            distinct.append((titles[number % len(titles)], text))
    if needed == n:
        return distinct
    stream: list[tuple[str, str]] = []
    used = copied = 0
    for position in range(n):
        # A copy wherever the running share of copies falls below ``copies``; each copy
        # repeats another original, the originals in order (a wire story re-posted once,
        # some minutes later), so copies are spread over the stream's texts.
        want_copy = used == needed or copied < copies * (position + 1) - 0.5
        if stream and copied < n - needed and copied < used and want_copy:
            stream.append(distinct[copied])
            copied += 1
        else:
            stream.append(distinct[used])
            used += 1
    return stream
