"""The stories stage wired to a real Kafka broker and a real database.

- two store processes (one group) and the stage on a four-partition topic: one story per
  event, every stored article linked;
- replaying news.enriched from offset 0 gives every article the same story again and
  adds nothing;
- kill -9 of the stage daemon mid-stream, then a restart: the placements are exactly
  those of an uninterrupted run over the same stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from consumers.store.daemon import run_store
from consumers.stories.cluster import cluster_all
from consumers.stories.daemon import run_stories, story_input
from newswatch.consumer_loop import Backoff, LoopStats
from newswatch.daemon import StopFlag
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_clients import make_producer
from newswatch.settings import Settings
from schemas import tables
from schemas.messages import EnrichedArticle
from schemas.topics import TopicNames
from tests.factories import make_article, make_enriched
from tests.support.waits import lag, wait_for

# In the fault suite (moved from tests/stories/ to keep `make test` within its budget):
# each test runs story daemons as processes against Kafka, kill -9 and SIGTERM included.
pytestmark = [pytest.mark.integration, pytest.mark.fault]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "consumers" / "stories" / "data"
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def _labelled(name: str, limit: int | None = None) -> tuple[list[EnrichedArticle], dict[str, str]]:
    items, gold = [], {}
    with (DATA / f"{name}.jsonl").open() as lines:
        for line in list(lines)[:limit]:
            row = json.loads(line)
            published = datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
            article = make_article(id=row["id"], url=row.get("url"), title=row["title"],
                                   summary=row.get("text", ""), published=published,
                                   fetched_at=published, feed_name=row.get("outlet", ""))
            items.append(make_enriched(article, entities=[], topics=[]))
            gold[row["id"]] = row["story"]
    return items, gold


def _settings(bootstrap: str, prefix: str, **extra: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix, **extra)


def _produce(settings: Settings, items: Sequence[EnrichedArticle]) -> None:
    producer = make_producer(settings)
    topic = TopicNames.with_prefix(settings.kafka_topic_prefix).enriched
    for item in items:
        producer.send(topic, key=item.article.id.encode(), value=item.to_bytes())
    producer.flush(timeout=60)
    producer.close()


@dataclass
class Thread:
    stop: StopFlag = field(default_factory=StopFlag)
    result: LoopStats | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def finish(self) -> LoopStats | None:
        self.stop.stop()
        assert self.thread is not None
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def _start(run: Callable[[StopFlag], LoopStats]) -> Thread:
    handle = Thread()

    def body() -> None:
        try:
            handle.result = run(handle.stop)
        except BaseException as error:
            handle.error = error

    handle.thread = threading.Thread(target=body, daemon=True)
    handle.thread.start()
    return handle


def _placements(engine: Engine) -> dict[str, tuple[str, str | None]]:
    sa = tables.story_articles.c
    with engine.connect() as connection:
        return {row.article_id: (row.story_id, row.duplicate_of) for row in
                connection.execute(select(sa.article_id, sa.story_id, sa.duplicate_of))}


@pytest.fixture
def prefix(topic: str) -> str:
    return f"{topic}."


def test_scaled_out_store_still_gives_one_story_per_event_and_replay_changes_nothing(
        kafka_bootstrap: str, prefix: str, group: str, engine: Engine) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=4)
    items, gold = _labelled("bearsears-2026")
    _produce(settings, items)

    stores = [_start(lambda stop: run_store(settings, stop, engine=engine,
                                            group_id=f"{group}-store",
                                            consumer_overrides=FAST_GROUP, batch_size=10))
              for _ in range(2)]
    stage = _start(lambda stop: run_stories(settings, stop, engine=engine,
                                            group_id=f"{group}-stories", batch_size=500,
                                            consumer_overrides=FAST_GROUP,
                                            backoff=Backoff(0.05, 0.5)))
    try:
        wait_for(lambda: stage.error is not None or (
            lag(kafka_bootstrap, f"{group}-stories", names.enriched) == 0
            and lag(kafka_bootstrap, f"{group}-store", names.enriched) == 0), 120,
            "the stage and both stores to catch up")
        # The articles the stage placed while the store had not written them yet are
        # linked by the store when it writes them, or by the stage's repair when idle.
        a = tables.articles.c
        wait_for(lambda: _count(engine, a.story_id.is_(None)) == 0, 30,
                 "every stored article to be linked")
    finally:
        stage.finish()
        for store in stores:
            store.finish()

    placed = _placements(engine)
    assert set(placed) == set(gold)
    stories_of_event: dict[str, set[str]] = {}
    for article_id, event in gold.items():
        stories_of_event.setdefault(event, set()).add(placed[article_id][0])
    assert all(len(stories) == 1 for stories in stories_of_event.values()), stories_of_event
    assert len({next(iter(s)) for s in stories_of_event.values()}) == 3

    # Replay from offset 0 (a new group starts at the earliest offset).
    replay = _start(lambda stop: run_stories(settings, stop, engine=engine,
                                             group_id=f"{group}-replay", batch_size=25,
                                             consumer_overrides=FAST_GROUP))
    try:
        wait_for(lambda: replay.error is not None
                 or lag(kafka_bootstrap, f"{group}-replay", names.enriched) == 0, 120,
                 "the replay to catch up")
    finally:
        stats = replay.finish()
    assert stats is not None
    assert stats.processed == len(items)
    assert _placements(engine) == placed
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(
            tables.story_articles)).scalar_one() == len(items)


def _count(engine: Engine, condition: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(tables.articles)
                                      .where(condition)).scalar_one())


def _stage_command(bootstrap: str, prefix: str, db_url: str, state: Path, group: str,
                   **extra_env: str) -> tuple[list[str], dict[str, str]]:
    """``newswatch stories run`` in batches of 20, and its environment."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix, "NEWSWATCH_DATABASE_URL": db_url,
           "NEWSWATCH_STATE_DIR": str(state), "NEWSWATCH_LOG_FORMAT": "json", **extra_env}
    return [sys.executable, "-m", "newswatch.cli", "stories", "run", "--group", group,
            "--batch-size", "20"], env


