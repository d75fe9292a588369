"""Full-text end-to-end benchmark: the real workload through all four daemons and Kafka,
beside raw spaCy on the same texts, in the same run.

    .venv/bin/python -m bench.bench_fulltext [--articles 600] [--feeds 15]
        [--processes 1,2] [--copies 0.3] [--kernel auto|blis|numpy] [--json FILE]
        [--batch-size N] [--partitions N] [--reuse N] [--skip-raw|--skip-pipeline]

Articles: ``--articles`` full texts of 560-700 words built from the project's real texts
(`fulltext_corpus`), ``--copies`` of them exact copies of earlier ones under links of
their own (syndicated wire copy). They are served as ``--feeds`` RSS feeds (full text in
``content:encoded``) from a server on 127.0.0.1, all there from the first poll.

For each enrich process count in ``--processes``, in this order:

1. raw spaCy: the enrichment pipeline (``load_pipeline``: NER, sentences) on the kernel
   ``--kernel`` selects (``auto`` is decided once, by this process before anything else
   starts, and that kernel is forced on raw spaCy and on every enrich daemon: probed in
   each process while the others load, one enrich daemon of a run measured numpy at
   50 GFLOP/s instead of ~130 and kept BLIS, so the two sides of the ratio ran different
   kernels), ``nlp.pipe`` over the same texts the enricher analyses, split
   over that many processes; from the moment every process has loaded its model to the
   last document done.
2. the pipeline: a Kafka broker of its own (topics with the default partition count),
   SQLite, and ``newswatch store``, ``alert``, that many ``enrich`` and then
   ``producer`` as subprocesses; timed from the producer's first poll (the feed server's
   first request) to the last stored article (``articles.stored_at``) and to the last
   alert at a local webhook (one rule alerting every article with a default topic).
   Each daemon's CPU seconds from just before the first poll to the end (the producer's
   from its start, with its start-up before the first poll shown apart and left out of
   the budget), its peak memory (VmHWM), the kernel each
   enrich process logged; the idle pipeline's CPU per second (2 s before the producer
   starts), a timeline (`fulltext_timeline`: published, enriched, stored, each enrich
   process's busy span and idle tail), the articles each enrich process got, and the CPU
   budget: CPU per article, raw NER's share of it, and the ratio and rate the rest allows,
   so the table shows why a target is or is not within the machine.

Every figure is printed beside ``uptime``: wall-clock rates depend on what else the
machine runs, CPU seconds much less. Bounded: each wait has a limit, every process and
server is stopped at the end, also after Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from kafka import KafkaAdminClient
from sqlalchemy import func, select

from bench.fulltext_corpus import fulltext_articles
from bench.fulltext_timeline import (
    CpuSampler,
    assignment,
    budget,
    ignore_errors,
    published_span,
)
from bench.harness import (
    cpu_seconds,
    daemon_env,
    group_settled,
    local_broker,
    peak_rss_mb,
    progress,
    start_daemon,
    uptime,
)
from bench.run_all.end_to_end import rules_yaml
from bench.run_all.machine import machine
from consumers.enrich.daemon import GROUP_ID as ENRICH_GROUP
from consumers.enrich.enrich import document_text
from consumers.store.daemon import DEFAULT_GROUP as STORE_GROUP
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_local import LocalKafka
from newswatch.logs import setup_logging
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas import tables
from schemas.ids import article_id, canonical_url
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.feed_server import FeedServer, Reply, Route
from tests.support.ports import free_port
from tests.support.waits import wait_for
from tests.support.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_JSON = ROOT / "bench" / "results_fulltext.json"
TARGET_RATE = 40.0  # articles/s end to end on 2 cores (issue 17)
TARGET_RATIO = 0.85  # of raw NER in 2 processes, same kernel
BROKER = "kafka broker (JVM)"
IDLE_WINDOW_S = 2.0  # the idle pipeline's CPU is measured over this long before a run


def decide_kernel(setting: str) -> tuple[str, str]:
    """The kernel both sides of the ratio run, and why: ``auto`` decided once, here,
    before the run's processes start (see the module docstring)."""
    if setting != "auto":
        return setting, f"forced ({setting})"
    from consumers.enrich.kernel import select_kernel

    decided = select_kernel("auto")
    return decided.kernel, decided.reason


