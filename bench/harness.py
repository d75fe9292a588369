"""What the benchmarks share beyond ``tests.support``: the machine's load, progress
lines, a local broker for one run, process figures read from /proc, daemon environments.

``tests.support`` holds what tests and benchmarks both drive (ports, waits, daemon
subprocesses, feed server, webhook receiver); this module holds what only benchmarks
need. Every figure a benchmark prints goes beside `uptime()`.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from newswatch.kafka_clients import make_producer
from newswatch.kafka_local import LocalKafka
from newswatch.settings import Settings
from schemas.messages import Article
from tests.support.broker import running_broker
from tests.support.daemons import REPO, DaemonProcess
from tests.support.postgres import POSTGRES_ENV, fresh_schema


def uptime() -> str:
    """The ``uptime`` line: the load the figures beside it were measured under."""
    return subprocess.run(["uptime"], capture_output=True, text=True,
                          check=False).stdout.strip()


def progress(message: str) -> None:
    """A timestamped progress line on stderr (stdout carries the figures)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(action: Callable[[], object]) -> float:
    """Wall-clock seconds ``action`` took."""
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), or None when it is gone."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else round(kib / 1024, 1)


def rss_mb() -> float:
    """This process's resident memory now (VmRSS)."""
    return (_status_kib("self", "VmRSS") or 0) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def local_broker(heap: str = "512m", timeout_s: float = 120,
                 scratch: Path | None = None) -> Iterator[tuple[LocalKafka, str]]:
    """A Kafka broker of this run's own (free ports, a temporary state folder, or one in
    ``scratch``): yields it and its bootstrap address; stopped on the way out."""
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        broker = stack.enter_context(running_broker(scratch / "kafka", heap, timeout_s))
        yield broker, broker.bootstrap


def group_settled(admin: KafkaAdminClient, group: str, members: int) -> bool:
    """``group`` is Stable with exactly ``members`` members, each assigned partitions: input
    published now is not replayed by a rebalance mid-run."""
    try:
        described = admin.describe_groups([group])[group]
    except KafkaError:  # no group coordinator yet on a fresh broker: not ready
        return False
    return (described.get("group_state") == "Stable"
            and len(described.get("members", [])) == members
            and all(m.get("member_assignment", {}).get("assigned_partitions")
                    for m in described["members"]))


def daemon_env(bootstrap: str, prefix: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon: this run's broker, topics and state folder only;
    ``extra`` adds ``NEWSWATCH_<NAME>`` settings (``database_url=...``)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("NEWSWATCH_") and name != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix,
                "NEWSWATCH_STATE_DIR": str(state_dir), "NEWSWATCH_LOG_FORMAT": "json",
                "NEWSWATCH_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
    env.update({f"NEWSWATCH_{name.upper()}": value for name, value in extra.items()})
    return env


def start_daemon(name: str, env: dict[str, str], log_dir: Path, *argv: str) -> DaemonProcess:
    """``python -m newswatch.cli <argv>`` as a child process, its log ``log_dir/name.log``."""
    return DaemonProcess(name, argv, env, log_dir / f"{name}.log", cwd=REPO).start()


def publish_articles(settings: Settings, topic: str, articles: Sequence[Article]) -> None:
    """Every article to ``topic``, keyed by its id, all acknowledged before returning."""
    producer = make_producer(settings)
    try:
        for article in articles:
            producer.send(topic, key=article.id.encode(), value=article.to_bytes())
        producer.flush(timeout=120)
    finally:
        producer.close()


@contextlib.contextmanager
def postgres_database(prefix: str = "bench") -> Iterator[str]:
    """A fresh schema on the server of NEWSWATCH_TEST_POSTGRES_URL, dropped on the way
    out; exits saying what to run when the variable is not set."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        raise SystemExit(f'PostgreSQL: {POSTGRES_ENV} is not set: run '
                         'eval "$(scripts/postgres.sh start)" first')
    with fresh_schema(base, prefix) as url:
        yield url
