"""One benchmark command: every figure of the README's table, measured in one run.

    .venv/bin/python bench/run_all.py [--quick] [--json FILE]

Starts its own Kafka broker (`newswatch.kafka_local.LocalKafka`) on free ports in a
temporary folder, and uses the PostgreSQL of NEWSWATCH_TEST_POSTGRES_URL
(``eval "$(scripts/postgres.sh start)"``), in a schema of its own that is dropped at the
end; without that variable the PostgreSQL row is skipped with the reason printed. Every
server listens on 127.0.0.1, every wait is bounded, and the broker, servers and daemons
are stopped at the end, also after Ctrl+C or SIGTERM. Sections, each built on the code
of a per-stage bench:

1. producer: new items per second through the daemon's own pass (bench_producer);
2. enrich: raw ``nlp.pipe`` and the full consumer path (Kafka in, `Enricher`, Kafka out,
   acknowledged and committed: `consumers.enrich.daemon.serve` in this process) on the
   same documents (bench_enrich's corpus), alternating, best round of each;
3. store: articles per second from Kafka into PostgreSQL and SQLite (bench_store);
4. enrich scaling: ``newswatch enrich`` as 1, then 2 processes in one consumer group on
   a topic with the default partition count (12); docs/s from publishing the input to
   the last output's timestamp;
5. end to end: the four daemons as subprocesses (``python -m newswatch.cli <stage>``); a
   feed server gains on-topic items at a steady rate; latency from the moment an item
   appears in its feed to the webhook receiver (bench_alert's) getting its alert; peak
   memory (VmHWM) of each daemon.

Progress goes to stderr; stdout gets the machine description and one Markdown table, and
the same figures go to JSON (default bench/results.json). A full run takes 5-10 minutes,
``--quick`` 2-3.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from types import FrameType
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the packages, and tests.factories for bench_store
sys.path.insert(0, str(ROOT / "bench"))  # the per-stage benches

import bench_enrich  # noqa: E402
import bench_producer  # noqa: E402
import bench_store  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402
from kafka.structs import TopicPartition  # noqa: E402

from consumers.enrich.daemon import GROUP_ID as ENRICH_GROUP  # noqa: E402
from consumers.enrich.daemon import serve as serve_enrich  # noqa: E402
from consumers.enrich.enrich import Enricher, article_document  # noqa: E402
from consumers.store.daemon import DEFAULT_BATCH, tune_gc_for_batches  # noqa: E402
from newswatch import metrics  # noqa: E402
from newswatch.daemon import StopFlag  # noqa: E402
from newswatch.db import make_engine  # noqa: E402
from newswatch.kafka_admin import ensure_topics  # noqa: E402
from newswatch.kafka_clients import make_producer  # noqa: E402
from newswatch.kafka_local import DEFAULT_LIB_DIR, LocalKafka  # noqa: E402
from newswatch.logs import setup_logging  # noqa: E402
from newswatch.migrate import upgrade  # noqa: E402
from newswatch.settings import Settings  # noqa: E402
from producers.entries import normalise  # noqa: E402
from producers.parse import parse  # noqa: E402
from schemas.feeds_file import FeedConfig  # noqa: E402
from schemas.ids import article_id, canonical_url  # noqa: E402
from schemas.messages import Article, EnrichedArticle  # noqa: E402
from tests.support.daemons import DaemonProcess, stop_all  # noqa: E402
from tests.support.feed_server import FeedServer, Reply  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.waits import wait_for  # noqa: E402
from tests.support.webhook import WebhookReceiver  # noqa: E402

DEFAULT_JSON = ROOT / "bench" / "results.json"
ENRICH_RATIO_TARGET = 0.85
SCALING_TARGET = 1.7
ENRICH_MEMORY_TARGET_MB = 600.0
SECTIONS = ("producer", "enrich", "store", "enrich_scaling", "end_to_end")


@dataclass(frozen=True)
class Sizes:
    """How much work each section does: a full run, or ``--quick``."""

    producer_feeds: int
    producer_items: int
    enrich_repeat: int  # copies of bench_enrich's corpus (351 documents)
    enrich_rounds: int
    scaling_repeat: int
    scaling_rounds: int
    store_articles: int
    e2e_feeds: int
    e2e_rate: float  # items per second, all feeds together
    e2e_seconds: float


FULL = Sizes(producer_feeds=200, producer_items=50, enrich_repeat=2, enrich_rounds=3,
             scaling_repeat=6, scaling_rounds=2, store_articles=20_000, e2e_feeds=4,
             e2e_rate=5.0, e2e_seconds=60.0)
QUICK = Sizes(producer_feeds=40, producer_items=50, enrich_repeat=1, enrich_rounds=2,
              scaling_repeat=2, scaling_rounds=1, store_articles=5_000, e2e_feeds=4,
              e2e_rate=4.0, e2e_seconds=20.0)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)




def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the machine --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    jars = sorted(DEFAULT_LIB_DIR.glob("kafka_2.13-*.jar"))
    kafka_version = jars[-1].stem.split("-", 1)[1] if jars else "unknown"
    import kafka
    import spacy

    return {
        "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model, "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "kafka": kafka_version,
        "kafka_python": kafka.__version__, "spacy": spacy.__version__,
    }


# --- 1. producer ------------------------------------------------------------------------


def producer_section(bootstrap: str, scratch: Path, sizes: Sizes, token: str) -> dict[str, Any]:
    server, port = bench_producer.start_server(sizes.producer_feeds, sizes.producer_items)
    try:
        folder = scratch / "producer"
        folder.mkdir()
        rig = bench_producer.build_rig(bootstrap, port, sizes.producer_feeds, folder,
                                       prefix=f"bench.{token}.producer.")
        try:
            published, seconds = bench_producer.new_items_pass(rig)
        finally:
            rig.close()
    finally:
        server.terminate()
        server.join(5)
    expected = sizes.producer_feeds * sizes.producer_items
    if published != expected:
        raise RuntimeError(f"published {published} of {expected} items")
    return {"feeds": sizes.producer_feeds, "items": published, "seconds": round(seconds, 2),
            "items_per_s": round(published / seconds, 1)}


# --- 2. enrich: raw nlp.pipe against the consumer path ------------------------------------


class _FirstBatchClock:
    """The enricher, noting when its first batch began: the group has joined by then."""

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        self.began: tuple[float, float] | None = None

    def enrich_many(self, articles: Sequence[Article], repairs: Counter[str] | None = None
                    ) -> list[EnrichedArticle]:
        if self.began is None:
            self.began = (time.perf_counter(), time.process_time())
        return self.enricher.enrich_many(articles, repairs)


def _processed(stage: str) -> float:
    """Messages the stage's run loop committed in this process (its metrics counter).

    Reads that one counter, not the whole registry: it is polled while the consumer runs.
    """
    for family in metrics.MESSAGES_PROCESSED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("stage") == stage:
                return float(sample.value)
    return 0.0


def publish_articles(settings: Settings, topic: str, articles: Sequence[Article]) -> None:
    producer = make_producer(settings)
    try:
        for article in articles:
            producer.send(topic, key=article.id.encode(), value=article.to_bytes())
        producer.flush(timeout=120)
    finally:
        producer.close()


def consumer_path_round(bootstrap: str, enricher: Enricher, articles: Sequence[Article],
                        prefix: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the enrich daemon's loop over ``articles``: from its
    first batch to the commit of the last, every output acknowledged by the broker."""
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                        enrich_batch_size=enricher.batch_size)
    names = ensure_topics(settings, partitions=1)
    publish_articles(settings, names.articles, articles)
    clocked = _FirstBatchClock(enricher)
    stop = StopFlag()
    errors: list[BaseException] = []

    def daemon() -> None:
        try:
            serve_enrich(settings, clocked, stop)
        except BaseException as error:  # reported below
            errors.append(error)
            stop.stop()

    target = _processed("enrich") + len(articles)
    thread = threading.Thread(target=daemon, name="enrich-bench")
    thread.start()
    try:
        deadline = time.monotonic() + 60 + 2 * len(articles)
        while _processed("enrich") < target and not stop.stopping:
            if time.monotonic() > deadline:
                raise TimeoutError("the enrich consumer did not finish in time")
            time.sleep(0.02)
        ended = (time.perf_counter(), time.process_time())
    finally:
        stop.stop()
        thread.join(60)
    if errors:
        raise errors[0]
    assert clocked.began is not None
    produced = sum(end_offsets(bootstrap, names.enriched).values())
    if produced != len(articles):
        raise RuntimeError(f"the consumer path produced {produced} of {len(articles)}")
    return ended[1] - clocked.began[1], ended[0] - clocked.began[0]


