"""Benchmark: the web console over HTTP on a large database (default 1,000,000 articles).

1. Generates the articles once (bulk Core inserts of articles, topic hits, entities,
   entity links, alerts with their sends) into a database that is kept for later runs:
   SQLite under .state/bench-web/ or the PostgreSQL schema ``bench_web`` on
   NEWSWATCH_TEST_POSTGRES_URL. The full-text index fills through migration 0007's
   triggers (SQLite) or generated column (PostgreSQL), as in production.
2. Starts ``newswatch web`` as its own process, signs in with an API token, and drives it
   from this process: searches (one word, two words or a phrase, a quarter with a topic
   and a quarter with a feed filter; words drawn by how many articles contain them: rare,
   medium, common, and stop words shown apart), alert list pages (filters, later pages)
   and article pages, over the API and the HTML pages.
3. Prints p50/p95 per kind beside its target, the web process's peak RSS, and ``uptime``.

    eval "$(scripts/postgres.sh start)"
    .venv/bin/python -m bench.bench_web --db sqlite [--articles 1000000] [--requests 200]
    .venv/bin/python -m bench.bench_web --db postgresql
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.harness import peak_rss_mb, percentile, uptime
from consumers.web.auth import add_user, count_users, create_token
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from schemas import tables
from tests.support.daemons import DaemonProcess
from tests.support.ports import free_port
from tests.support.waits import wait_for

ROOT = Path(__file__).resolve().parents[1]

TARGETS_MS = {"search": 300.0, "alerts": 300.0, "article": 100.0}
TARGET_RSS_MB = 300.0
CHUNK = 5000
TOPICS = ("is_threat", "drug_trafficking", "recognition")
LABELS = ("PERSON", "ORG", "GPE", "NORP")


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(4, 10)))
             for _ in range(size * 2)}
    return sorted(words)[:size]


def zipf_sampler(rng: random.Random, words: list[str]) -> list[str]:
    """A pool to draw from whose word frequencies fall off like natural language."""
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    return rng.choices(words, weights=weights, k=400_000)


def generate(url: str, count: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(tables.articles)).scalar_one()
    if have >= count:
        print(f"database already holds {have} articles: not generating")
        engine.dispose()
        return
    rng = random.Random(7)
    words = vocabulary(rng)
    pool = zipf_sampler(rng, words)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(tables.entities.insert(), [
            {"id": i + 1, "name": f"{words[i].title()} {words[i + 1].title()}",
             "label": LABELS[i % 4]} for i in range(0, 4000, 2)])
        conn.execute(tables.feeds.insert(), [
            {"id": f"feed-{i}", "url": f"https://feed{i}.example.org/rss", "name": f"Feed {i}",
             "items_seen": 0, "error_count": i % 7 == 0} for i in range(50)])
    hit_id = 0
    for start in range(have, count, CHUNK):
        articles, hits, links = [], [], []
        for i in range(start, min(count, start + CHUNK)):
            published = now - timedelta(seconds=(count - i) * 2.6)  # ~30 days for 1M
            title = " ".join(rng.choices(pool, k=9))
            body = " ".join(rng.choices(pool, k=160))
            aid = f"{i:032x}"
            articles.append({
                "id": aid, "url": f"https://news.example.org/{i}", "title": title.title(),
                "summary": body[:200], "content": body, "published": published,
                "fetched_at": published, "feed_id": f"feed-{i % 50}",
                "feed_name": f"Feed {i % 50}", "language": "en", "authors": [], "tags": [],
                "enriched_at": published, "stored_at": published})
            if i % 3 == 0:
                hit_id += 1
                topic = TOPICS[i % 9 // 3]
                phrase = body.split()[5]
                hits.append({"article_id": aid, "topic": topic, "score": 0.8,
                             "evidence": [{"phrase": phrase, "start": 0, "end": len(phrase),
                                           "sentence": body[:120], "rule": phrase}],
                             "topics_version": "bench", "published": published,
                             "created_at": published})
            for entity in {rng.randrange(1, 2000) for _ in range(3)}:
                links.append({"article_id": aid, "entity_id": entity * 2 - 1, "count": 1,
                              "published": published})
        with engine.begin() as conn:
            conn.execute(tables.articles.insert(), articles)
            if hits:
                conn.execute(tables.topic_hits.insert(), hits)
            conn.execute(tables.article_entities.insert(), links)
        done = min(count, start + CHUNK)
        if done % 50_000 == 0 or done == count:
            rate = (done - have) / (time.perf_counter() - started)
            print(f"  {done} articles ({rate:,.0f}/s)", flush=True)
    alerts(engine, now, rng)
    engine.dispose()


def alerts(engine: object, now: datetime, rng: random.Random, count: int = 20_000) -> None:
    rows, sends = [], []
    for i in range(1, count + 1):
        topic = TOPICS[i % 3]
        rows.append({"id": i, "dedup_key": f"bench:{i}", "rule": f"rule-{topic}",
                     "group_key": f"rule=rule-{topic}|topic={topic}", "kind": "alert",
                     "status": "sent" if i % 10 else "failed", "reason": "bench",
                     "payload": {"articles_total": 1,
                                 "articles": [{"id": f"{i * 3:032x}", "title": f"Story {i}"}]},
                     "created_at": now - timedelta(minutes=count - i)})
        sends.append({"alert_id": i, "channel": "file", "status": rows[-1]["status"],
                      "attempts": 1, "updated_at": now})
    with engine.begin() as conn:  # type: ignore[attr-defined]
        for part in range(0, count, CHUNK):
            conn.execute(tables.alerts.insert(), rows[part:part + CHUNK])
            conn.execute(tables.alert_sends.insert(), sends[part:part + CHUNK])


def word_classes() -> dict[str, list[str]]:
    """The generator's words by the share of articles that contain them.

    Word r of the vocabulary has token probability (1/r)/H; an article has ~170 tokens,
    so its share of articles is 1 - (1 - p)^170. Queries are drawn per class, so the
    figures say what a rare, a middling and a common word cost; words in more than a
    tenth of all articles are stop words, measured and shown but outside the target.
    """
    words = vocabulary(random.Random(7))
    harmonic = sum(1.0 / (rank + 1) for rank in range(len(words)))
    classes: dict[str, list[str]] = {"rare": [], "medium": [], "common": [], "stop": []}
    for rank, word in enumerate(words):
        share = 1 - (1 - (1.0 / (rank + 1)) / harmonic) ** 170
        name = ("stop" if share > 0.1 else "common" if share > 0.01
                else "medium" if share > 0.001 else "rare")
        classes[name].append(word)
    return classes



def drive(url: str, engine_url: str, requests: int) -> int:
    engine = make_engine(engine_url)
    if not count_users(engine):
        add_user(engine, "bench", "analyst", "bench-password-1", who="bench")
    token = create_token(engine, "bench", "bench", who="bench")
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(tables.articles)).scalar_one()
    engine.dispose()
    rng = random.Random(3)
    classes = word_classes()
    port = free_port()
    env = {**os.environ, "NEWSWATCH_DATABASE_URL": engine_url, "NEWSWATCH_WEB_PORT": str(port),
           "NEWSWATCH_LOG_LEVEL": "WARNING"}
    server = DaemonProcess("web", ("web",), env, ROOT / ".state" / "bench-web" / "web.log")
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                              timeout=60)

        def ready() -> bool:
            try:
                return client.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "the web daemon's /readyz", check=server.check, interval_s=0.2)
        kinds: dict[str, list[float]] = {k: [] for k in TARGETS_MS}
        by_class: dict[str, list[float]] = {name: [] for name in classes}

        def timed(kind: str, path: str, params: dict[str, str | int]) -> float:
            started = time.perf_counter()
            answer = client.get(path, params=params)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, (path, params, answer.status_code)
            if not (kind == "search" and params.get("class") == "stop"):
                kinds[kind].append(elapsed)
            return elapsed

        for i in range(requests):
            name = list(classes)[i % len(classes)]
            first, second = rng.choice(classes[name]), rng.choice(classes[name])
            query = [first, f"{first} {second}", f'"{first}"'][i // len(classes) % 3]
            params: dict[str, str | int] = {"q": query, "class": name}
            if i % 4 == 1:
                params["topic"] = TOPICS[i % 3]
            if i % 4 == 2:
                params["feed"] = f"feed-{i % 50}"
            by_class[name].append(timed("search", "/api/v1/articles", params))
            alert_params: dict[str, str | int] = [
                {}, {"state": "new"}, {"rule": "rule-is_threat"}, {"page": 5},
                {"topic": "recognition", "state": "new"}][i % 5]
            timed("alerts", "/api/v1/alerts", alert_params)
            timed("article", f"/api/v1/articles/{rng.randrange(total):032x}", {})
        # The HTML pages too (the same queries plus rendering).
        for i in range(max(10, requests // 10)):
            name = ("rare", "medium", "common")[i % 3]
            timed("search", "/search", {"q": rng.choice(classes[name])})
            timed("alerts", "/alerts", {})
            timed("article", f"/articles/{rng.randrange(total):032x}", {})
        rss = peak_rss_mb(server.pid) or float("nan")
    finally:
        server.stop()
    load = os.getloadavg()
    print(f"\n{total:,} articles, {requests} API + {max(10, requests // 10)} HTML requests "
          f"per kind; uptime load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    failed = 0
    for kind, values in kinds.items():
        p95 = percentile(values, 0.95)
        ok = p95 <= TARGETS_MS[kind]
        failed += not ok
        print(f"  {kind:8} p50 {percentile(values, 0.5):7.1f} ms  p95 {p95:7.1f} ms  "
              f"(target p95 <= {TARGETS_MS[kind]:.0f} ms: {'ok' if ok else 'MISSED'})")
    for name, values in by_class.items():
        share = {"rare": "< 0.1%", "medium": "0.1-1%", "common": "1-10%",
                 "stop": "> 10%, not in the target"}[name]
        print(f"    search words in {share:>24} of articles: p50 "
              f"{percentile(values, 0.5):7.1f} ms  p95 {percentile(values, 0.95):7.1f} ms "
              f"({len(values)} queries)")
    print(f"  web peak RSS {rss:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB: "
          f"{'ok' if rss <= TARGET_RSS_MB else 'MISSED'})")
    print(uptime())
    return 1 if failed or rss > TARGET_RSS_MB else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.db == "sqlite":
        path = ROOT / ".state" / "bench-web" / f"web-{args.articles}.db"
        url = f"sqlite:///{path}"
    else:
        base = os.environ.get("NEWSWATCH_TEST_POSTGRES_URL")
        if not base:
            print("set NEWSWATCH_TEST_POSTGRES_URL (eval \"$(scripts/postgres.sh start)\")")
            return 2
        schema = f"bench_web_{args.articles}"
        admin = make_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
        url = make_url(base).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    print(f"uptime: {uptime()}")
    generate(url, args.articles)
    return drive(url, url, args.requests)


if __name__ == "__main__":
    sys.exit(main())
