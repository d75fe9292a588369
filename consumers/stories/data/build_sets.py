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
"""

from __future__ import annotations

import calendar
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
    print(f"bearsears-2026.jsonl: {len(bears)} items; demo-feeds.jsonl: {len(demo)} items")


if __name__ == "__main__":
    main()