# --- raw spaCy in N processes ------------------------------------------------------------


def _raw_worker(texts: list[str], kernel: str, barrier: Any, results: Any) -> None:
    from consumers.enrich.kernel import kernel_ops, select_kernel
    from consumers.enrich.nlp import load_pipeline

    choice = select_kernel(kernel)  # type: ignore[arg-type]
    with kernel_ops(choice.kernel):
        nlp = load_pipeline()
    list(nlp.pipe(texts[:8]))  # what loads lazily, loaded before the clock starts
    barrier.wait()
    cpu = time.process_time()
    for _ in nlp.pipe(texts, batch_size=64):
        pass
    results.put({"pid": os.getpid(), "ended": time.time(), "documents": len(texts),
                 "cpu_s": round(time.process_time() - cpu, 2), "kernel": choice.kernel,
                 "kernel_reason": choice.reason,
                 "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


def raw_run(texts: Sequence[str], processes: int, kernel: str) -> dict[str, Any]:
    """Raw ``nlp.pipe`` over ``texts`` split over ``processes``: docs/s from the moment
    all have loaded to the last one done."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [context.Process(target=_raw_worker,
                               args=(list(texts[i::processes]), kernel, barrier, results))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=180)
        began = time.time()
        done = [results.get(timeout=120 + 2 * len(texts)) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    seconds = max(item["ended"] for item in done) - began
    return {"processes": processes, "documents": len(texts), "seconds": round(seconds, 2),
            "docs_per_s": round(len(texts) / seconds, 2),
            "docs_per_cpu_s": round(len(texts) / sum(item["cpu_s"] for item in done), 2),
            "workers": done, "uptime": uptime()}


# --- the feeds ---------------------------------------------------------------------------


class StaticFeeds:
    """The articles as ``feeds`` RSS documents on 127.0.0.1 (``/feed/<n>``), all items
    there from the start; notes the time of the first request."""

    def __init__(self, articles: Sequence[tuple[str, str]], feeds: int, token: str) -> None:
        self.token = token
        self.first_request: float | None = None
        self.on_first_request: Callable[[], None] | None = None  # e.g. a CPU reading
        published = format_datetime(datetime.now(UTC))
        bodies: list[list[str]] = [[] for _ in range(feeds)]
        for n, (title, text) in enumerate(articles):
            paragraphs = [p for p in text.split("\n\n") if p.strip()]
            content = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
            bodies[n % feeds].append(
                f"<item><title>{escape(title)}</title><link>{self.link(n)}</link>"
                f"<guid isPermaLink=\"false\">{token}-{n}</guid><pubDate>{published}</pubDate>"
                f"<description>{escape(paragraphs[0])}</description>"
                f"<content:encoded>{escape(content)}</content:encoded></item>")
        self.documents = [
            ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
             'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
             f"<title>Full-text wire {number}</title><link>https://bench.example.org/</link>"
             + "".join(items) + "</channel></rss>").encode()
            for number, items in enumerate(bodies)]
        self.server = FeedServer()
        for number, document in enumerate(self.documents):
            self.server.add(f"/feed/{number}", self._route(document))

    def _route(self, body: bytes) -> Route:
        def route(_headers: dict[str, str]) -> Reply:
            if self.first_request is None:
                self.first_request = time.time()
                if self.on_first_request is not None:
                    self.on_first_request()
            return Reply(200, body, {"Content-Type": "application/rss+xml; charset=utf-8"})

        return route

    def link(self, n: int) -> str:
        return f"https://bench.example.org/{self.token}/full/{n}.html"

    def article_id(self, n: int) -> str:
        return article_id(canonical_url(self.link(n)))

    def url(self, number: int) -> str:
        return self.server.url(f"/feed/{number}")

    def close(self) -> None:
        self.server.close()


# --- the pipeline ------------------------------------------------------------------------


def _kernels(daemon: DaemonProcess) -> list[str]:
    """What the enrich daemon logged about its matrix kernel."""
    found = []
    for line in daemon.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("message") == "matrix kernel selected":
                found.append(f"{entry.get('kernel')} ({entry.get('reason')}; BLIS "
                             f"'{entry.get('blis_arch')}', {entry.get('numpy_blas')})")
    return found


def _metric(port: int, name: str) -> float | None:
    """One counter of a daemon's /metrics, or None when it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def pipeline_run(bootstrap: str, broker: LocalKafka | None, scratch: Path,
                 articles: Sequence[tuple[str, str]], processes: int, feeds: int,
                 kernel: str, partitions: int | None = None, reuse: int | None = None,
                 batch_size: int | None = None) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    folder = scratch / f"pipeline-{processes}-{token}"
    folder.mkdir()
    prefix = f"bench.{token}.full."
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
    names = ensure_topics(settings, partitions)  # None: the default count
    database_url = f"sqlite:///{folder / 'fulltext.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    daemons: list[DaemonProcess] = []

    def check() -> None:
        for daemon in daemons:
            daemon.check()

    with contextlib.ExitStack() as cleanup:  # undone in reverse: daemons stop first
        cleanup.callback(engine.dispose)
        receiver = WebhookReceiver()
        cleanup.callback(receiver.close)
        server = StaticFeeds(articles, feeds, token)
        cleanup.callback(server.close)
        (folder / "feeds.yaml").write_text("feeds:\n" + "".join(
            f"  - {{id: full-{n}, name: Full-text wire {n}, url: '{server.url(n)}'}}\n"
            for n in range(feeds)))
        (folder / "rules.yaml").write_text(rules_yaml(receiver.url))
        env = daemon_env(bootstrap, prefix, folder, database_url=database_url,
                                 feeds_file=str(folder / "feeds.yaml"),
                                 rules_file=str(folder / "rules.yaml"),
                                 producer_default_interval_s="3600", enrich_kernel=kernel,
                                 **({} if reuse is None else {"enrich_reuse": str(reuse)}),
                                 **({} if batch_size is None
                                    else {"enrich_batch_size": str(batch_size)}))
        enrich_env = {**env, "NEWSWATCH_LOG_LEVEL": "INFO"}  # for the kernel line
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        cleanup.callback(admin.close)
        cleanup.callback(stop_all, daemons)
        for stage in ("store", "alert"):
            daemons.append(start_daemon(stage, env, folder / "logs", stage))
        metrics_ports = {}
        for n in range(processes):
            metrics_ports[f"enrich-{n}"] = port = free_port()
            daemons.append(start_daemon(f"enrich-{n}", {
                **enrich_env, "NEWSWATCH_METRICS_PORT": str(port)}, folder / "logs", "enrich"))
        wait_for(lambda: group_settled(admin, ENRICH_GROUP, processes)
                         and group_settled(admin, STORE_GROUP, 1), 240,
                         "enrich and store groups settled", check=check, interval_s=0.5)
        broker_pid = broker.pid() if broker is not None else None  # None: not ours
        sampler = CpuSampler()
        sampler.pids.update({d.name: d.pid for d in daemons})
        if broker_pid is not None:
            sampler.pids[BROKER] = broker_pid
        # What the idle pipeline costs per second (polls, heartbeats, the broker's own
        # housekeeping): the part of each figure below that is not per article.
        idle_before = dict(sampler.pids.items())
        idle_cpu = {name: cpu_seconds(pid) for name, pid in idle_before.items()}
        time.sleep(IDLE_WINDOW_S)
        idle_rate = {name: round((cpu_seconds(pid) - idle_cpu[name]) / IDLE_WINDOW_S, 3)
                     for name, pid in idle_before.items()}
        cpu_before = {d.name: cpu_seconds(d.pid) for d in daemons}
        broker_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        producer = start_daemon("producer", env, folder / "logs", "producer")
        daemons.append(producer)
        sampler.pids["producer"] = producer.pid
        startup: dict[str, float] = {}
        server.on_first_request = lambda: startup.setdefault(
            "producer", cpu_seconds(producer.pid))
        sampler.start()
        cleanup.callback(sampler.stop)
        # The producer's figure counts from its start; its start-up before the first
        # poll is noted apart (`startup`) and left out of the CPU budget.
        cpu_before["producer"] = 0.0
        progress(f"  pipeline with {processes} enrich process(es) up; producer started")

        def stored() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(tables.articles))
                           .scalar_one())

        wait_for(lambda: stored() >= len(articles), 120 + 2 * len(articles),
                         "every article stored", check=check, interval_s=0.5)
        with engine.connect() as conn:
            last_stored = conn.execute(select(func.max(tables.articles.c.stored_at))).scalar_one()
            a = tables.articles.c
            marks = conn.execute(select(func.min(a.fetched_at), func.max(a.fetched_at),
                                        func.min(a.enriched_at), func.max(a.enriched_at),
                                        func.min(a.stored_at))).one()
            alerted = set(conn.execute(select(tables.topic_hits.c.article_id).distinct())
                          .scalars())

        def article_arrivals() -> dict[str, float]:
            # An alert's payload lists at most 50 articles (`payload.MAX_ARTICLES`), and
            # one throttle-free alert of a busy feed can carry more: which articles an
            # alert carried is read from SQL (`alerts.article_ids`) by its dedup key.
            received: dict[str, float] = {}
            for got in receiver.accepted:
                received.setdefault(str(got.payload.get("dedup_key")), got.at)
            with engine.connect() as conn:
                carried = conn.execute(select(tables.alerts.c.dedup_key,
                                              tables.alerts.c.article_ids)).all()
            first: dict[str, float] = {}
            for key, ids in carried:
                at = received.get(key)
                for aid in (ids or []) if at is not None else []:
                    first[aid] = min(first.get(aid, at), at)
            return first

        def arrived() -> int:
            return len(alerted & article_arrivals().keys())

        with contextlib.suppress(TimeoutError):  # what is missing is reported
            wait_for(lambda: arrived() == len(alerted), 120, "every alert", check=check,
                     interval_s=0.5)
        cpu = {d.name: round(cpu_seconds(d.pid) - cpu_before[d.name], 2)
               for d in daemons}
        broker_cpu = cpu_seconds(broker_pid) - broker_before if broker_pid else 0.0
        memory = {d.name: peak_rss_mb(d.pid) for d in daemons}
        if broker_pid is not None:
            memory[BROKER] = peak_rss_mb(broker_pid)
        kernels = {d.name: _kernels(d) for d in daemons if d.name.startswith("enrich")}
        published = ignore_errors(lambda: published_span(bootstrap, names.articles))
        owners = ignore_errors(lambda: assignment(admin, ENRICH_GROUP)) or {}
        enriched = {name: _metric(port, "newswatch_articles_enriched_total")
                    for name, port in metrics_ports.items()}
        sampler.stop()
        reused = {name: _metric(port, "newswatch_analyses_reused_total")
                  for name, port in metrics_ports.items()}
        arrivals = article_arrivals()
        alert_times = [arrivals[a] for a in alerted if a in arrivals]
    first = server.first_request
    if first is None:
        raise RuntimeError("the producer never polled")

    def since_first(moment: datetime) -> float:
        return round(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() - first, 2)

    stored_s = since_first(last_stored)
    alert_s = (max(alert_times) - first) if alert_times else None
    timeline = dict(zip(("first_fetched", "last_fetched", "first_enriched", "last_enriched",
                         "first_stored"), (since_first(m) for m in marks), strict=True))
    if published is not None and published["first"] is not None:
        timeline["first_published"] = round(published["first"] - first, 2)
        timeline["last_published"] = round(published["last"] - first, 2)
    busy = {name: sampler.busy_span(name, first) for name in cpu if name.startswith("enrich")}
    # Producer CPU before its first poll is its start-up (imports, database, Kafka
    # client): paid once per process, not per article.
    producer_startup = round(startup.get("producer", 0.0), 2)
    per_partition = published["per_partition"] if published is not None else {}
    shares = {client: sum(per_partition.get(p, 0) for p in parts)
              for client, parts in owners.items()}
    return {
        "processes": processes, "articles": len(articles), "feeds": feeds,
        "partitions": partitions or settings.kafka_partitions, "reuse": reuse,
        "batch_size": batch_size or settings.enrich_batch_size,
        "seconds_to_last_stored": round(stored_s, 2),
        "articles_per_s": round(len(articles) / stored_s, 2),
        "seconds_to_last_alert": None if alert_s is None else round(alert_s, 2),
        "alerts_expected": len(alerted), "alerts_arrived": len(alert_times),
        # Seconds after the first poll: where the time went.
        "timeline_s": timeline,
        "enrich_busy_s": busy,
        "enrich_tail_idle_s": {name: (None if span is None else round(stored_s - span[1], 2))
                               for name, span in busy.items()},
        "articles_per_partition": per_partition, "articles_per_enrich_member": shares,
        "articles_enriched": enriched,
        "cpu_seconds": {**cpu, BROKER: round(broker_cpu, 2)},
        "producer_startup_cpu_s": producer_startup,
        "idle_cpu_per_s": idle_rate,
        "peak_rss_mb": memory, "kernels": kernels, "analyses_reused": reused,
        "uptime": uptime(),
    }


