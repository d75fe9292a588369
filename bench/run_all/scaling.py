"""Section 4, enrich scaling: ``newswatch enrich`` as 1, then 2 processes in one consumer
group on a topic with the default partition count; docs/s from publishing the input to
the last output's timestamp, the best of ``scaling_rounds`` runs of each."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from bench.harness import (
    cpu_seconds,
    daemon_env,
    group_settled,
    peak_rss_mb,
    progress,
    publish_articles,
    start_daemon,
)
from bench.run_all.section import Figures, Row, Run, Section, met, number
from consumers.enrich.daemon import GROUP_ID as ENRICH_GROUP
from newswatch.kafka_admin import ensure_topics
from newswatch.settings import Settings
from schemas.messages import Article
from tests.support.daemons import DaemonProcess, stop_all
from tests.support.waits import wait_for

SPEEDUP_TARGET = 1.7


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


def scaling_run(run: Run, processes: int, prefix: str) -> Figures:
    """``processes`` enrich daemons in one group over the corpus ``scaling_repeat`` times."""
    bootstrap, scratch = run.bootstrap, run.scratch
    broker_pid = run.broker.pid() if run.broker is not None else None
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
    names = ensure_topics(settings)  # the default partition count, as users get it
    # Reuse off: the measured set is the corpus repeated, exact duplicates by construction,
    # which reuse would answer from its cache; this section measures enrichment itself.
    env = daemon_env(bootstrap, prefix, scratch / f"scale{processes}", enrich_reuse="0")
    daemons: list[DaemonProcess] = []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def check() -> None:
        for daemon in daemons:
            daemon.check()

    try:
        for n in range(processes):
            daemons.append(start_daemon(f"enrich-{processes}-{n}", env, scratch / "logs",
                                        "enrich"))
        # Input only once the group is settled with every member, so no rebalance
        # replays records mid-run; a warm-up batch per process loads what loads lazily.
        wait_for(lambda: group_settled(admin, ENRICH_GROUP, processes), 180,
                 "enrich group settled", check=check)
        warm = _copies(run.corpus[: 64 * processes], 1, "warm")
        publish_articles(settings, names.articles, warm)
        wait_for(lambda: _committed(admin, names.articles) >= len(warm), 120,
                 "enrich warm-up", check=check)
        measured = _copies(run.corpus, run.sizes.scaling_repeat, "main")
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


def measure(run: Run) -> Figures:
    """1 then 2 processes, ``scaling_rounds`` times; the best run of each is kept, since
    other load on a shared machine only ever slows a run down."""
    best: dict[int, Figures] = {}
    rates: dict[int, list[float]] = {1: [], 2: []}
    for round_no in range(run.sizes.scaling_rounds):
        for processes in (1, 2):
            figures = scaling_run(run, processes, run.prefix(f"scale{processes}.r{round_no}"))
            rates[processes].append(figures["docs_per_s"])
            if processes not in best or figures["docs_per_s"] > best[processes]["docs_per_s"]:
                best[processes] = figures
            progress(f"  {processes} process(es): {figures['docs_per_s']:,.1f} docs/s, "
                     f"{figures['cores_used']:.2f} cores used (broker "
                     f"{figures['broker_cores_used']:.2f}), load average "
                     f"{os.getloadavg()[0]:.2f}")
    return {"partitions": Settings().kafka_partitions, "rounds": run.sizes.scaling_rounds,
            "reuse": 0,
            "one": best[1], "two": best[2],
            "all_docs_per_s": {"one": rates[1], "two": rates[2]},
            "speedup": round(best[2]["docs_per_s"] / best[1]["docs_per_s"], 2),
            "target_speedup": SPEEDUP_TARGET}


def rows(c: Figures, results: dict[str, Any]) -> Sequence[Row]:
    one, two = c["one"], c["two"]
    cpus = results.get("machine", {}).get("cpus", "?")
    return [
        ("Enrich: 1 process", f"{number(one['docs_per_s'], 1)} docs/s", "",
         f"`newswatch enrich` subprocess, {one['documents']:,} documents, "
         f"{c['partitions']}-partition topic, publish -> last output, best of "
         f"{c['rounds']}; {one['cores_used']:.2f} cores used"
         + ("; reuse of duplicate texts off" if c.get("reuse") == 0 else "")),
        ("Enrich: 2 processes, one group",
         f"{number(two['docs_per_s'], 1)} docs/s = {c['speedup']:.2f}x",
         f">= {c['target_speedup']}x ({met(c['speedup'] >= c['target_speedup'])})",
         f"{cpus} CPUs shared with the broker ({two['broker_cores_used']:.2f} cores); "
         f"{two['cores_used']:.2f} cores used; docs per CPU second "
         f"{number(two['docs_per_cpu_s'], 1)} (1 process: {number(one['docs_per_cpu_s'], 1)})"
         f"; duplicates {two['duplicates']}"),
        ("Peak memory: enrich, each of 2 processes",
         " / ".join(f"{number(mb)}" for mb in two["peak_rss_mb"]) + " MB", "",
         "VmHWM, batches of 64 long and short articles"),
    ]


SECTION = Section("enrich_scaling", "Enrich: 1 and 2 processes", measure, rows)
