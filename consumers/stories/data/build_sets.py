"""Build the labelled story sets of this folder from the bundled real feed captures.

Run from the project root: ``.venv/bin/python consumers/stories/data/build_sets.py``.
It rewrites ``bearsears-2026.jsonl`` and ``demo-feeds.jsonl``; the labels are the lists
below, made by reading every headline (and, where unclear, its summary) by hand.

- ``bearsears-2026.jsonl``: the Google News search feed for "Bears Ears" monument
  (newswatch/demo/feeds/googlenews-search-bearsears.xml, 92 items from 60 outlets,
  23 June to 14 July 2026) in three stories: the Tenth Circuit ruling reviving Utah's
  suit (23-25 June), the Babylon Fire (28 June - 1 July), and the reduction of the two
  monuments by executive order (10-14 July: the reports that it was coming, the
  signing, the reactions and the timelines published alongside).
- ``demo-feeds.jsonl``: every item of every bundled demo feed (13 outlets, 8 languages),
  each its own story except the same-event groups listed in `GROUPS` and the Google
  News items labelled as above. The demo feeds must not merge different events: this set
  measures that (B-cubed precision).
- ``labelled-news-2016-2025.jsonl``: the real news items of the project's topic data
  (tests/data/labelled/: articles, train, multilingual-dev, extra and relevance-extra;
  each line there cites its outlet, URL and the public repository it was read from),
  minus those taken from the bundled demo feeds (they are in ``demo-feeds.jsonl``).
  About 80 outlets, 2008-2025, seven languages, chosen around three topics, so full of
  same-topic, different-event pairs (ISIS attacks, cocaine seizures, Taiwan's allies);
  each item its own story except the same-event groups in `NEWS_GROUPS`. Labelled
  before it was ever clustered, and never used to choose the clusterer's knobs.
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

ROOT = Path(__file__).resolve().parents[3]
FEEDS = ROOT / "newswatch" / "demo" / "feeds"
HERE = Path(__file__).resolve().parent

# Same-event groups among the demo feeds' items, by (feed file stem, item index).
GROUPS: dict[str, list[tuple[str, int]]] = {
    "guardian-state-of-the-union-2018": [("guardian-us-edition", i)
                                         for i in (0, 1, 14, 18, 19, 27, 29, 51)],
    "guardian-stormy-daniels-kimmel": [("guardian-us-edition", 28), ("guardian-us-edition", 32)],
    "tpm-2017-election-results": [("talkingpointsmemo-us-politics", i)
                                  for i in (5, 6, 10, 14, 16, 17, 19)],
    "tpm-doj-cnn-sale": [("talkingpointsmemo-us-politics", 7),
                         ("talkingpointsmemo-us-politics", 9)],
    "tpm-menendez-deliberations": [("talkingpointsmemo-us-politics", 2),
                                   ("talkingpointsmemo-us-politics", 12)],
    "demo-honduras-taiwan-china": [("demo-ontopic", 10), ("demo-ontopic", 11)],
    "wapo-featured-advertiser": [("washingtonpost-wellness", i) for i in (1, 21, 23)],
    "uol-match-eleitoral": [("uol-noticias-brazil", 8), ("uol-noticias-brazil", 9)],
    "uol-ibope-poll-2018-09-24": [("uol-noticias-brazil", 0), ("uol-noticias-brazil", 12)],
    "jn-edp-billing-errors": [("jornaldenoticias-ultimas-portugal", 33),
                              ("jornaldenoticias-ultimas-portugal", 37)],
    "jn-irs-tables": [("jornaldenoticias-ultimas-portugal", 12),
                      ("jornaldenoticias-ultimas-portugal", 15)],
    "jn-rarissimas-board": [("jornaldenoticias-ultimas-portugal", 0),
                            ("jornaldenoticias-ultimas-portugal", 18)],
    "jn-benfica-sporting": [("jornaldenoticias-ultimas-portugal", 25),
                            ("jornaldenoticias-ultimas-portugal", 31)],
    "heise-signal-phishing": [("heise-online-tech-germany", i) for i in (5, 127)],
}
GOOGLE_NEWS = "googlenews-search-bearsears"

LABELLED = ROOT / "tests" / "data" / "labelled"
NEWS_FILES = ("articles", "train", "multilingual-dev", "extra", "relevance-extra")
# Items of extra.jsonl read from the bundled demo feeds (in demo-feeds.jsonl already).
FROM_DEMO_FEEDS = frozenset(f"ext-{n:03d}" for n in range(48, 62))
# Same-event groups among them, by id (same people, place and action within days; an
# explainer or timeline published alongside the news belongs to its story).
NEWS_GROUPS: dict[str, tuple[str, ...]] = {
    "istanbul-bombing-2016-01-12": ("ext-007", "t-005"),
    "el-chapo-sean-penn-2016-01-10": ("t-162", "ext-032"),
    "jakarta-attack-2016-01-14": ("dev-032", "t-044"),
    "orlando-nightclub-2016-06-12": ("t-186", "t-014"),
    "istanbul-airport-2016-06-28": ("t-088", "dev-028"),
    "dhaka-cafe-attack-2016-07-01": ("t-091", "t-053"),
    "turkey-coup-attempt-2016-07-15": ("t-061", "t-192"),
    "iran-saudi-ties-2023-03-10": ("rel-001", "rel-002", "rel-003", "ext-023"),
    "toronto-caste-vote-2023-03-09": ("rel-005", "rel-006"),
    "honduras-announces-china-ties-2023-03-14": ("ext-022", "t-144", "t-045"),
    "honduras-switches-to-china-2023-03-26": ("t-066", "rel-010", "dev-011", "t-031", "t-043",
                                              "t-138", "dev-010"),
    "ecuador-crisis-2024-01-09": ("ext-041", "ext-042"),
    "moscow-concert-attack-2024-03-22": ("ext-001", "ext-002", "ext-003", "ext-004",
                                         "ext-005", "ext-006", "ext-009"),
    "norway-spain-ireland-palestine-2024-05-22": ("ext-018", "ext-019", "ext-020"),
    "uk-recognises-palestine-2025-09-21": ("t-009", "t-028", "t-176"),
}


def _bears_ears_story(title: str, published: datetime) -> str:
    if published < datetime(2026, 6, 27, tzinfo=UTC):
        return "court-ruling-2026-06-23"
    if published < datetime(2026, 7, 5, tzinfo=UTC):
        return "babylon-fire-2026-06-28"
    return "monuments-reduced-2026-07-13"


def _plain(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))).strip()


def _items(stem: str) -> list[dict[str, Any]]:
    parsed = feedparser.parse(str(FEEDS / f"{stem}.xml"))
    rows = []
    for index, entry in enumerate(parsed.entries):
        moment = entry.get("published_parsed") or entry.get("updated_parsed")
        published = (datetime.fromtimestamp(calendar.timegm(moment), UTC)
                     if moment else None)
        link = entry.get("link") or f"{stem}#{index}"
        rows.append({
            "id": f"{stem}-{hashlib.sha256(link.encode()).hexdigest()[:12]}-{index}",
            "title": entry.get("title", ""),
            "text": _plain(entry.get("summary", ""))[:2000],
            "published": published.isoformat().replace("+00:00", "Z") if published else None,
            "outlet": (entry.get("source") or {}).get("title")
            or parsed.feed.get("title", stem),
            "url": entry.get("link"),
            "index": index,
            "published_at": published,
        })
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows.sort(key=lambda row: (row["published_at"] or epoch, row["id"]))
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            row = {key: value for key, value in row.items()
                   if key not in ("index", "published_at") and value is not None}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _iso(raw: str | None) -> datetime | None:
    """ISO 8601 or RFC 822 dates as the topic data has them; None when absent."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(raw)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _labelled_news() -> list[dict[str, Any]]:
    grouped = {member: story for story, members in NEWS_GROUPS.items() for member in members}
    rows = []
    for name in NEWS_FILES:
        with (LABELLED / f"{name}.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                item = json.loads(line)
                if item["id"] in FROM_DEMO_FEEDS:
                    continue
                published = _iso(item.get("published"))
                rows.append({
                    "id": item["id"], "title": item["title"],
                    "text": (item.get("text") or "")[:2000],
                    "published": (published.isoformat().replace("+00:00", "Z")
                                  if published else None),
                    "outlet": item.get("outlet"), "url": item.get("url"),
                    "language": item.get("lang"),
                    "story": grouped.get(item["id"], item["id"]),
                    "published_at": published, "index": 0,
                })
    missing = set(grouped) - {row["id"] for row in rows}
    if missing:
        raise SystemExit(f"NEWS_GROUPS names items that are not there: {sorted(missing)}")
    return rows


def main() -> None:
    bears = _items(GOOGLE_NEWS)
    for row in bears:
        row["story"] = _bears_ears_story(row["title"], row["published_at"])
    _write(HERE / "bearsears-2026.jsonl", [dict(row) for row in bears])

    grouped = {member: story for story, members in GROUPS.items() for member in members}
    demo = []
    for path in sorted(FEEDS.glob("*.xml")):
        stem = path.stem
        for row in (bears if stem == GOOGLE_NEWS else _items(stem)):
            row = dict(row)
            if stem != GOOGLE_NEWS:
                row["story"] = grouped.get((stem, row["index"]), row["id"])
            demo.append(row)
    _write(HERE / "demo-feeds.jsonl", demo)
    news = _labelled_news()
    _write(HERE / "labelled-news-2016-2025.jsonl", news)
    print(f"bearsears-2026.jsonl: {len(bears)} items; demo-feeds.jsonl: {len(demo)} items; "
          f"labelled-news-2016-2025.jsonl: {len(news)} items")


if __name__ == "__main__":
    main()
