"""Where the full-text pipeline's time and CPU go: what `bench_fulltext` measures beside
its rates.

- `CpuSampler`: every daemon's CPU seconds (and the broker's) sampled in a thread a few
  times a second, so a run shows when each process was busy: the first and last moment
  an enrich process worked, and how long it idled at the tail while the other one still
  had articles.
- `published_span`: the Kafka timestamps (producer clock at send) of the first and last
  article on the input topic, and how many articles each partition got: when the
  enrichers could first start, and how evenly the keys spread.
- `budget`: the CPU arithmetic of a run: non-NER CPU per article and the ratio to raw NER
  that budget allows, and the rate the targets need against what NER alone costs here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from bench.harness import cpu_seconds

# A process counts as busy in an interval when it used at least this share of one core.
BUSY_SHARE = 0.5


class CpuSampler:
    """Samples ``pids`` (name -> pid, growing while it runs) every ``every_s`` seconds."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s = every_s
        self.pids: dict[str, int] = {}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, {name: cpu_seconds(pid)
                                       for name, pid in list(self.pids.items())}))
            self._stop.wait(self.every_s)

    def busy_span(self, name: str, since: float) -> tuple[float, float] | None:
        """Seconds after ``since`` of the first and the last interval in which ``name``
        used at least `BUSY_SHARE` of a core; None when it never did."""
        busy = []
        for (t0, a), (t1, b) in zip(self.samples, self.samples[1:], strict=False):
            if (name in a and name in b and t1 > t0 and t0 >= since - self.every_s
                    and (b[name] - a[name]) / (t1 - t0) >= BUSY_SHARE):
                busy.append((t0, t1))
        if not busy:
            return None
        return round(busy[0][0] - since, 2), round(busy[-1][1] - since, 2)

    def cpu_at(self, name: str, moment: float) -> float | None:
        """``name``'s CPU seconds at the last sample before ``moment``."""
        before = [cpu[name] for t, cpu in self.samples if t <= moment and name in cpu]
        return before[-1] if before else None


def published_span(bootstrap: str, topic: str) -> dict[str, Any]:
    """First and last Kafka timestamp (epoch seconds) on ``topic`` and its messages per
    partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=2_000)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends: Mapping[TopicPartition, int] = consumer.end_offsets(tps)
        firsts = consumer.offsets_for_times({tp: 0 for tp in tps})
        first = min((found.timestamp for found in firsts.values() if found is not None),
                    default=None)
        last = None
        for tp in tps:
            if ends[tp] == 0:
                continue
            consumer.seek(tp, ends[tp] - 1)
            for records in consumer.poll(timeout_ms=2_000, max_records=1).values():
                for record in records:
                    last = max(last or 0, record.timestamp)
        consumer.unsubscribe()
    finally:
        consumer.close()
    return {"first": None if first is None else first / 1000,
            "last": None if last is None else last / 1000,
            "per_partition": {tp.partition: ends[tp] for tp in tps}}


def assignment(admin: Any, group: str) -> dict[str, list[int]]:
    """client id -> the partitions its member of ``group`` holds."""
    described = admin.describe_groups([group])[group]
    out: dict[str, list[int]] = {}
    for member in described.get("members", []):
        parts = member.get("member_assignment", {}).get("assigned_partitions") or []
        if isinstance(parts, dict):  # topic -> partitions in some kafka-python versions
            parts = [{"partitions": found} for found in parts.values()]
        out[str(member.get("client_id"))] = sorted(
            p for item in parts
            for p in (item.get("partitions", []) if isinstance(item, dict) else item[1]))
    return out


def budget(articles: int, cpu: Mapping[str, float], raw_cpu_per_doc: float | None,
           cores: int, target_rate: float) -> dict[str, Any]:
    """The CPU arithmetic of one run: ``cpu`` is every process's CPU seconds (start-up
    excluded), ``raw_cpu_per_doc`` raw NER's CPU seconds per document in this session.

    On ``cores`` cores kept busy, the pipeline's rate is at most cores / CPU per article
    and raw NER's cores / NER CPU per document, so the ratio the non-NER CPU allows is
    NER / (NER + non-NER); ``target_rate`` needs at most cores / rate CPU per article.
    """
    total = sum(cpu.values())
    out: dict[str, Any] = {"cpu_ms_per_article": round(1000 * total / articles, 2),
                           "target_cpu_ms_per_article": round(1000 * cores / target_rate, 2)}
    if raw_cpu_per_doc:
        ner = raw_cpu_per_doc * articles
        out.update({
            "ner_cpu_ms_per_article": round(1000 * raw_cpu_per_doc, 2),
            "non_ner_cpu_s": round(total - ner, 2),
            "non_ner_cpu_ms_per_article": round(1000 * (total - ner) / articles, 2),
            "ratio_allowed": round(ner / total, 3),
            "rate_ceiling_no_overhead": round(cores / raw_cpu_per_doc, 1),
        })
    return out


def ignore_errors(action: Callable[[], Any]) -> Any:
    """``action()``, or None when it raises: a diagnostic must never cost the figures."""
    try:
        return action()
    except Exception:  # any failure of a diagnostic is reported as missing
        return None
