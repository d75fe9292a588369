"""Build newswatch/demo/feeds/demo-ontopic.xml: an RSS feed of real on-topic news.

The items are the seed article, every item of the labelled development set
(tests/data/labelled/articles.jsonl: real news text, each with its outlet and URL), and
the first dated on-topic item of each language in the multilingual development set
(tests/data/labelled/multilingual-dev.jsonl: Portuguese, Arabic, Polish, Russian, French,
Spanish and German news, each with its outlet, URL where known, and source), so a demo
run has articles that should fire alerts, in English and in other languages, and hard
negatives that should not. Run it again after changing a source; the output is
deterministic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "newswatch" / "demo" / "seed-article.txt"
LABELLED = ROOT / "tests" / "data" / "labelled" / "articles.jsonl"
MULTILINGUAL = ROOT / "tests" / "data" / "labelled" / "multilingual-dev.jsonl"
OUT = ROOT / "newswatch" / "demo" / "feeds" / "demo-ontopic.xml"


def _date(text: str | None) -> str:
    if not text:
        return ""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = parsedate_to_datetime(text)  # "Mon, 21 Feb 2022 19:27:58 +0100"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _item(title: str, text: str, link: str | None, guid: str, published: str, source: str
          ) -> str:
    parts = [f"    <item>\n      <title>{escape(title)}</title>"]
    if link:
        parts.append(f"      <link>{escape(link)}</link>")
    parts.append(f'      <guid isPermaLink="false">{escape(guid)}</guid>')
    if published:
        parts.append(f"      <pubDate>{published}</pubDate>")
    parts.append(f"      <source>{escape(source)}</source>")
    parts.append(f"      <description>{escape(text)}</description>\n    </item>")
    return "\n".join(parts)


def build() -> str:
    seed_lines = SEED.read_text(encoding="utf-8").strip().splitlines()
    seed_title = seed_lines[0].strip()
    seed_body = "\n".join(line for line in seed_lines[1:] if line.strip()
                          and line.strip() != "October 21, 2021")
    items = [_item(seed_title, seed_body, None, "newswatch-seed-article-2021-10-21",
                   _date("2021-10-21T09:00:00+00:00"), "seed article")]
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        items.append(_item(row["title"], row["text"], row.get("url"), f"labelled-{row['id']}",
                           _date(row.get("published")), row.get("outlet", "")))
    languages: set[str] = set()
    for line in MULTILINGUAL.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["labels"] and row.get("published") and row["lang"] not in languages:
            languages.add(row["lang"])
            items.append(_item(row["title"], row["text"], row.get("url"),
                               f"multilingual-{row['id']}", _date(row.get("published")),
                               row.get("outlet", "")))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n  <channel>\n'
        "    <title>Newswatch demo: real on-topic news</title>\n"
        "    <link>https://example.invalid/newswatch-demo</link>\n"
        "    <description>The seed article, the labelled development set and on-topic "
        "items in other languages, as a feed</description>\n"
        + "\n".join(items) + "\n  </channel>\n</rss>\n"
    )


if __name__ == "__main__":
    OUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUT}")
