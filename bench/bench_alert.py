"""Alert benchmark: commit-to-webhook latency at a steady hit rate, and rule throughput.

1. Latency. ``newswatch alert`` runs as a subprocess (the shipped poll interval unless
   ``--poll-interval``) with rules that send every matching article to a webhook on a
   local HTTP server. This process commits one article with one topic hit per
   transaction at a steady ``--rate`` (default 50 hits/s) for ``--seconds``; the latency
   of each alert is the time from that commit to the webhook receiving it.
2. Throughput. With ``--rules`` (default 1,000) varied rules loaded, one evaluation
   (`outbox.run_tick`: match, dedup, group, throttle, outbox write, watermark) is timed
   on batches of new hits; the figure is rules evaluated per second.

    .venv/bin/python bench/bench_alert.py                      # SQLite
    .venv/bin/python bench/bench_alert.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select

from consumers.alert.compile import compile_rules
from consumers.alert.outbox import run_tick, skip_history
from consumers.alert.rules import parse_rules
from newswatch import migrate
from newswatch.db import make_engine
from schemas import tables
from schemas.ids import article_id

TOPICS = ("is_threat", "drug_trafficking", "recognition")
EVIDENCE = [{"phrase": "Islamic State fighters", "start": 0, "end": 22, "rule": "x",
             "sentence": "Islamic State fighters were said to gather near the border."}]


def insert(engine: Engine, n: int, topic: str, published: datetime,
           entity_ids: list[int] | None = None) -> str:
    """One article with one topic hit (and entity links), committed in one transaction."""
    url = f"https://bench.example.org/{os.getpid()}/{n}/{time.time_ns()}"
    aid = article_id(url)
    with engine.begin() as conn:
        conn.execute(tables.articles.insert().values(
            id=aid, url=url, title=f"Bench story {n} about Taliban talks", summary="",
            content="", published=published, fetched_at=published, feed_id=f"feed-{n % 12}",
            feed_name=f"Feed {n % 12}", language="en", authors=[], tags=["world"],
            stored_at=published, enriched_at=published, content_hash=f"h{n}",
        ))
        for entity in entity_ids or []:
            conn.execute(tables.article_entities.insert().values(
                article_id=aid, entity_id=entity, count=1, published=published))
        conn.execute(tables.topic_hits.insert().values(
            article_id=aid, topic=topic, score=0.5 + (n % 50) / 100, evidence=EVIDENCE,
            topics_version="bench", published=published, created_at=published))
    return aid


# --- 1. latency ------------------------------------------------------------------------


class Receiver:
    """Webhook receiver recording when each article's alert arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                payload = json.loads(body)
                with receiver.lock:
                    for article in payload["articles"]:
                        receiver.arrived.setdefault(article["id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def latency(url: str, folder: Path, rate: float, seconds: float, poll: float | None,
            extra_rules: int) -> dict[str, Any]:
    engine = make_engine(url)
    receiver = Receiver()
    rules = folder / "latency-rules.yaml"
    lines = [f"channels:\n  hook: {{type: webhook, url: '{receiver.url}', timeout: 5s}}\n",
             "rules:\n",
             "  - name: bench\n    match: {topics: [is_threat, drug_trafficking, recognition]}\n"
             "    group_by: [rule, feed]\n    channels: [hook]\n"]
    lines += [f"  - name: filler-{i}\n    match: {{topics: [{TOPICS[i % 3]}], "
              f"title_keywords: [nothing-{i}]}}\n    channels: [hook]\n"
              for i in range(extra_rules)]
    rules.write_text("".join(lines))
    env = {**os.environ, "NEWSWATCH_DATABASE_URL": url, "NEWSWATCH_STATE_DIR": str(folder),
           "NEWSWATCH_LOG_FORMAT": "json", "NEWSWATCH_LOG_LEVEL": "WARNING"}
    if poll is not None:
        env["NEWSWATCH_ALERT_POLL_INTERVAL_S"] = str(poll)
    log = (folder / "alert-daemon.log").open("ab")
    daemon = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "alert", "--rules",
                               str(rules), "--skip-history"], env=env, stdout=log, stderr=log)
    committed: dict[str, float] = {}
    try:
        time.sleep(3.0)  # imports and first evaluation
        start = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            target = start + n / rate
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            aid = insert(engine, n, TOPICS[n % 3], datetime.now(UTC))
            committed[aid] = time.time()
        achieved = total / (time.monotonic() - start)
        deadline = time.monotonic() + 60
        while len(receiver.arrived) < total and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        receiver.server.shutdown()
        engine.dispose()
    problems = [line for line in (folder / "alert-daemon.log").read_text().splitlines()
                if '"level": "ERROR"' in line or '"level": "WARNING"' in line]
    delays = sorted(receiver.arrived[a] - t for a, t in committed.items()
                    if a in receiver.arrived)
    missing = len(committed) - len(delays)
    missing_ids = [a for a in committed if a not in receiver.arrived][:20]
    return {
        "hits": len(committed), "rate_achieved": round(achieved, 1), "received": len(delays),
        "missing": missing, "missing_ids": missing_ids, "rules_loaded": 1 + extra_rules,
        "daemon_warnings": len(problems), "first_warning": problems[0][:300] if problems
        else None,
        "p50_ms": round(1000 * statistics.median(delays), 1) if delays else None,
        "p99_ms": round(1000 * delays[int(0.99 * (len(delays) - 1))], 1) if delays else None,
        "max_ms": round(1000 * delays[-1], 1) if delays else None,
    }


