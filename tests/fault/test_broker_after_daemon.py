"""A daemon started before its Kafka broker waits for it instead of exiting.

Found by tests/e2e/test_faults.py::test_kafka_and_postgresql_restart_mid_run under load: a
stage restarted while the broker was down died making its Kafka consumer (kafka-python
raises NoBrokersAvailable), and the run lost that stage. Now the daemon shell's `connect`
retries with the retry policy: logged once, counted in newswatch_startup_waits_total,
/readyz red meanwhile, SIGTERM still stops it. Here with the real store daemon and a real
broker started only after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_producer
from newswatch.kafka_local import LocalKafka
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas import tables
from tests.factories import realistic_batch
from tests.support.ports import free_port
from tests.support.waits import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fault]

ROOT = Path(__file__).resolve().parents[2]
WAITS = 'newswatch_startup_waits_total{dependency="Kafka",stage="store"}'


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _waits(metrics_url: str) -> float:
    _status, body = _get(metrics_url)
    for line in body.splitlines():
        if line.startswith(WAITS):
            return float(line.split()[-1])
    return 0.0


class StoreProcess:
    """``newswatch store`` in a subprocess, its log in a file."""

    def __init__(self, bootstrap: str, prefix: str, group: str, db_url: str, log: Path
                 ) -> None:
        self.metrics_port = free_port()
        self.log = log
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
               "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_DATABASE_URL": db_url,
               "NEWSWATCH_METRICS_PORT": str(self.metrics_port), "NEWSWATCH_LOG_FORMAT": "json"}
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "newswatch.cli", "store", "--group", group,
                 "--batch-size", "50"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout_s: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def store_log(tmp_path: Path) -> Path:
    return tmp_path / "store.log"


@pytest.fixture
def prefix() -> str:
    return f"late{uuid.uuid4().hex[:10]}."


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite database (what is tested here is Kafka at start-up, not SQL)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.articles)).scalar_one())


def test_the_store_waits_for_a_broker_started_after_it(
        sqlite: tuple[str, Engine], tmp_path: Path, prefix: str, group: str,
        store_log: Path) -> None:
    db_url, engine = sqlite
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    daemon = StoreProcess(bootstrap, prefix, group, db_url, store_log)
    broker = LocalKafka(state_dir=tmp_path / "kafka", port=port, controller_port=free_port(),
                        heap="384m")
    try:
        # No broker: the daemon stays up, says so once, counts its tries, is not ready.
        # (kafka-python tries to bootstrap for 30 s before it gives up on each attempt.)
        wait_for(lambda: daemon.process.poll() is not None or _waits(daemon.url("/metrics"))
                 >= 1, 90, "the store to try the missing broker")
        assert daemon.process.poll() is None, daemon.text()[-3000:]
        assert _get(daemon.url("/healthz"))[0] == 200
        assert _get(daemon.url("/readyz"))[0] == 503
        assert daemon.text().count("retrying with backoff") == 1, daemon.text()[-3000:]

        broker.start(timeout_s=120)
        settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
        names = ensure_topics(settings, partitions=1)
        items = realistic_batch(120, seed=41, vocabulary=80)
        producer = make_producer(settings)
        for item in items:
            producer.send(names.enriched, key=item.article.id.encode(), value=item.to_bytes())
        producer.flush()
        producer.close()

        wait_for(lambda: daemon.process.poll() is not None or _count(engine) == len(items),
                 120, "the store to store what was sent once the broker came")
        assert daemon.process.poll() is None, daemon.text()[-3000:]
        wait_for(lambda: _get(daemon.url("/readyz"))[0] == 200, 30, "/readyz to turn green")
        assert "works again" in daemon.text()
        assert daemon.stop() == 0, daemon.text()[-3000:]
    finally:
        daemon.kill()
        broker.stop()


def test_sigterm_stops_a_daemon_waiting_for_its_broker(
        sqlite: tuple[str, Engine], prefix: str, group: str, store_log: Path) -> None:
    db_url, _engine = sqlite
    daemon = StoreProcess(f"127.0.0.1:{free_port()}", prefix, group, db_url, store_log)
    try:
        wait_for(lambda: daemon.process.poll() is not None or _waits(daemon.url("/metrics"))
                 >= 1, 90, "the store to try the missing broker")
        assert daemon.process.poll() is None, daemon.text()[-3000:]
        assert daemon.stop(timeout_s=20) == 0, daemon.text()[-3000:]
        assert "stop requested" in daemon.text()
    finally:
        daemon.kill()
