"""Fixtures of the console tests: a migrated database holding the seed article (really
enriched) and its three alerts, accounts of each role, and the console served by uvicorn
on a free 127.0.0.1 port in a thread, as `newswatch web` serves it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import run_tick
from consumers.alert.ruleset import RulesHolder
from consumers.enrich.enrich import Enricher
from consumers.store.write import store_batch
from consumers.web.auth import add_user, create_token
from consumers.web.daemon import build_server
from newswatch.settings import Settings
from schemas.ids import article_id
from schemas.messages import Article
from tests.enrich_fixtures import SEED_ARTICLE
from tests.support.migrated import MigratedTemplates
from tests.support.ports import free_port
from tests.support.waits import wait_for

PASSWORD = "correct horse battery"
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
RULES = """
version: 1
channels:
  alerts-file:
    type: jsonl
    path: alerts.jsonl
  partner-hook:
    type: webhook
    url: http://127.0.0.1:{dead_port}/hook
    timeout: 2s
delivery:
  max_attempts: 1
rules:
  - name: islamic-state-threat
    match: {{topics: [is_threat]}}
    group_by: [rule, topic]
    channels: [alerts-file, partner-hook]
  - name: drug-trafficking
    match: {{topics: [drug_trafficking]}}
    group_by: [rule, topic]
    channels: [alerts-file]
  - name: regime-recognition
    match: {{topics: [recognition]}}
    group_by: [rule, topic]
    channels: [alerts-file]
"""


@dataclass
class Console:
    """A running console and what the test needs to drive it."""

    url: str
    engine: Engine
    settings: Settings
    seed_id: str
    hostile_id: str
    admin_token: str
    viewer_token: str
    holder: RulesHolder

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30,
                            follow_redirects=False)

    def evaluate(self) -> list[tuple[int, str]]:
        """One alert-daemon evaluation (the daemon's own `run_tick`)."""
        return run_tick(self.engine, self.holder.current.rules, datetime.now(UTC)).alerts


def seed_article(enricher: Enricher, published: datetime) -> Article:
    lines = SEED_ARTICLE.read_text(encoding="utf-8").split("\n", 1)
    url = "https://www.example-news.org/2021/10/russia-invites-taliban"
    return Article(id=article_id(url), url=url, title=lines[0].strip(), content=lines[1],
                   published=published, fetched_at=published, feed_id="demo-ontopic",
                   feed_name="Demo on-topic feed", language="en")


def hostile_article(published: datetime) -> Article:
    url = "https://hostile.example.org/xss"
    return Article(id=article_id(url), url="javascript:alert(2)", title=HOSTILE_TITLE,
                   content="<script>alert(3)</script> Taliban officials met in Kabul.",
                   published=published, fetched_at=published, feed_id="hostile",
                   feed_name="<b>Hostile</b>", language="en")


def start_console(db_url: str, tmp_path: Path, enricher: Enricher,
                  templates: MigratedTemplates) -> Iterator[Console]:
    engine = templates.engine(db_url)  # migrated: a copy of the session's migrated database
    now = datetime.now(UTC)
    seed = seed_article(enricher, now - timedelta(hours=2))
    hostile = hostile_article(now - timedelta(hours=1))
    store_batch(engine, [enricher.enrich(seed), enricher.enrich(hostile)])
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(dead_port=free_port()), encoding="utf-8")
    holder = RulesHolder(rules, dialect=engine.dialect.name, state_dir=tmp_path)
    run_tick(engine, holder.current.rules, now)
    deliverer = Deliverer(engine, holder.channels)
    deliverer.run_once()
    deliverer.close()

    add_user(engine, "ana", "analyst", PASSWORD, who="test")
    add_user(engine, "vic", "viewer", PASSWORD, who="test")
    add_user(engine, "root", "admin", PASSWORD, who="test")
    settings = Settings(database_url=db_url, rules_file=rules, state_dir=tmp_path,
                        web_port=free_port(), web_login_attempts=3)
    server, app_engine, _app = build_server(settings)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    wait_for(lambda: bool(server.started), 20, "the console to start", interval_s=0.05)
    try:
        yield Console(url=settings.web_url(), engine=engine, settings=settings,
                      seed_id=seed.id, hostile_id=hostile.id,
                      admin_token=create_token(engine, "ana", "tests", who="test"),
                      viewer_token=create_token(engine, "vic", "tests", who="test"),
                      holder=holder)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        holder.close()
        app_engine.dispose()
        engine.dispose()


@pytest.fixture
def console(db_url: str, tmp_path: Path, enricher: Enricher,
            migrated_templates: MigratedTemplates) -> Iterator[Console]:
    """The console on SQLite and on PostgreSQL (like ``db_url``)."""
    yield from start_console(db_url, tmp_path, enricher, migrated_templates)


@pytest.fixture
def sqlite_console(tmp_path: Path, enricher: Enricher,
                   migrated_templates: MigratedTemplates) -> Iterator[Console]:
    """The console on SQLite only (the browser tests: the API tests cover both)."""
    yield from start_console(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, enricher,
                             migrated_templates)
