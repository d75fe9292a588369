"""Alert benchmark: commit-to-webhook latency at a steady hit rate, and rule throughput.

1. Latency. ``newswatch alert`` runs as subprocesses, as ``newswatch run`` starts it
   (``--layout split``: ``--role evaluate`` and ``--role deliver``; ``single``: one
   process doing both), at the shipped poll interval unless ``--poll-interval``, with
   rules that send every matching article to a webhook on a
   local HTTP server (``--latency-extra-rules`` more rules that match nothing beside it).
   Timing starts once the daemon is ready: a probe hit's alert has reached the webhook
   (loading 10,000 rules takes seconds; a fixed wait measured the start-up instead).
   This process then commits one article with one topic hit per transaction at a steady
   ``--rate`` (default 50 hits/s) for ``--seconds``; the latency of each alert is the
   time from that commit to the webhook receiving it, split into stages from the outbox
   tables (`latency_stages`). ``--cpu-burners N`` runs N busy-loop processes meanwhile:
   the machine under load.
2. Throughput. With ``--rules`` (default 1,000) varied rules loaded, one evaluation
   (`outbox.run_tick`: match, dedup, group, throttle, outbox write, watermark) is timed
   on batches of new hits; the figure is rules evaluated per second.
3. Scale (``--scale 100,1000,10000``): for each rule count and profile (selective: a hit
   matches 1-2% of the rules; broad: about a third) the time to parse the file and to
   compile and index the rules, then hits per second of whole evaluations (``run_tick``,
   ``--scale-batch`` hits per tick, after ``--scale-warmup`` ticks) with each matcher,
   alternating on the same database: ``index`` (the rule index, count and spike windows
   kept in memory: what the daemon runs), ``index-sqlwindows`` (windows re-counted in SQL
   per evaluation, as before issue 17's second session) and ``sql`` (the per-rule ``UNION
   ALL`` SQL the index replaced), ``index-sqlgroups`` (group states and held articles
   read from SQL on every evaluation, as before issue 17's third session),
   ``index-sqlseen`` (seen (rule, article) pairs read from SQL on every evaluation, as
   before its fourth); ``--stored N``
   first stores N old articles with hits (the history beside which rules run) in one
   database that all rule sets then share (`bench.store_fill`: server-side, as the
   store's benchmark fills it).

``--postgres`` runs on the PostgreSQL of ``scripts/postgres.sh`` (a schema per database,
dropped at the end) instead of SQLite files.

    .venv/bin/python -m bench.bench_alert                      # SQLite
    .venv/bin/python -m bench.bench_alert --database-url postgresql+psycopg://...
    .venv/bin/python -m bench.bench_alert --skip-latency --skip-throughput \
        --scale 100,1000,10000 [--stored 1000000] [--postgres]
    .venv/bin/python -m bench.bench_alert --skip-throughput --latency-extra-rules 10000 \
        --seconds 30 [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy import func as sa_func

from bench.harness import cpu_seconds, postgres_database, uptime
from bench.store_fill import fill_stored
from consumers.alert import evaluate as evaluate_module
from consumers.alert import outbox as outbox_module
from consumers.alert.compile import CompiledRules, compile_rules
from consumers.alert.daemon import settle_heap
from consumers.alert.outbox import run_tick, skip_history
from consumers.alert.rule_index import index_of
from consumers.alert.rules import parse_rules
from consumers.alert.windows import windows_for
from newswatch import migrate
from newswatch.db import make_engine
from newswatch.utc import as_utc
from schemas import tables
from schemas.ids import article_id
from tests.support.daemons import DaemonProcess
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent

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


def latency(url: str, folder: Path, rate: float, seconds: float, poll: float | None,
            extra_rules: int, layout: str = "split", burners: int = 0,
            stage_logs: bool = False) -> dict[str, Any]:
    engine = make_engine(url)
    receiver = WebhookReceiver()
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
           "NEWSWATCH_LOG_FORMAT": "json",
           "NEWSWATCH_LOG_LEVEL": "INFO" if stage_logs else "WARNING"}
    env.pop("NEWSWATCH_METRICS_PORT", None)
    if poll is not None:
        env["NEWSWATCH_ALERT_POLL_INTERVAL_S"] = str(poll)
    argv = ("alert", "--rules", str(rules), "--skip-history")
    logs = [folder / "alert-daemon.log"]
    if layout == "split":  # as `newswatch run` starts them: two processes
        logs.append(folder / "alert-deliver.log")
        daemons = [DaemonProcess("alert", (*argv, "--role", "evaluate"), env, logs[0]),
                   DaemonProcess("alert-deliver", (*argv, "--role", "deliver"), env, logs[1])]
    else:
        daemons = [DaemonProcess("alert", argv, env, logs[0])]
    for daemon in daemons:
        daemon.start()
    committed: dict[str, float] = {}
    load: list[subprocess.Popen[bytes]] = []
    try:
        # A probe every 2 s until one's alert arrives: one stored before the daemon
        # skipped the history it found at start-up is never alerted.
        began, probes = time.monotonic(), list[str]()

        def probe_alerted() -> bool:
            if time.monotonic() - began >= 2 * len(probes):
                probes.append(insert(engine, -1 - len(probes), TOPICS[0], datetime.now(UTC)))
            return bool(set(probes) & receiver.article_arrivals().keys())

        def check() -> None:
            for daemon in daemons:
                daemon.check()

        ready_s = wait_for(probe_alerted, 240, "the alert daemon's first probe alert",
                           check=check, interval_s=0.05)
        # Competing CPU load (`--cpu-burners`): busy loops for the whole measurement,
        # each in a session of its own like any other user's process (with the kernel's
        # autogroup scheduling, loops in this process's session would take their CPU
        # from the webhook receiver here, and the daemons would not feel them).
        load = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                 start_new_session=True) for _ in range(burners)]
        cpu_before = {daemon.name: cpu_seconds(daemon.pid) for daemon in daemons}
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
        load_during = uptime()
        cpu = {daemon.name: round(cpu_seconds(daemon.pid) - cpu_before[daemon.name], 1)
               for daemon in daemons}
        with contextlib.suppress(TimeoutError):  # what is missing then is reported
            wait_for(lambda: not committed.keys() - receiver.article_arrivals().keys(), 60,
                     "every hit's alert", interval_s=0.1)
    finally:
        for burner in load:
            burner.kill()
            burner.wait()
        for daemon in daemons:
            daemon.stop(30)
        receiver.close()
    problems = [line for path in logs for line in path.read_text().splitlines()
                if '"level": "ERROR"' in line or '"level": "WARNING"' in line]
    arrived = receiver.article_arrivals()
    delays = sorted(arrived[a] - t for a, t in committed.items() if a in arrived)
    missing = len(committed) - len(delays)
    missing_ids = [a for a in committed if a not in arrived][:20]
    stages = latency_stages(engine, committed, logs if stage_logs else [])
    engine.dispose()
    return {
        "layout": layout, "cpu_burners": burners, "uptime_during": load_during,
        "cpu_s_while_sending": cpu,
        "ready_s": round(ready_s, 1),
        "hits": len(committed), "rate_achieved": round(achieved, 1), "received": len(delays),
        "missing": missing, "missing_ids": missing_ids, "rules_loaded": 1 + extra_rules,
        "daemon_warnings": len(problems), "first_warning": problems[0][:300] if problems
        else None,
        "p50_ms": round(1000 * statistics.median(delays), 1) if delays else None,
        "p99_ms": round(1000 * delays[int(0.99 * (len(delays) - 1))], 1) if delays else None,
        "max_ms": round(1000 * delays[-1], 1) if delays else None,
        "stages": stages,
    }


def latency_stages(engine: Engine, committed: dict[str, float],
                   logs: list[Path] | None = None) -> dict[str, Any]:
    """Where each alert's time went, from the outbox tables: ``to_decision`` (the hit's
    commit to the start of the evaluation that decided it), ``to_claim`` (from there to
    the deliverer starting the send: the rest of the evaluation, its commit, the wake-up,
    the queue) and ``send`` (the POST); p50 and p99 in ms of each.

    With the daemons' INFO ``logs`` (``--stage-logs``), ``to_claim`` is split at the
    evaluator's "alert decided" line (written after its commit): ``evaluating`` (the
    evaluation and its commit) and ``to_send`` (the wake-up, the claim and the queue
    before the send); ``to_record`` is from the send's start to the deliverer's "alert
    delivered" line (written after the chain's record commits). The evaluator's
    "evaluation committed" lines (`outbox.WriteTurn`: evaluations that decided alerts)
    add ``read`` (its reads and matching, no write lock held on SQLite), ``lock_wait``
    (waiting for the write lock) and ``locked`` (from asking for it to the commit: what
    the deliverer's claims and records wait for, at most), per evaluation."""
    logged = _logged_times(logs or [])
    sends = tables.deliveries
    first = (select(sends.c.alert_id, sa_func.min(sends.c.attempted_at).label("claimed"),
                    sa_func.min(sends.c.latency_ms).label("send_ms"))
             .group_by(sends.c.alert_id).subquery())
    query = (select(tables.alerts.c.id, tables.alerts.c.payload, tables.alerts.c.created_at,
                    first.c.claimed, first.c.send_ms)
             .join(first, first.c.alert_id == tables.alerts.c.id))
    parts: dict[str, list[float]] = {"to_decision": [], "to_claim": [], "send": [],
                                     "evaluating": [], "to_send": [], "to_record": []}
    with engine.connect() as conn:
        for alert_id, payload, decided, claimed, send_ms in conn.execute(query):
            decided_s, claimed_s = as_utc(decided).timestamp(), as_utc(claimed).timestamp()
            for article in payload.get("articles", []):
                if article["id"] in committed:
                    parts["to_decision"].append(1000 * (decided_s - committed[article["id"]]))
                    parts["to_claim"].append(1000 * (claimed_s - decided_s))
                    parts["send"].append(float(send_ms))
                    after_commit = logged.get(("alert decided", alert_id))
                    if after_commit is not None:
                        parts["evaluating"].append(1000 * (after_commit - decided_s))
                        parts["to_send"].append(1000 * (claimed_s - after_commit))
                    recorded = logged.get(("alert delivered", alert_id))
                    if recorded is not None:
                        parts["to_record"].append(1000 * (recorded - claimed_s))
    for entry in _logged(logs or [], "evaluation committed"):
        for name in ("read", "lock_wait", "locked"):
            parts.setdefault(name, []).append(float(entry[f"{name}_ms"]))
    out: dict[str, Any] = {}
    for name, values in parts.items():
        if values:
            values.sort()
            out[name] = {"p50_ms": round(statistics.median(values), 1),
                         "p99_ms": round(values[int(0.99 * (len(values) - 1))], 1)}
    return out


def _logged(logs: list[Path], message: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``message``."""
    found = []
    for path in logs:
        for line in path.read_text().splitlines():
            if message in line:
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("message") == message:
                        found.append(entry)
    return found


def _logged_times(logs: list[Path]) -> dict[tuple[str, int], float]:
    """(message, alert id) -> the time of the first such JSON log line."""
    seen: dict[tuple[str, int], float] = {}
    for path in logs:
        for line in path.read_text().splitlines():
            if '"alert_id"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                key = (entry["message"], int(entry["alert_id"]))
                seen.setdefault(key, datetime.fromisoformat(entry["time"]).timestamp())
    return seen


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


# --- 3. scale: 100 / 1,000 / 10,000 rules, the rule index against per-rule SQL ------------


def sql_match_batch(conn: Any, rules: Any, batch: Any) -> tuple[int, list[Any]]:
    """The matcher before the rule index (issue 17): every rule whose topics the batch
    touches, as ``UNION ALL`` SQL statements of 100 rules. For the A/B only."""
    compiled = rules if isinstance(rules, CompiledRules) else CompiledRules(rules)
    late = bool(batch.late_ids)
    checked, statements = compiled.statements(batch.topics, late)
    params: dict[str, object] = {"low": batch.low, "high": batch.high}
    if late:
        params["late"] = list(batch.late_ids)
    by_index = {rule.index: rule for rule in compiled}
    pairs = [(by_index[index], aid) for statement in statements
             for index, aid in conn.execute(statement, params)]
    return checked, pairs


MATCH_SECONDS: dict[str, float] = {}


@contextlib.contextmanager
def matcher(name: str) -> Iterator[None]:
    """Evaluation with the rule index (``index``) or the per-rule SQL (``sql``); the time
    spent matching is added up in ``MATCH_SECONDS[name]``."""
    original = evaluate_module.match_batch
    original_windows = outbox_module.windows_for
    chosen = sql_match_batch if name == "sql" else original
    original_groups = outbox_module.groups_for
    original_seen = outbox_module.seen_for
    # before windows were kept in memory (issue 17, session 2)
    if name not in ("index", "index-sqlgroups", "index-sqlseen"):
        outbox_module.windows_for = lambda engine, rules: None  # type: ignore[assignment]
    if name not in ("index", "index-sqlseen"):  # before group states were kept (session 3)
        outbox_module.groups_for = lambda engine, rules: None  # type: ignore[assignment]
    if name != "index":  # before seen pairs were kept in memory (issue 17, session 4)
        outbox_module.seen_for = lambda engine, rules: None  # type: ignore[assignment]

    def timed(conn: Any, rules: Any, batch: Any) -> tuple[int, list[Any]]:
        began = time.perf_counter()
        try:
            return chosen(conn, rules, batch)
        finally:
            MATCH_SECONDS[name] = MATCH_SECONDS.get(name, 0.0) + time.perf_counter() - began

    evaluate_module.match_batch = timed
    try:
        yield
    finally:
        evaluate_module.match_batch = original
        outbox_module.windows_for = original_windows
        outbox_module.groups_for = original_groups
        outbox_module.seen_for = original_seen


def reset(engine: Engine) -> None:
    """Forget the previous rule set's decisions and cursor (the stored articles stay)."""
    with engine.begin() as conn:
        for table in (tables.alert_sends, tables.alert_ledger, tables.deliveries,
                      tables.alerts, tables.alert_groups, tables.alert_state):
            conn.execute(delete(table))


def timed_tick(engine: Engine, rules: CompiledRules, now: datetime, entity_ids: list[int],
               state: dict[str, int], name: str, hits: int,
               profiler: cProfile.Profile | None = None) -> tuple[float, float, int]:
    """Store ``hits`` new hits, then time one evaluation with matcher ``name``: (wall
    seconds, this process's CPU seconds, alerts decided). CPU time moves less than wall
    time with the machine's load (a database server's CPU, PostgreSQL's, is not in it).
    ``profiler``: profile the evaluation (the figures then include its overhead)."""
    for _ in range(hits):
        n = state["n"]
        insert(engine, n, TOPICS[n % 3], now - timedelta(seconds=n % 3600),
               entity_ids=[entity_ids[n % 40]])
        state["n"] = n + 1
    with matcher(name):
        started, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        try:
            result = run_tick(engine, rules, now)
        finally:
            if profiler is not None:
                profiler.disable()
        return (time.perf_counter() - started, time.process_time() - cpu,
                len(result.alerts))


def scale(url_for: Any, counts: list[int], profiles: list[str], batch: int, rounds: int,
          matchers: list[str], stored: int, warmup: int, profile_top: int = 0
          ) -> list[dict[str, Any]]:
    """For each rule count and profile: parse and compile time, then hits/s of each
    matcher on the same database, alternating round by round, and this process's CPU
    seconds per 1,000 hits. ``profile_top``: after the timed rounds, one more evaluation
    of the first matcher under cProfile, whose ``profile_top`` costliest functions
    (cumulative and own time) are printed."""
    rows = []
    shared: Engine | None = None
    if stored:
        shared = make_engine(url_for("scale-stored"))
        seconds = fill_stored(shared, stored)
        print(json.dumps({"filled": stored, "seconds": round(seconds),
                          "uptime": uptime()}), flush=True)
    for profile in profiles:
        for count in counts:
            text = many_rules(count, profile)
            began = time.perf_counter()
            parsed = parse_rules(text)
            parsed_s = time.perf_counter() - began
            engine = shared or make_engine(url_for(f"scale-{profile}-{count}"))
            reset(engine)
            began = time.perf_counter()
            rules = compile_rules(parsed.rules, engine.dialect.name)
            compiled_s = time.perf_counter() - began
            began = time.perf_counter()
            index_of(rules)
            indexed_s = time.perf_counter() - began
            settle_heap()  # as the daemon does once its rules are loaded
            with engine.begin() as conn:
                entity_ids = [conn.execute(tables.entities.insert().values(
                    name=f"Entity {i}", label="ORG")).inserted_primary_key[0]  # type: ignore[index]
                    for i in range(40)]
            now = datetime.now(UTC)
            skip_history(engine, now)
            figures: dict[str, list[float]] = {name: [] for name in matchers}
            cpu_per_k: dict[str, list[float]] = {name: [] for name in matchers}
            alerts: dict[str, int] = {name: 0 for name in matchers}
            state = {"n": 0}

            for _ in range(warmup):  # groups seen, windows read once, caches filled
                for name in matchers:
                    timed_tick(engine, rules, now, entity_ids, state, name, batch)
            MATCH_SECONDS.clear()
            cache = windows_for(engine, rules)
            cold_before = cache.cold_loads if cache is not None else 0
            for _ in range(rounds):
                for name in matchers:
                    seconds, cpu, fired = timed_tick(engine, rules, now, entity_ids, state,
                                                     name, batch)
                    figures[name].append(batch / seconds)
                    cpu_per_k[name].append(1000 * cpu / batch)
                    alerts[name] += fired
            if profile_top:
                profiler = cProfile.Profile()
                timed_tick(engine, rules, now, entity_ids, state, matchers[0], batch,
                           profiler)
                for order in ("cumulative", "tottime"):
                    pstats.Stats(profiler, stream=sys.stdout).sort_stats(order).print_stats(
                        profile_top)
            if shared is None:
                engine.dispose()
            row = {"profile": profile, "rules": count, "stored": stored,
                   "parse_s": round(parsed_s, 2), "compile_s": round(compiled_s, 2),
                   "index_s": round(indexed_s, 2), "batch": batch, "rounds": rounds,
                   "warmup": warmup,
                   "window_cold_loads": (cache.cold_loads - cold_before) if cache else None,
                   "uptime": uptime()}
            for name, rates in figures.items():
                row[f"{name}_hits_per_s"] = round(max(rates), 1)
                row[f"{name}_match_ms_per_tick"] = round(
                    1000 * MATCH_SECONDS.get(name, 0.0) / rounds, 1)
                row[f"{name}_hits_per_s_median"] = round(statistics.median(rates), 1)
                row[f"{name}_alerts_per_tick"] = round(alerts[name] / rounds)
                row[f"{name}_cpu_s_per_1000_hits_median"] = round(
                    statistics.median(cpu_per_k[name]), 3)
            rows.append(row)
            print(json.dumps({"scale": row}), flush=True)
    if shared is not None:
        shared.dispose()
    return rows


SCHEMAS = contextlib.ExitStack()  # the PostgreSQL schemas of this run, dropped at the end


def prepare(url: str | None, folder: Path, name: str, postgres: bool = False) -> str:
    if postgres:
        url = SCHEMAS.enter_context(postgres_database())
    elif url is None:
        url = f"sqlite:///{folder / f'{name}.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        count = conn.execute(select(tables.topic_hits.c.id).limit(1)).first()
    engine.dispose()
    if count is not None:
        print(f"note: {name} database is not empty", file=sys.stderr)
    return url


TARGETS = {"selective": (10_000, 1_000.0), "broad": (1_000, 200.0)}  # rules, hits/s


def print_scale(rows: list[dict[str, Any]], matchers: list[str]) -> None:
    # hits/s: the median of the timed rounds (the target is judged on it) and the best.
    print("| profile | rules | stored | parse | compile + index | alerts/tick | " + " | ".join(
        f"{name} hits/s median / best (match ms/tick; CPU s per 1,000 hits)"
        for name in matchers)
        + " | target (median) | uptime |")
    print("|---|---|---|---|---|---|" + "---|" * len(matchers) + "---|---|")
    for row in rows:
        rules, target = TARGETS.get(row["profile"], (0, 0.0))
        mark = ""
        if row["rules"] == rules and "index_hits_per_s" in row:
            met = row["index_hits_per_s_median"] >= target
            mark = f">= {target:.0f} ({'met' if met else 'missed'})"
        compiled = row["compile_s"] + row["index_s"]
        if row["rules"] == 10_000:
            mark += f"; compile < 2 s ({'met' if compiled < 2 else 'missed'})"
        print(f"| {row['profile']} | {row['rules']:,} | {row['stored']:,} | "
              f"{row['parse_s']:.2f} s | {compiled:.2f} s | "
              f"{row[f'{matchers[0]}_alerts_per_tick']:,} | " + " | ".join(
                  f"{row[f'{name}_hits_per_s_median']:,.0f} / {row[f'{name}_hits_per_s']:,.0f} "
                  f"({row[f'{name}_match_ms_per_tick']:,.0f}; "
                  f"{row[f'{name}_cpu_s_per_1000_hits_median']:.2f})"
                  for name in matchers)
              + f" | {mark} | {row['uptime']} |")


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
    parser.add_argument("--layout", choices=("split", "single"), default="split",
                        help="split: evaluator and deliverer in two processes, as `newswatch "
                             "run` starts them; single: one `newswatch alert` process")
    parser.add_argument("--cpu-burners", type=int, default=0,
                        help="busy-loop processes competing for the CPU while measuring")
    parser.add_argument("--stage-logs", action="store_true",
                        help="run the daemons at INFO and split the latency further by "
                             "their log lines (`latency_stages`)")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profiles", default="none,selective,broad",
                        help="which rule sets to time (comma-separated)")
    parser.add_argument("--scale", default=None, metavar="COUNTS",
                        help="rule counts to time, e.g. 100,1000,10000 (index against SQL)")
    parser.add_argument("--scale-batch", type=int, default=100, help="hits per tick")
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--scale-matchers", default="index,index-sqlwindows")
    parser.add_argument("--scale-warmup", type=int, default=2,
                        help="ticks per matcher before timing")
    parser.add_argument("--scale-profile-top", type=int, default=0, metavar="N",
                        help="profile one more evaluation (cProfile) and print its N "
                             "costliest functions")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL of scripts/postgres.sh (a schema per database)")
    parser.add_argument("--scale-profiles", default="selective,broad")
    parser.add_argument("--stored", type=int, default=0,
                        help="old articles stored before timing the scale runs")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    try:
        return run(args)
    finally:
        SCHEMAS.close()


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-alert-") as scratch:
        folder = Path(scratch)
        report: dict[str, Any] = {}
        if not args.skip_latency:
            url = prepare(args.database_url, folder, "latency", args.postgres)
            report["latency"] = latency(url, folder, args.rate, args.seconds,
                                        args.poll_interval, args.latency_extra_rules,
                                        args.layout, args.cpu_burners, args.stage_logs)
            report["latency"]["database"] = "postgresql" if args.postgres else "sqlite"
            report["latency"]["target"] = "p99 <= 1000 ms at 50 hits/s with 10,000 rules"
            report["latency"]["uptime"] = uptime()
            print(json.dumps({"latency": report["latency"]}), flush=True)
        if args.scale:
            report["scale"] = scale(
                lambda name: prepare(args.database_url, folder, name, args.postgres),
                [int(c) for c in args.scale.split(",")], args.scale_profiles.split(","),
                args.scale_batch, args.scale_rounds, args.scale_matchers.split(","),
                args.stored, args.scale_warmup, args.scale_profile_top)
            print_scale(report["scale"], args.scale_matchers.split(","))
        if not args.skip_throughput:
            for profile in args.profiles.split(","):
                url = prepare(args.database_url, folder, f"throughput-{profile}",
                              args.postgres)
                figures = throughput(url, args.rules, [1, 10, 100], args.rounds, profile)
                print(json.dumps({"throughput": figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