def _placed(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(
            select(func.count(tables.story_articles.c.id))).scalar_one())


def test_kill_9_mid_stream_then_restart_gives_the_uninterrupted_answers(
        kafka_bootstrap: str, prefix: str, group: str, engine: Engine, db_url: str,
        tmp_path: Path) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=1)  # one partition: a known arrival order
    items, _gold = _labelled("uci-dev", limit=900)
    _produce(settings, items)
    argv, env = _stage_command(kafka_bootstrap, prefix, db_url, tmp_path, f"{group}-kill",
                               NEWSWATCH_STORY_LEASE_S="3")

    def placed() -> int:
        return _placed(engine)

    first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: first.poll() is not None or placed() >= 200, 120,
                 "the first run to place 200 articles")
        assert first.poll() is None, first.communicate()[1][-3000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert placed() < len(items)

    second = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        # The killed run's lease must run out (3 s) before the new one may write.
        wait_for(lambda: second.poll() is not None
                 or lag(kafka_bootstrap, f"{group}-kill", names.enriched) == 0, 180,
                 "the restarted stage to catch up")
        assert second.poll() is None, second.communicate()[1][-3000:]
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err[-3000:]
    straight = cluster_all([story_input(item) for item in items])
    assert _placements(engine) == {p.id: (p.story, p.duplicate_of) for p in straight}
    assert "open stories rebuilt" in err


def test_sigterm_mid_stream_finishes_the_batch_commits_and_exits_0(
        kafka_bootstrap: str, prefix: str, group: str, engine: Engine, db_url: str,
        tmp_path: Path) -> None:
    settings = _settings(kafka_bootstrap, prefix)
    names = ensure_topics(settings, partitions=1)
    items, _gold = _labelled("uci-dev", limit=900)
    _produce(settings, items)
    argv, env = _stage_command(kafka_bootstrap, prefix, db_url, tmp_path, f"{group}-term")

    def placed() -> int:
        return _placed(engine)

    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: process.poll() is not None or placed() >= 100, 120,
                 "the stage to place its first batches")
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    assert "stop requested" in err
    stored = placed()
    # Stopped mid-stream with every placed article's offset committed.
    assert stored < len(items)
    assert len(items) - lag(kafka_bootstrap, f"{group}-term", names.enriched) == stored