def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        offsets: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        return offsets
    finally:
        consumer.close()


def enrich_section(bootstrap: str, enricher: Enricher, corpus: Sequence[Article],
                   sizes: Sizes, token: str) -> dict[str, Any]:
    articles = list(corpus) * sizes.enrich_repeat
    texts = [article_document(article).text for article in articles]
    words = sum(len(text.split()) for text in texts)
    nlp, batch = enricher.nlp, enricher.batch_size
    list(nlp.pipe(texts[:batch], batch_size=batch))  # warm-up
    enricher.enrich_many(articles[:batch])

    def raw() -> None:
        for _ in nlp.pipe(texts, batch_size=batch):
            pass

    best_raw = best_path = (math.inf, math.inf)
    for round_no in range(sizes.enrich_rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        raw()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best_raw = (min(best_raw[0], cpu), min(best_raw[1], wall))
        path = consumer_path_round(bootstrap, enricher, articles,
                                   f"bench.{token}.enrich{round_no}.")
        best_path = (min(best_path[0], path[0]), min(best_path[1], path[1]))
        progress(f"  round {round_no + 1}: docs per CPU second raw {len(texts) / cpu:,.1f}, "
                 f"consumer path {len(texts) / path[0]:,.1f}; wall clock raw "
                 f"{len(texts) / wall:,.1f}, consumer path {len(texts) / path[1]:,.1f}")
    n = len(texts)
    return {
        "documents": n, "words": words, "batch_size": batch, "rounds": sizes.enrich_rounds,
        "pipeline": list(nlp.pipe_names),
        # Per CPU second of this process (all its threads: consumer, Kafka I/O): what the
        # path costs, whatever else the machine runs. Wall clock beside it.
        "raw_docs_per_cpu_s": round(n / best_raw[0], 1),
        "raw_words_per_cpu_s": round(words / best_raw[0]),
        "consumer_docs_per_cpu_s": round(n / best_path[0], 1),
        "ratio": round(best_raw[0] / best_path[0], 3),
        "raw_docs_per_s": round(n / best_raw[1], 1),
        "consumer_docs_per_s": round(n / best_path[1], 1),
        "ratio_wall": round(best_raw[1] / best_path[1], 3),
        "target_ratio": ENRICH_RATIO_TARGET,
    }


# --- 3. store ----------------------------------------------------------------------------


@contextlib.contextmanager
def store_gc() -> Iterator[None]:
    """The collector tuned as ``newswatch store`` tunes it, restored afterwards."""
    threshold = gc.get_threshold()
    tune_gc_for_batches()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def store_section(bootstrap: str, scratch: Path, sizes: Sizes, token: str) -> dict[str, Any]:
    settings = Settings(kafka_bootstrap_servers=bootstrap,
                        kafka_topic_prefix=f"bench.{token}.store.")
    ensure_topics(settings, partitions=3)
    with contextlib.redirect_stdout(sys.stderr):
        size, _ = bench_store.publish(settings, sizes.store_articles)
    out: dict[str, Any] = {"articles": sizes.store_articles, "message_bytes": size,
                           "batch_size": DEFAULT_BATCH}
    with store_gc():
        pg = bench_store.postgres_url()
        if pg is None:
            out["postgresql"] = {"skipped": f"{bench_store.POSTGRES_ENV} is not set "
                                            "(eval \"$(scripts/postgres.sh start)\")"}
        else:
            url, base, schema = pg
            try:
                out["postgresql"] = _store_figures(bench_store.run_once(
                    settings, url, "postgresql", sizes.store_articles, DEFAULT_BATCH))
            finally:
                bench_store.drop_schema(base, schema)
        out["sqlite"] = _store_figures(bench_store.run_once(
            settings, f"sqlite:///{scratch / 'store.db'}", "sqlite", sizes.store_articles,
            DEFAULT_BATCH))
    return out


def _store_figures(figures: bench_store.Figures) -> dict[str, Any]:
    return {"steady_per_s": round(figures.steady_per_s, 1),
            "end_to_end_per_s": round(figures.end_to_end_per_s, 1),
            "entity_links": figures.entity_links, "topic_hits": figures.hits}


# --- daemons as subprocesses --------------------------------------------------------------


def daemon_env(bootstrap: str, prefix: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon: this run's broker, topics and state folder only."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("NEWSWATCH_") and name != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix,
                "NEWSWATCH_STATE_DIR": str(state_dir), "NEWSWATCH_LOG_FORMAT": "json",
                "NEWSWATCH_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
    env.update({f"NEWSWATCH_{name.upper()}": value for name, value in extra.items()})
    return env


def start_daemon(name: str, stage: str, env: dict[str, str], log_dir: Path,
                 *args: str) -> DaemonProcess:
    """``python -m newswatch.cli <stage>`` as a child process, its log in ``log_dir``."""
    return DaemonProcess(name, (stage, *args), env, log_dir / f"{name}.log", cwd=ROOT).start()


# --- 4. enrich scaling: 1 and 2 processes in one group -------------------------------------


def _group_ready(admin: KafkaAdminClient, members: int) -> bool:
    try:
        group = admin.describe_groups([ENRICH_GROUP])[ENRICH_GROUP]
    except KafkaError:  # no group coordinator yet on a fresh broker: not ready
        return False
    return (group.get("group_state") == "Stable" and len(group.get("members", [])) == members
            and all(m.get("member_assignment", {}).get("assigned_partitions")
                    for m in group["members"]))


def _committed(admin: KafkaAdminClient, topic: str) -> int:
    try:
        offsets = admin.list_group_offsets({ENRICH_GROUP: None}).get(ENRICH_GROUP, {})
    except KafkaError:  # a coordinator moving: ask again next round
        return -1
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


def _output_times(bootstrap: str, topic: str) -> dict[bytes, list[float]]:
    """Every record of ``topic`` by key: its timestamps (seconds)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_poll_records=2000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        times: dict[bytes, list[float]] = {}
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} back took too long")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    times.setdefault(record.key, []).append(record.timestamp / 1000)
        return times
    finally:
        consumer.close()


def _copies(corpus: Sequence[Article], repeat: int, tag: str) -> list[Article]:
    """``repeat`` copies of the corpus with ids of their own (keys spread over partitions)."""
    return [article.model_copy(update={"id": f"{tag}-{n}-{article.id}"})
            for n in range(repeat) for article in corpus]


def scaling_run(bootstrap: str, scratch: Path, corpus: Sequence[Article], sizes: Sizes,
                processes: int, prefix: str, broker_pid: int | None) -> dict[str, Any]:
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
    names = ensure_topics(settings)  # the default partition count, as users get it
    env = daemon_env(bootstrap, prefix, scratch / f"scale{processes}")
    daemons: list[DaemonProcess] = []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def check() -> None:
        for daemon in daemons:
            daemon.check()

    try:
        for n in range(processes):
            daemons.append(start_daemon(f"enrich-{processes}-{n}", "enrich", env,
                                        scratch / "logs"))
        # Input only once the group is settled with every member, so no rebalance
        # replays records mid-run; a warm-up batch per process loads what loads lazily.
        wait_for(lambda: _group_ready(admin, processes), 180, "enrich group settled", check=check)
        warm = _copies(corpus[: 64 * processes], 1, "warm")
        publish_articles(settings, names.articles, warm)
        wait_for(lambda: _committed(admin, names.articles) >= len(warm), 120,
                 "enrich warm-up", check=check)
        measured = _copies(corpus, sizes.scaling_repeat, "main")
        cpu_before = sum(cpu_seconds(daemon.pid) for daemon in daemons)
        broker_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        began = time.time()
        publish_articles(settings, names.articles, measured)
        wait_for(lambda: _committed(admin, names.articles) >= len(warm) + len(measured),
                 60 + len(measured), "enrich run", check=check, interval_s=0.5)
        cpu_used = sum(cpu_seconds(daemon.pid) for daemon in daemons) - cpu_before
        broker_used = cpu_seconds(broker_pid) - broker_before if broker_pid else 0.0
        peaks = [peak_rss_mb(daemon.pid) for daemon in daemons]
    finally:
        admin.close()
        stop_all(daemons)
    keys = {article.id.encode() for article in measured}
    times = {key: stamps for key, stamps in _output_times(bootstrap, names.enriched).items()
             if key in keys}
    if len(times) != len(keys):
        raise RuntimeError(f"{len(keys) - len(times)} of {len(keys)} articles not enriched")
    last = max(max(stamps) for stamps in times.values())
    return {"processes": processes, "documents": len(measured),
            "seconds": round(last - began, 2),
            "docs_per_s": round(len(measured) / (last - began), 1),
            "duplicates": sum(len(stamps) - 1 for stamps in times.values()),
            # CPU the daemons got while they worked: on a busy machine a process gets
            # less than a core, and the wall-clock rate shows that.
            "cpu_seconds": round(cpu_used, 2),
            "docs_per_cpu_s": round(len(measured) / cpu_used, 1) if cpu_used else None,
            "cores_used": round(cpu_used / (last - began), 2),
            "broker_cores_used": round(broker_used / (last - began), 2),
            "peak_rss_mb": peaks}


def scaling_section(bootstrap: str, scratch: Path, corpus: Sequence[Article], sizes: Sizes,
                    token: str, broker: LocalKafka) -> dict[str, Any]:
    """1 then 2 processes, ``scaling_rounds`` times; the best run of each is kept, since
    other load on a shared machine only ever slows a run down."""
    best: dict[int, dict[str, Any]] = {}
    rates: dict[int, list[float]] = {1: [], 2: []}
    for round_no in range(sizes.scaling_rounds):
        for processes in (1, 2):
            run = scaling_run(bootstrap, scratch, corpus, sizes, processes,
                              f"bench.{token}.scale{processes}.r{round_no}.", broker.pid())
            rates[processes].append(run["docs_per_s"])
            if processes not in best or run["docs_per_s"] > best[processes]["docs_per_s"]:
                best[processes] = run
            progress(f"  {processes} process(es): {run['docs_per_s']:,.1f} docs/s, "
                     f"{run['cores_used']:.2f} cores used (broker "
                     f"{run['broker_cores_used']:.2f}), load average {os.getloadavg()[0]:.2f}")
    return {"partitions": Settings().kafka_partitions, "rounds": sizes.scaling_rounds,
            "one": best[1], "two": best[2],
            "all_docs_per_s": {"one": rates[1], "two": rates[2]},
            "speedup": round(best[2]["docs_per_s"] / best[1]["docs_per_s"], 2),
            "target_speedup": SCALING_TARGET}


# --- 5. end to end: feed -> four daemons -> webhook --------------------------------------


@dataclass
class SteadyFeeds:
    """Feeds that gain items at a steady rate, as a busy publisher's do.

    Items ``0..warm-1`` are there from the start; after `start_steady`, item ``warm + j``
    appears at ``began + j / rate``, in feed ``i % feeds``. A feed lists its newest
    ``window`` items, newest first, with an ETag that changes with each new item.
    `serve_steady_feeds` serves them and notes when a poll first returned each item.
    """

    stories: Sequence[tuple[str, str]]
    feeds: int
    warm: int
    steady: int
    rate: float
    token: str
    window: int = 20
    created: float = field(default_factory=time.time)
    began: float | None = None
    first_served: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def link(self, item: int) -> str:
        return f"https://bench.example.org/{self.token}/world/story-{item}.html"

    def article_id(self, item: int) -> str:
        return article_id(canonical_url(self.link(item)))

    def added_at(self, item: int) -> float:
        if item < self.warm or self.began is None:
            return self.created
        return self.began + (item - self.warm) / self.rate

    def visible(self, now: float) -> int:
        if self.began is None or now < self.began:
            return self.warm
        return self.warm + min(self.steady, int((now - self.began) * self.rate) + 1)

    def start_steady(self) -> None:
        self.began = time.time()

    def served(self, items: Sequence[int], at: float) -> None:
        with self.lock:
            for item in items:
                self.first_served.setdefault(item, at)

    def item_xml(self, item: int) -> str:
        title, text = self.stories[item % len(self.stories)]
        body = "".join(f"<p>{escape(part)}</p>" for part in text.split("\n\n") if part.strip())
        published = format_datetime(datetime.fromtimestamp(self.added_at(item), UTC))
        return (f"<item><title>{escape(title)}</title><link>{self.link(item)}</link>"
                f"<guid isPermaLink=\"false\">{self.token}-{item}</guid>"
                f"<pubDate>{published}</pubDate><description>{escape(body)}</description>"
                "</item>")

    def document(self, number: int, now: float | None = None
                 ) -> tuple[bytes, str, list[int]]:
        """Feed ``number`` as it stands ``now``: the body, its ETag, the items in it."""
        count = self.visible(time.time() if now is None else now)
        items = [i for i in range(count - 1, -1, -1) if i % self.feeds == number]
        items = items[: self.window]
        xml = "".join([
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
            f"<title>Bench wire {number}</title><link>https://bench.example.org/</link>",
            *(self.item_xml(i) for i in items), "</channel></rss>"])
        return xml.encode(), f'"{number}-{items[0] if items else -1}"', items


def serve_steady_feeds(feeds: SteadyFeeds) -> FeedServer:
    """`SteadyFeeds` over HTTP on 127.0.0.1 (``/feed/<n>``, with ETags), in a thread of
    this process; each 200 notes when the poll first returned its items."""
    server = FeedServer()
    for number in range(feeds.feeds):
        server.add(f"/feed/{number}", _steady_route(feeds, number))
    return server


def _steady_route(feeds: SteadyFeeds, number: int) -> Callable[[dict[str, str]], Reply]:
    def route(headers: dict[str, str]) -> Reply:
        body, etag, items = feeds.document(number)
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        feeds.served(items, time.time())
        return Reply(200, body, {"ETag": etag,
                                 "Content-Type": "application/rss+xml; charset=utf-8"})

    return route


def feed_url(server: FeedServer, number: int) -> str:
    return server.url(f"/feed/{number}")


def on_topic_stories(enricher: Enricher, limit: int = 40) -> list[tuple[str, str]]:
    """Labelled on-topic items that, once through a feed and the producer's normalising,
    get at least one topic hit: each one the e2e feeds carry makes an alert."""
    candidates: list[tuple[str, str]] = []
    for path in sorted((ROOT / "tests" / "data" / "labelled").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("labels"):
                    candidates.append((record["title"], record["text"]))
    probe = SteadyFeeds(candidates, 1, len(candidates), 0, 1.0, "probe")
    body, _, items = probe.document(0)
    feed = FeedConfig(id="probe", url="http://127.0.0.1/probe")
    articles = normalise(parse(body), feed, fetched_at=datetime.now(UTC))
    by_id = {probe.article_id(item): candidates[item] for item in items}
    hits = enricher.enrich_many(articles)
    return [by_id[e.article.id] for e in hits if e.topic_hits and e.article.id in by_id][:limit]


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


def e2e_section(bootstrap: str, scratch: Path, enricher: Enricher, sizes: Sizes, token: str,
                broker: LocalKafka, poll_interval_s: float) -> dict[str, Any]:

    stories = on_topic_stories(enricher)
    if not stories:
        raise RuntimeError("no labelled on-topic story gets a topic hit")
    folder = scratch / "e2e"
    folder.mkdir()
    prefix = f"bench.{token}.e2e."
    steady = int(sizes.e2e_rate * sizes.e2e_seconds)
    warm = 2 * sizes.e2e_feeds
    everything = range(warm, warm + steady)
    feeds = SteadyFeeds(stories, sizes.e2e_feeds, warm, steady, sizes.e2e_rate, token)
    daemons: list[DaemonProcess] = []

    def check() -> None:
        for daemon in daemons:
            daemon.check()

    with contextlib.ExitStack() as cleanup:  # undone in reverse: daemons stop first
        pg = bench_store.postgres_url()
        if pg is not None:
            cleanup.callback(bench_store.drop_schema, pg[1], pg[2])
        database_url = pg[0] if pg is not None else f"sqlite:///{folder / 'e2e.db'}"
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
            daemons.append(start_daemon(stage, stage, env, scratch / "logs"))
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
        broker_pid = broker.pid()
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
        "database": "postgresql" if pg is not None else "sqlite",
        "feeds": sizes.e2e_feeds, "rate_per_s": sizes.e2e_rate,
        "seconds": sizes.e2e_seconds, "poll_interval_s": poll_interval_s,
        "items": steady, "alerted": len(latency), "missing": steady - len(latency),
        "startup_s": round(startup_s, 1),
        "latency": summary(latency),
        "added_to_fetched": summary(fetch_wait) if fetch_wait else None,
        "fetched_to_webhook": summary(pipeline) if pipeline else None,
        "peak_rss_mb": memory,
    }


# --- the table ---------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> list[str]:
    """The Markdown table of ``results``; a section that failed says why in its row."""
    rows: list[tuple[str, str, str, str]] = []

    def failed(name: str, label: str) -> bool:
        section = results.get(name)
        if isinstance(section, dict) and "error" in section:
            rows.append((label, "failed", "", section["error"].splitlines()[0][:150]))
            return True
        return section is None

    if not failed("producer", "Producer: new items"):
        p = results["producer"]
        rows.append(("Producer: new items", f"{_n(p['items_per_s'])} items/s", "",
                     f"{p['feeds']} feeds x {p['items'] // p['feeds']} new items on a local "
                     "HTTP server: fetch, parse, normalise, publish (acks=all), record"))
    if not failed("enrich", "Enrich"):
        e = results["enrich"]
        rows.append(("Enrich: raw spaCy `nlp.pipe`",
                     f"{_n(e['raw_docs_per_cpu_s'], 1)} docs/s", "",
                     f"{e['documents']:,} documents ({e['words']:,} words), batch "
                     f"{e['batch_size']}: {_n(e['raw_words_per_cpu_s'])} words/s; "
                     f"wall clock {_n(e['raw_docs_per_s'], 1)} docs/s"))
        rows.append(("Enrich: consumer path (Kafka in -> enrich -> Kafka out)",
                     f"{_n(e['consumer_docs_per_cpu_s'], 1)} docs/s", "",
                     "same documents and process; outputs acknowledged, offsets committed; "
                     f"wall clock {_n(e['consumer_docs_per_s'], 1)} docs/s"))
        mark = "met" if e["ratio"] >= e["target_ratio"] else "MISSED"
        rows.append(("Enrich: consumer path / raw", f"{e['ratio']:.2f}",
                     f">= {e['target_ratio']} ({mark})",
                     "docs per CPU second of the process (all threads), best of "
                     f"{e['rounds']} alternating rounds; wall clock {e['ratio_wall']:.2f}"))
    if not failed("store", "Store"):
        s = results["store"]
        for db in ("postgresql", "sqlite"):
            figures = s[db]
            label = f"Store: {'PostgreSQL' if db == 'postgresql' else 'SQLite'}"
            if "skipped" in figures:
                rows.append((label, "skipped", "", figures["skipped"]))
            else:
                rows.append((label, f"{_n(figures['steady_per_s'])} articles/s", "",
                             f"{s['articles']:,} enriched articles (~{s['message_bytes']:,} B)"
                             f", batch {s['batch_size']}; {_n(figures['end_to_end_per_s'])}/s "
                             "including start-up"))
    if not failed("enrich_scaling", "Enrich: 1 and 2 processes"):
        c = results["enrich_scaling"]
        one, two = c["one"], c["two"]
        rows.append(("Enrich: 1 process", f"{_n(one['docs_per_s'], 1)} docs/s", "",
                     f"`newswatch enrich` subprocess, {one['documents']:,} documents, "
                     f"{c['partitions']}-partition topic, publish -> last output, best of "
                     f"{c['rounds']}; {one['cores_used']:.2f} cores used"))
        mark = "met" if c["speedup"] >= c["target_speedup"] else "MISSED"
        rows.append(("Enrich: 2 processes, one group", f"{_n(two['docs_per_s'], 1)} "
                     f"docs/s = {c['speedup']:.2f}x", f">= {c['target_speedup']}x ({mark})",
                     f"{results['machine']['cpus']} CPUs shared with the broker "
                     f"({two['broker_cores_used']:.2f} cores); {two['cores_used']:.2f} cores "
                     "used; docs per CPU second "
                     f"{_n(two['docs_per_cpu_s'], 1)} (1 process: "
                     f"{_n(one['docs_per_cpu_s'], 1)}); duplicates {two['duplicates']}"))
    if not failed("end_to_end", "End to end"):
        t = results["end_to_end"]
        lat, wait, rest = t["latency"], t["added_to_fetched"], t["fetched_to_webhook"]
        detail = (f"{t['items']} items at {t['rate_per_s']:g}/s over {t['seconds']:g}s in "
                  f"{t['feeds']} feeds polled every {t['poll_interval_s']:g}s; "
                  f"{t['database']}; missing {t['missing']}")
        rows.append(("End to end: feed -> webhook p50 / p99",
                     f"{lat['p50_s']:.2f} s / {lat['p99_s']:.2f} s", "", detail))
        if wait and rest:
            rows.append(("  of which: waiting for the poll, p50 / p99",
                         f"{wait['p50_s']:.2f} s / {wait['p99_s']:.2f} s", "",
                         "item added -> first served to the producer"))
            rows.append(("  of which: fetched -> webhook, p50 / p99",
                         f"{rest['p50_s']:.2f} s / {rest['p99_s']:.2f} s", "",
                         "fetch, publish, enrich, store, rule, delivery"))
        for name, mb in t["peak_rss_mb"].items():
            target = ""
            if name == "enrich" and mb is not None:
                ok = "met" if mb <= ENRICH_MEMORY_TARGET_MB else "MISSED"
                target = f"<= {ENRICH_MEMORY_TARGET_MB:.0f} MB ({ok})"
            rows.append((f"Peak memory: {name}", f"{_n(mb)} MB", target,
                         "VmHWM during the end-to-end run"))
    if isinstance(results.get("enrich_scaling"), dict) and "two" in results["enrich_scaling"]:
        peaks = results["enrich_scaling"]["two"]["peak_rss_mb"]
        rows.append(("Peak memory: enrich, each of 2 processes",
                     " / ".join(f"{_n(mb)}" for mb in peaks) + " MB", "",
                     "VmHWM, batches of 64 long and short articles"))
    header = ("Figure", "Result", "Target", "Conditions")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def describe_machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    start, end = results["load_average_start"], results.get("load_average_end", [None])
    sections = ", ".join(f"{name} {load:.2f}" for name, load
                         in results.get("load_average_by_section", {}).items())
    return (f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
            f"{m['os']}; Python {m['python']}, Kafka {m['kafka']} (KRaft, single local "
            f"node, 512 MB heap), kafka-python {m['kafka_python']}, spaCy {m['spacy']}. "
            f"Load average (1 min, this benchmark's own processes included) "
            f"{start[0]:.2f} at the start, "
            f"{_n(end[0], 2)} at the end ({sections}); run {results['mode']} on "
            f"{results['started_at']} in {results.get('total_s', 0):.0f}s.")


# --- main --------------------------------------------------------------------------------


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less work per section (~2-3 min)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                        help=f"where the figures go (default {DEFAULT_JSON.relative_to(ROOT)})")
    parser.add_argument("--e2e-poll-interval", type=float, default=1.0, metavar="SECONDS",
                        help="the producer's poll interval in the end-to-end run (default 1, "
                             "the least the settings allow)")
    parser.add_argument("--only", default=None, metavar="SECTIONS",
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = set(args.only.split(",")) if args.only else None
    if wanted is not None and not wanted <= set(SECTIONS):
        parser.error(f"--only: unknown section(s) {sorted(wanted - set(SECTIONS))}")
    setup_logging("text", "WARNING")
    # kafka-python warns about every coordinator change while groups form: expected here.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    token = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    began = time.monotonic()

    def section(name: str, run: Callable[[], dict[str, Any]]) -> None:
        if wanted is not None and name not in wanted:
            return
        load = round(os.getloadavg()[0], 2)
        results.setdefault("load_average_by_section", {})[name] = load
        progress(f"{name} (load average {load:.2f})")
        try:
            results[name] = run()
        except Exception as exc:  # one failed section must not cost the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            progress(f"  {name} FAILED: {type(exc).__name__}: {exc}")

    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp, contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        broker = LocalKafka(state_dir=scratch / "kafka", port=free_port(),
                            controller_port=free_port(), heap="512m")
        stack.callback(broker.stop)
        progress("starting Kafka")
        bootstrap = broker.start(timeout_s=120)
        progress(f"Kafka at {bootstrap} in {time.monotonic() - began:.0f}s")
        section("producer", lambda: producer_section(bootstrap, scratch, sizes, token))
        enricher = Enricher.from_files()
        corpus = bench_enrich.load_articles()
        section("enrich", lambda: enrich_section(bootstrap, enricher, corpus, sizes, token))
        section("store", lambda: store_section(bootstrap, scratch, sizes, token))
        section("enrich_scaling",
                lambda: scaling_section(bootstrap, scratch, corpus, sizes, token, broker))
        section("end_to_end", lambda: e2e_section(bootstrap, scratch, enricher, sizes, token,
                                                  broker, args.e2e_poll_interval))
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["total_s"] = round(time.monotonic() - began, 1)
    lines = table(results)
    results["table_markdown"] = "\n".join(lines)
    print(describe_machine(results))
    print()
    print("\n".join(lines))
    # The bench's own processes add up to ~2 to the load average (two enrich daemons);
    # more than that, or load before it began, was someone else's.
    busiest = max(results.get("load_average_by_section", {}).values(), default=0.0)
    cpus = results["machine"]["cpus"] or 1
    start_load = results["load_average_start"][0]
    if start_load > cpus / 2 or busiest > cpus:
        results["note"] = (f"other work was running (load average {start_load:.2f} at the "
                           f"start, up to {busiest:.2f} during the run, on {cpus} CPUs): "
                           "wall-clock figures are lower than on a quiet machine; run "
                           "again when `uptime` shows less load")
        print(f"\nNote: {results['note']}.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
