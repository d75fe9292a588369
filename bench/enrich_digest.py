"""One sha256 per document of what the enricher makes of it, to compare two trees.

    .venv/bin/python -m bench.enrich_digest [--articles 300] [--out digests.txt]

Run from two source trees (it imports the code of its working directory) and compare the
outputs: equal lines mean equal enrichment. The corpus is fixed: ``--articles`` full-text
articles of `bench.fulltext_corpus`, every item of every labelled file in
tests/data/labelled (English and other languages, with their declared language) and every
entry of the demo feed captures (newswatch/demo/feeds). Each document is enriched alone
in order and in batches of 64 as in the daemon, with a fixed clock, and gets two digests:

* ``message``: the bytes of its `EnrichedArticle` (what the daemon sends to Kafka), and
  the analysis's rule scores and relevance probabilities (every topic, not only hits);
* ``features``: each candidate topic's feature vector (`Enricher.analyse_many` with the
  model's `FeatureSpec`, as training computes it), slot and value (``repr`` of the float,
  exact) in key order, with its score and evidence.

The last line is one digest over all the lines before it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from bench.bench_enrich import _plain
from bench.fulltext_corpus import fulltext_articles
from consumers.enrich.enrich import Analysis, Enricher, article_document
from schemas.messages import Article

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BATCH = 64  # articles per enrich_many call, as the daemon batches


def corpus(articles: int) -> Iterator[Article]:
    """The fixed corpus of the module docstring, as articles with fixed ids and times."""
    for i, (title, text) in enumerate(fulltext_articles(articles)):
        yield Article(id=f"f{i}", url=None, title=title, content=text, published=WHEN,
                      fetched_at=WHEN, feed_id="fulltext", language="en")
    for path in sorted((ROOT / "tests" / "data" / "labelled").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if line.strip():
                record = json.loads(line)
                yield Article(id=f"{path.stem}:{n}", url=None, title=record["title"],
                              content=record["text"], published=WHEN, fetched_at=WHEN,
                              feed_id=path.stem, language=record.get("lang"))
    for path in sorted((ROOT / "newswatch" / "demo" / "feeds").glob("*.xml")):
        parsed = feedparser.parse(str(path))
        for n, entry in enumerate(parsed.entries):
            content = (entry.get("content", [{}])[0].get("value", "")
                       if entry.get("content") else "")
            yield Article(id=f"{path.stem}:{n}", url=None, title=entry.get("title", ""),
                          summary=_plain(entry.get("summary", "")), content=_plain(content),
                          published=WHEN, fetched_at=WHEN, feed_id=path.stem,
                          language=parsed.feed.get("language"))


def _message_digest(enriched_bytes: bytes, analysis: Analysis) -> str:
    extra = json.dumps({"scores": list(analysis.scores.items()),
                        "probabilities": list(analysis.probabilities.items())})
    return hashlib.sha256(enriched_bytes + b"\n" + extra.encode()).hexdigest()


def _features_digest(analysis: Analysis) -> str:
    digest = hashlib.sha256()
    for topic, candidate in analysis.candidates.items():
        digest.update(f"{topic} {candidate.score!r}\n".encode())
        digest.update(" ".join(f"{slot}:{value!r}" for slot, value
                               in candidate.features.items()).encode())
        digest.update(repr([span.model_dump() for span in candidate.evidence]).encode())
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="default: stdout")
    args = parser.parse_args(argv)
    enricher = Enricher.from_files()
    enricher._clock = lambda: WHEN  # the message's enriched_at: fixed, so bytes compare
    assert enricher.relevance is not None
    spec = enricher.relevance.spec
    lines: list[str] = []
    articles = list(corpus(args.articles))
    for begin in range(0, len(articles), BATCH):
        batch = articles[begin:begin + BATCH]
        enriched = enricher.enrich_many(batch)
        # With features, the analyses also hold every score and probability.
        analyses = enricher.analyse_many([article_document(a) for a in batch], features=spec)
        for article, message, analysis in zip(batch, enriched, analyses, strict=True):
            lines.append(f"{article.id} message "
                         f"{_message_digest(message.to_bytes(), analysis)}"
                         f" features {_features_digest(analysis)}")
    lines.append(f"all {len(lines)} "
                 + hashlib.sha256("\n".join(lines).encode()).hexdigest())
    text = "\n".join(lines) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    print(lines[-1], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
