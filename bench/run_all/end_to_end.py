"""Section 5, end to end: the four daemons as subprocesses (``python -m newswatch.cli
<stage>``); a feed server gains on-topic items at a steady rate; latency from the moment
an item appears in its feed to the webhook receiver getting its alert, split at the
producer's fetch; peak memory (VmHWM) of each daemon and of the broker."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.harness import daemon_env, peak_rss_mb, percentile, progress, start_daemon
from bench.run_all.section import Figures, Row, Run, Section, met, number
from bench.run_all.steady_feeds import (
    SteadyFeeds,
    feed_url,
    on_topic_stories,
    serve_steady_feeds,
)
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.postgres import POSTGRES_ENV, fresh_schema
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

ENRICH_MEMORY_TARGET_MB = 600.0


def rules_yaml(webhook_url: str) -> str:
    """One rule that alerts every article with any default topic, at once (throttle 0)."""
    return (
        "version: 1\n"
        "channels:\n"
        f"  hook: {{type: webhook, url: '{webhook_url}', timeout: 5s}}\n"
        "rules:\n"
        "  - name: bench-every-article\n"
        "    match: {topics: [is_threat, drug_trafficking, recognition]}\n"
        "    throttle: 0s\n"
        "    channels: [hook]\n")


def measure(run: Run) -> Figures:
    bootstrap, scratch, sizes = run.bootstrap, run.scratch, run.sizes
    poll_interval_s = run.e2e_poll_interval_s
    stories = on_topic_stories(run.enricher)
    if not stories:
        raise RuntimeError("no labelled on-topic story gets a topic hit")
    folder = run.folder("e2e")
    prefix = run.prefix("e2e")
    steady = int(sizes.e2e_rate * sizes.e2e_seconds)
    warm = 2 * sizes.e2e_feeds
    everything = range(warm, warm + steady)
    feeds = SteadyFeeds(stories, sizes.e2e_feeds, warm, steady, sizes.e2e_rate, run.token)
    daemons: list[DaemonProcess] = []

    def check() -> None:
        for daemon in daemons:
            daemon.check()

    with contextlib.ExitStack() as cleanup:  # undone in reverse: daemons stop first
        base = os.environ.get(POSTGRES_ENV)
        database_url = (cleanup.enter_context(fresh_schema(base, "bench")) if base
                        else f"sqlite:///{folder / 'e2e.db'}")
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
        ensure_topics(Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix))
        receiver = WebhookReceiver()
        cleanup.callback(receiver.close)
        server = serve_steady_feeds(feeds)
        cleanup.callback(server.close)
        (folder / "feeds.yaml").write_text("feeds:\n" + "".join(
            f"  - {{id: wire-{n}, name: Bench wire {n}, url: '{feed_url(server, n)}'}}\n"
            for n in range(sizes.e2e_feeds)))
        (folder / "rules.yaml").write_text(rules_yaml(receiver.url))
        env = daemon_env(bootstrap, prefix, folder, database_url=database_url,
                         feeds_file=str(folder / "feeds.yaml"),
                         rules_file=str(folder / "rules.yaml"),
                         producer_default_interval_s=f"{poll_interval_s:g}")
        cleanup.callback(stop_all, daemons)

        def arrived(items: range) -> int:
            seen = receiver.article_arrivals()
            return sum(1 for i in items if feeds.article_id(i) in seen)

        for stage in ("producer", "enrich", "store", "alert"):
            daemons.append(start_daemon(stage, env, scratch / "logs", stage))
        began = time.monotonic()
        wait_for(lambda: arrived(range(warm)) == warm, 240,
                 "the warm-up items' alerts (all four daemons up)", check=check,
                 interval_s=0.5)
        startup_s = time.monotonic() - began
        progress(f"  pipeline up in {startup_s:.0f}s; {steady} items at "
                 f"{sizes.e2e_rate:g}/s over {sizes.e2e_seconds:g}s")
        feeds.start_steady()
        with contextlib.suppress(TimeoutError):  # what is missing then is reported
            wait_for(lambda: arrived(everything) == steady, sizes.e2e_seconds + 60,
                     "every steady item's alert", check=check, interval_s=0.5)
        memory = {daemon.name: peak_rss_mb(daemon.pid) for daemon in daemons}
        broker_pid = run.broker.pid() if run.broker is not None else None
        if broker_pid is not None:
            memory["kafka broker (JVM)"] = peak_rss_mb(broker_pid)
    received = receiver.article_arrivals()
    latency, fetch_wait, pipeline = [], [], []
    for item in everything:
        at = received.get(feeds.article_id(item))
        if at is None:
            continue
        latency.append(at - feeds.added_at(item))
        served = feeds.first_served.get(item)
        if served is not None:
            fetch_wait.append(served - feeds.added_at(item))
            pipeline.append(at - served)
    if not latency:
        raise RuntimeError("no steady item's alert arrived")

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50_s": round(statistics.median(values), 3),
                "p99_s": round(percentile(values, 0.99), 3),
                "max_s": round(max(values), 3)}

    return {
        "database": "postgresql" if base else "sqlite",
        "feeds": sizes.e2e_feeds, "rate_per_s": sizes.e2e_rate,
        "seconds": sizes.e2e_seconds, "poll_interval_s": poll_interval_s,
        "items": steady, "alerted": len(latency), "missing": steady - len(latency),
        "startup_s": round(startup_s, 1),
        "latency": summary(latency),
        "added_to_fetched": summary(fetch_wait) if fetch_wait else None,
        "fetched_to_webhook": summary(pipeline) if pipeline else None,
        "peak_rss_mb": memory,
    }


def rows(t: Figures, _results: dict[str, Any]) -> Sequence[Row]:
    lat, wait, rest = t["latency"], t["added_to_fetched"], t["fetched_to_webhook"]
    out: list[Row] = [(
        "End to end: feed -> webhook p50 / p99",
        f"{lat['p50_s']:.2f} s / {lat['p99_s']:.2f} s", "",
        f"{t['items']} items at {t['rate_per_s']:g}/s over {t['seconds']:g}s in "
        f"{t['feeds']} feeds polled every {t['poll_interval_s']:g}s; {t['database']}; "
        f"missing {t['missing']}")]
    if wait and rest:
        out.append(("  of which: waiting for the poll, p50 / p99",
                    f"{wait['p50_s']:.2f} s / {wait['p99_s']:.2f} s", "",
                    "item added -> first served to the producer"))
        out.append(("  of which: fetched -> webhook, p50 / p99",
                    f"{rest['p50_s']:.2f} s / {rest['p99_s']:.2f} s", "",
                    "fetch, publish, enrich, store, rule, delivery"))
    for name, mb in t["peak_rss_mb"].items():
        target = ""
        if name == "enrich" and mb is not None:
            target = (f"<= {ENRICH_MEMORY_TARGET_MB:.0f} MB "
                      f"({met(mb <= ENRICH_MEMORY_TARGET_MB)})")
        out.append((f"Peak memory: {name}", f"{number(mb)} MB", target,
                    "VmHWM during the end-to-end run"))
    return out


SECTION = Section("end_to_end", "End to end", measure, rows)