# --- the report --------------------------------------------------------------------------


def report(results: dict[str, Any]) -> list[str]:
    lines = [f"{results['articles']} full-text articles, {results['words']:,} words "
             f"(mean {results['words'] / results['articles']:.0f}), "
             f"{results['distinct']} distinct texts ({results['copies']:.0%} copies), "
             f"{results['feeds']} feeds; kernel setting {results['kernel']}: "
             f"{results.get('kernel_used')} ({results.get('kernel_reason')}) for raw spaCy "
             "and every enrich process", "",
             "| run | articles/s | / raw NER (same processes) | to last alert | uptime |",
             "|---|---|---|---|---|"]
    for processes in results["processes"]:
        raw = results["raw"].get(str(processes))
        if raw is not None:
            lines.append(f"| raw spaCy, {processes} process(es) | {raw['docs_per_s']:.1f} "
                         f"docs/s ({raw['docs_per_cpu_s']:.1f} per CPU s) | 1.00 | | "
                         f"{raw['uptime']} |")
        run = results["pipeline"].get(str(processes))
        if run is None:
            continue
        if "error" in run:
            lines.append(f"| pipeline, {processes} enrich | failed: {run['error'][:120]} |"
                         " | | |")
            continue
        ratio = run["articles_per_s"] / raw["docs_per_s"] if raw else float("nan")
        run["ratio_to_raw"] = round(ratio, 3)
        # Per CPU second, which other load on the machine barely moves: the enrich
        # processes' articles per CPU second against raw spaCy's documents per CPU second.
        enrich_cpu = sum(v for k, v in run["cpu_seconds"].items() if k.startswith("enrich"))
        run["enrich_articles_per_cpu_s"] = round(run["articles"] / enrich_cpu, 2)
        run["cpu_ratio_to_raw"] = (round(run["enrich_articles_per_cpu_s"]
                                         / raw["docs_per_cpu_s"], 3) if raw else None)
        to_alert = ("n/a" if run["seconds_to_last_alert"] is None
                    else f"{run['articles'] / run['seconds_to_last_alert']:.1f}/s "
                         f"({run['alerts_arrived']}/{run['alerts_expected']} alerts)")
        lines.append(f"| pipeline, {processes} enrich process(es), {run['partitions']} "
                     f"partitions, batch {run.get('batch_size')} | {run['articles_per_s']:.1f} "
                     f"({run['enrich_articles_per_cpu_s']:.1f} per enrich CPU s) | "
                     f"{ratio:.2f} (per CPU s: {run['cpu_ratio_to_raw']}) | {to_alert} | "
                     f"{run['uptime']} |")
    lines.append("")
    for processes in results["processes"]:
        run = results["pipeline"].get(str(processes))
        if run is None or "error" in run:
            continue
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run["cpu_seconds"].items())
        memory = ", ".join(f"{name} {mb:.0f}" for name, mb in run["peak_rss_mb"].items()
                           if mb is not None)
        lines.append(f"{processes} enrich: CPU seconds {cpu} (the producer's includes its "
                     f"start-up before its first poll: {run.get('producer_startup_cpu_s')})")
        lines.append(f"{processes} enrich: timeline (s after the first poll) "
                     f"{run['timeline_s']}")
        lines.append(f"{processes} enrich: busy (s after the first poll) "
                     f"{run.get('enrich_busy_s')}; idle at the tail "
                     f"{run.get('enrich_tail_idle_s')}; articles per member "
                     f"{sorted(run.get('articles_per_enrich_member', {}).values())}, "
                     f"enriched per process {run.get('articles_enriched')}")
        lines.append(f"{processes} enrich: idle pipeline CPU per second "
                     f"{run.get('idle_cpu_per_s')}")
        raw = results["raw"].get(str(processes))
        work = {**run["cpu_seconds"], "producer": run["cpu_seconds"].get("producer", 0.0)
                - run.get("producer_startup_cpu_s", 0.0)}
        budget_figures = budget(run["articles"], work,
                                1 / raw["docs_per_cpu_s"] if raw else None,
                                results["machine"]["cpus"], TARGET_RATE)
        run["budget"] = budget_figures
        lines.append(f"{processes} enrich: CPU budget {_budget_text(budget_figures)}")
        lines.append(f"{processes} enrich: peak MB {memory}")
        lines.append(f"{processes} enrich: analyses reused {run['analyses_reused']}")
        for name, kernels in run["kernels"].items():
            lines.append(f"{processes} enrich: {name} kernel {'; '.join(kernels) or 'not logged'}")
    for processes in results["processes"]:
        raw = results["raw"].get(str(processes))
        if raw is None:
            continue
        kernels = sorted({f"{w['kernel']} ({w['kernel_reason']})" for w in raw["workers"]})
        peaks = ", ".join(str(w["peak_rss_mb"]) for w in raw["workers"])
        lines.append(f"raw {processes}: kernel {'; '.join(kernels)}; peak MB {peaks}")
    two = results["pipeline"].get("2")
    if two and "ratio_to_raw" in two:
        lines.append("")
        lines.append(f"targets (2 cores): >= {TARGET_RATE:.0f} articles/s end to end: "
                     f"{two['articles_per_s']:.1f} ({'met' if two['articles_per_s'] >= TARGET_RATE else 'missed'}); "  # noqa: E501
                     f">= {TARGET_RATIO} of raw NER in 2 processes: {two['ratio_to_raw']:.2f} "
                     f"({'met' if two['ratio_to_raw'] >= TARGET_RATIO else 'missed'}; per "
                     f"CPU s {two['cpu_ratio_to_raw']}; the CPU budget allows "
                     f"{two.get('budget', {}).get('ratio_allowed')})")
        raw = results["raw"].get("2")
        if raw is not None and raw_disturbed(raw):
            lines.append(f"  caution: raw spaCy ran at {raw['docs_per_s']:.1f} docs/s, under "
                         f"{DISTURBED:.0%} of what its CPU rate does on 2 whole cores "
                         f"({2 * raw['docs_per_cpu_s']:.1f}): other load slowed it, so the "
                         "wall-clock ratio is not a measure; the per-CPU-s ratio is")
    return lines


