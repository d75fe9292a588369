"""Shared fixtures: a real Kafka broker, SQLite and PostgreSQL databases, unique names.

- ``kafka_bootstrap`` reuses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts the local
  broker (the same code as ``newswatch kafka start``) on free ports for the session.
- ``db_url`` runs a test on SQLite and on PostgreSQL (NEWSWATCH_TEST_POSTGRES_URL). Without
  that variable the PostgreSQL half is skipped with a printed reason, except under CI,
  where a missing PostgreSQL is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from consumers.enrich.enrich import Enricher

from newswatch.kafka_local import LocalKafka
from tests.producer_fixtures import TopicWatch
from tests.support.broker import running_broker
from tests.support.feed_server import FeedServer
from tests.support.postgres import POSTGRES_ENV, fresh_schema
from tests.support.smtp import SmtpServer
from tests.support.webhook import WebhookReceiver

# Fixtures that start or reach a real service (Kafka, PostgreSQL, an HTTP, SMTP or web
# server on 127.0.0.1). A test that uses one, directly or through another fixture, is an
# integration test: `pytest_collection_modifyitems` marks it, so none is forgotten, and
# ``-m "not integration"`` runs the unit tests alone.
SERVICE_FIXTURES = frozenset({
    "kafka_bootstrap", "own_broker", "disposable_postgres", "pg_engine", "pg_schema_url",
    "feed_server", "receiver", "webhook", "smtp_server",
    "console", "sqlite_console",
})


def needs_a_service(item: pytest.Item) -> bool:
    """Whether a collected test uses a service fixture or runs on PostgreSQL."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("db_url") == "postgresql"
    return on_postgres or bool(names & SERVICE_FIXTURES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if needs_a_service(item) and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, which it may stop and start: the session broker that
    other tests use stays untouched."""
    with running_broker(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    """A consumer group id no other test uses."""
    return f"group-{uuid.uuid4().hex[:12]}"


def _postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set under CI: .ci/run must start PostgreSQL")
    pytest.skip(f"PostgreSQL half skipped: set {POSTGRES_ENV} (as .ci/run does) to run it")


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema on the shared test server; dropped after.

    Skips (or fails under CI) when NEWSWATCH_TEST_POSTGRES_URL is not set.
    """
    with fresh_schema(_postgres_url_or_skip(), prefix) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with postgres_schema("t") as url:
        yield url




# --- Added by the store issue: a migrated database, and a PostgreSQL a test may stop. ---

from sqlalchemy import Engine  # noqa: E402

from tests.pg_server import PostgresServer  # noqa: E402
from tests.support.migrated import MigratedTemplates  # noqa: E402


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> MigratedTemplates:
    """The real migrations, run once per session and dialect, for `engine` to copy."""
    return MigratedTemplates(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def engine(db_url: str, migrated_templates: MigratedTemplates) -> Iterator[Engine]:
    """An engine on ``db_url`` migrated to the code's schema, as ``newswatch db upgrade``
    leaves it (SQLite and PostgreSQL, like ``db_url``): a copy of the session's migrated
    database (`tests.support.migrated`), which is the same and ~0.2 s faster a test."""
    eng = migrated_templates.engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def disposable_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, on a free port, that it may stop and start.

    Stopping the shared test server would break every other test running against it; this
    one is initialised in a temporary folder (~2 s) and removed afterwards. Needs Debian's
    PostgreSQL binaries (NEWSWATCH_TEST_PG_BIN, as scripts/postgres.sh exports, or found
    under /usr/lib/postgresql); skipped without them, except under CI.
    """
    bin_dir = PostgresServer.find_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found under CI: .ci/run must install them")
        pytest.skip("PostgreSQL binaries not found (set NEWSWATCH_TEST_PG_BIN)")
    server = PostgresServer.create(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 whose routes the test sets (`FeedServer`)."""
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def watch_factory() -> Iterator[list[TopicWatch]]:
    """A list to put `TopicWatch` es in; each is closed after the test."""
    watches: list[TopicWatch] = []
    yield watches
    for watch in watches:
        watch.close()


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    """The shipped topics and alias table on the default model, loaded once (~1 s)."""
    from consumers.enrich.enrich import Enricher

    return Enricher.from_files()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 (`WebhookReceiver`)."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 (`SmtpServer`)."""
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()