# --- 2. throughput ---------------------------------------------------------------------


def many_rules(count: int, profile: str) -> str:
    """``count`` varied rules. ``none``: no hit matches any rule (the cost of matching
    alone); ``selective``: each hit matches ~1-2% of the rules (specific entities,
    keywords, feeds), as real rule sets do; ``broad``: each hit matches about a third."""
    out = ["channels:\n  file: {type: jsonl, path: bench-alerts.jsonl}\nrules:\n"]
    for i in range(count):
        topic = TOPICS[i % 3]
        kind = i % 6
        extra = ""
        if profile == "none":
            match = f"{{topics: [{topic}], title_keywords: [no-such-words-{i}]}}"
        elif profile == "broad":
            match = [f"{{topics: [{topic}], min_score: {0.5 + (i % 40) / 100}}}",
                     f"{{topics: [{topic}]}}"][i % 2]
        elif kind == 0:
            match = f"{{topics: [{topic}], entities: [Entity {i % 40}]}}"
        elif kind == 1:
            match = f"{{topics: [{topic}], title_keywords: [keyword-{i % 100}]}}"
        elif kind == 2:
            match = f"{{topics: [{topic}], feeds: [feed-{i % 12}], min_score: 0.9}}"
        elif kind == 3:
            match = f"{{topics: {{all: [{topic}, {TOPICS[(i + 1) % 3]}]}}, languages: [en]}}"
        elif kind == 4:
            match = f"{{entities: [Entity {i % 40}], tags: [world]}}"
            extra = "    count: {at_least: 3, within: 1h}\n"
        else:
            match = f"{{topics: [{topic}], title_keywords: [keyword-{i % 100}, nothing]}}"
        out.append(f"  - name: rule-{i}\n    match: {match}\n{extra}"
                   f"    group_by: [rule, feed]\n    throttle: 10m\n    channels: [file]\n")
    return "".join(out)


def throughput(url: str, rule_count: int, batches: list[int], rounds: int,
               profile: str) -> dict[str, Any]:
    engine = make_engine(url)
    rules = compile_rules(parse_rules(many_rules(rule_count, profile)).rules,
                          engine.dialect.name)
    with engine.begin() as conn:
        entity_ids = [conn.execute(tables.entities.insert().values(
            name=f"Entity {i}", label="ORG")).inserted_primary_key[0]  # type: ignore[index]
            for i in range(40)]
    now = datetime.now(UTC)
    skip_history(engine, now)  # only the hits inserted below count
    # Warm up: the daemon builds and compiles its statements once per rules (re)load.
    insert(engine, -1, TOPICS[0], now, entity_ids=[entity_ids[0]])
    insert(engine, -2, TOPICS[1], now, entity_ids=[entity_ids[1]])
    run_tick(engine, rules, now)
    results: dict[str, Any] = {"rules": rule_count, "profile": profile}
    n = 0
    for size in batches:
        elapsed, checked, alerts = 0.0, 0, 0
        for _ in range(rounds):
            for _ in range(size):
                insert(engine, n, TOPICS[n % 3], now - timedelta(seconds=n % 3600),
                       entity_ids=[entity_ids[n % 40]])
                n += 1
            started = time.perf_counter()
            result = run_tick(engine, rules, now)
            elapsed += time.perf_counter() - started
            checked += result.rules_checked
            alerts += len(result.alerts)
        results[f"batch_{size}"] = {
            "hits_per_tick": size, "ticks": rounds,
            "ms_per_tick": round(1000 * elapsed / rounds, 1),
            "rules_evaluated_per_s": round(checked / elapsed),
            "rule_article_checks_per_s": round(checked * size / elapsed),
            "hits_per_s": round(size * rounds / elapsed),
            "alerts_decided": alerts,
        }
    with engine.begin() as conn:  # leave the bench database small
        conn.execute(delete(tables.alerts))
    engine.dispose()
    return results


def prepare(url: str | None, folder: Path, name: str) -> str:
    if url is None:
        url = f"sqlite:///{folder / f'{name}.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        count = conn.execute(select(tables.topic_hits.c.id).limit(1)).first()
    engine.dispose()
    if count is not None:
        print(f"note: {name} database is not empty", file=sys.stderr)
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="an EMPTY database (default: SQLite files in a temp folder)")
    parser.add_argument("--rate", type=float, default=50.0, help="hits per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="NEWSWATCH_ALERT_POLL_INTERVAL_S for the daemon")
    parser.add_argument("--latency-extra-rules", type=int, default=0,
                        help="non-matching rules loaded beside the webhook rule")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profiles", default="none,selective,broad",
                        help="which rule sets to time (comma-separated)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-alert-") as scratch:
        folder = Path(scratch)
        report: dict[str, Any] = {}
        if not args.skip_latency:
            url = prepare(args.database_url, folder, "latency")
            report["latency"] = latency(url, folder, args.rate, args.seconds,
                                        args.poll_interval, args.latency_extra_rules)
            print(json.dumps({"latency": report["latency"]}), flush=True)
        if not args.skip_throughput:
            for profile in args.profiles.split(","):
                url = prepare(args.database_url, folder, f"throughput-{profile}")
                figures = throughput(url, args.rules, [1, 10, 100], args.rounds, profile)
                print(json.dumps({"throughput": figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