DISTURBED = 0.8  # raw NER below this share of cores x its docs per CPU s: other load


def raw_disturbed(raw: dict[str, Any]) -> bool:
    """Whether other load slowed the raw run: its wall-clock rate is under `DISTURBED` of
    what its processes do per CPU second on as many whole cores."""
    return bool(raw["docs_per_s"] < DISTURBED * raw["processes"] * raw["docs_per_cpu_s"])


def _budget_text(figures: dict[str, Any]) -> str:
    """The CPU arithmetic in words: what each article costs, what the targets allow."""
    text = (f"{figures['cpu_ms_per_article']:.1f} ms CPU per article, all processes "
            f"(producer start-up excluded); {TARGET_RATE:.0f} articles/s needs <= "
            f"{figures['target_cpu_ms_per_article']:.1f} ms")
    if "ner_cpu_ms_per_article" in figures:
        text += (f"; raw NER alone costs {figures['ner_cpu_ms_per_article']:.1f} ms (at most "
                 f"{figures['rate_ceiling_no_overhead']:.1f}/s on these cores with nothing "
                 f"else), the rest {figures['non_ner_cpu_ms_per_article']:.1f} ms "
                 f"({figures['non_ner_cpu_s']:.1f} CPU s): it allows {figures['ratio_allowed']}"
                 f" of raw NER (target {TARGET_RATIO})")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--feeds", type=int, default=15)
    parser.add_argument("--processes", default="1,2", help="enrich process counts, e.g. 1,2")
    parser.add_argument("--copies", type=float, default=0.0,
                        help="share of the stream that copies an earlier article exactly")
    parser.add_argument("--kernel", choices=("auto", "blis", "numpy"), default="auto")
    parser.add_argument("--skip-pipeline", action="store_true", help="raw spaCy only")
    parser.add_argument("--skip-raw", action="store_true", help="the pipeline only")
    parser.add_argument("--partitions", type=int, default=None,
                        help="partitions of the topics (default: NEWSWATCH_KAFKA_PARTITIONS' "
                             "default)")
    parser.add_argument("--reuse", type=int, default=None,
                        help="NEWSWATCH_ENRICH_REUSE for the enrich daemons (0: off)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="NEWSWATCH_ENRICH_BATCH_SIZE for the enrich daemons")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    setup_logging("text", "WARNING")
    import logging

    logging.getLogger("kafka").setLevel(logging.ERROR)
    counts = [int(part) for part in args.processes.split(",")]
    kernel, kernel_reason = decide_kernel(args.kernel)
    articles = fulltext_articles(args.articles, args.copies)
    texts = [document_text(title, content=text).text for title, text in articles]
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "uptime_start": uptime(),
        "articles": len(articles), "words": sum(len(t.split()) for t in texts),
        "distinct": len(set(texts)), "copies": args.copies, "feeds": args.feeds,
        "kernel": args.kernel, "kernel_used": kernel, "kernel_reason": kernel_reason,
        "processes": counts, "raw": {}, "pipeline": {},
    }
    progress(f"{len(articles)} articles; {results['uptime_start']}")
    with tempfile.TemporaryDirectory(prefix="bench-fulltext-") as tmp, \
            contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        broker = None
        bootstrap = ""
        if not args.skip_pipeline:
            broker, bootstrap = stack.enter_context(local_broker(scratch=scratch))
        for processes in counts:
            if not args.skip_raw:
                progress(f"raw spaCy, {processes} process(es)")
                raw = raw_run(texts, processes, kernel)
                results["raw"][str(processes)] = raw
                progress(f"  {raw['docs_per_s']:.1f} docs/s; {raw['uptime']}")
            if broker is None:
                continue
            progress(f"pipeline, {processes} enrich process(es)")
            try:
                run = pipeline_run(bootstrap, broker, scratch, articles, processes,
                                   args.feeds, kernel, args.partitions, args.reuse,
                                   args.batch_size)
            except Exception as exc:  # one failed run must not cost the other figures
                run = {"error": f"{type(exc).__name__}: {exc}"}
                progress(f"  FAILED: {run['error']}")
            else:
                progress(f"  {run['articles_per_s']:.1f} articles/s; {run['uptime']}")
            results["pipeline"][str(processes)] = run
    results["uptime_end"] = uptime()
    lines = report(results)
    print(f"Machine: {results['machine']['cpus']} CPUs ({results['machine']['cpu_model']}); "
          f"start: {results['uptime_start']}; end: {results['uptime_end']}")
    print("\n".join(lines))
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
