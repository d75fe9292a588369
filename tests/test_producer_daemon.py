"""The producer as operators run it: `newswatch producer` processes on a real broker.

Restart safety: SIGKILL mid-run, twice, then a run to the end: every article is on the
topic exactly once. Signals: SIGHUP reloads feeds.yaml (an invalid file keeps the last
good one), SIGTERM stops within a bound. And `newswatch feeds list|check`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newswatch.cli import main
from newswatch.db import make_engine
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig
from schemas.ids import article_id, canonical_url
from tests.producer_fixtures import (
    TopicWatch,
    articles_topic,
    migrated_sqlite,
    news_items,
    producer_settings,
    read_topic,
    rss,
    unique_prefix,
)
from tests.support.feed_server import FeedServer, Reply
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


class Producer:
    """A `newswatch producer` child process; its JSON log lines are collected."""

    def __init__(self, env: dict[str, str], feeds: Path, *args: str) -> None:
        self.lines: list[dict[str, object]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newswatch.cli", "producer", "--feeds", str(feeds), *args],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.lines.append({"message": line.rstrip()})

    def saw(self, text: str) -> bool:
        return any(text in str(line.get("message", "")) for line in list(self.lines))

    def wait_for(self, text: str, timeout_s: float = 20.0) -> None:
        def alive() -> None:
            assert self.process.poll() is None, f"exited early: {self.lines[-5:]}"

        wait_for(lambda: self.saw(text), timeout_s, f"{text!r} in the log", check=alive,
                 detail=lambda: f"last lines: {self.lines[-5:]}", interval_s=0.05)

    def finish(self, timeout_s: float = 60.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code


def _env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update(settings_env)
    env["NEWSWATCH_LOG_FORMAT"] = "json"
    return env


def _write_feeds(path: Path, feeds: dict[str, str]) -> None:
    lines = ["feeds:"]
    for feed_id, url in feeds.items():
        lines += [f"  - id: {feed_id}", f"    url: {url}"]
    path.write_text("\n".join(lines) + "\n")


def test_sigkill_mid_run_then_rerun_publishes_every_article_exactly_once(
        kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer,
        watch_factory: list[TopicWatch]) -> None:
    feeds, expected = {}, set()
    for n in range(30):
        items = news_items(f"f{n}", 40)
        body = rss(items, title=f"Feed {n}")
        # Slow answers spread the run over a second or two, so the kills land mid-run.
        feed_server.add(f"/f{n}", Reply(200, body, {"ETag": f'"{n}"'}, delay_s=0.05))
        feeds[f"f{n}"] = feed_server.url(f"/f{n}")
        expected |= {article_id(canonical_url(item["link"])) for item in items}
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, feeds)
    db_url = migrated_sqlite(tmp_path / "producer.db")
    prefix = unique_prefix()
    settings = producer_settings(kafka_bootstrap, db_url, prefix)
    topic = articles_topic(settings)
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix})
    watch = TopicWatch(kafka_bootstrap, topic)
    watch_factory.append(watch)

    killed_at = []
    for threshold in (150, 650):
        producer = Producer(env, feeds_file, "--once")
        deadline = time.monotonic() + 60
        while watch.size() < threshold:
            assert producer.process.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        producer.process.send_signal(signal.SIGKILL)
        assert producer.finish() == -signal.SIGKILL
        killed_at.append(watch.size())
    assert killed_at[-1] < len(expected), "the second kill came after the end"

    assert Producer(env, feeds_file, "--once").finish() == 0

    counts = Counter(key for key, _ in read_topic(kafka_bootstrap, topic))
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert not duplicates, f"published twice: {len(duplicates)}"
    assert set(counts) == expected, f"lost: {len(expected - set(counts))}"
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.seen_items)
                            ).scalar() == len(expected)
        assert conn.execute(select(func.count()).select_from(tables.feeds).where(
            tables.feeds.c.publishing_since.is_not(None))).scalar() == 0
    engine.dispose()


def test_sighup_reloads_keeping_the_last_good_file_and_sigterm_stops(
        kafka_bootstrap: str, tmp_path: Path, feed_server: FeedServer,
        watch_factory: list[TopicWatch]) -> None:
    feed_server.add("/a", Reply(200, rss(news_items("a", 5))))
    feed_server.add("/b", Reply(200, rss(news_items("b", 7))))
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, {"a": feed_server.url("/a")})
    db_url = migrated_sqlite(tmp_path / "producer.db")
    prefix = unique_prefix()
    topic = articles_topic(producer_settings(kafka_bootstrap, db_url, prefix))
    env = _env({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "NEWSWATCH_DATABASE_URL": db_url,
                "NEWSWATCH_KAFKA_TOPIC_PREFIX": prefix})
    watch = TopicWatch(kafka_bootstrap, topic)
    watch_factory.append(watch)

    producer = Producer(env, feeds_file, "--default-interval", "3600")
    try:
        producer.wait_for("feed refreshed")
        assert watch.size() == 5

        feeds_file.write_text("feeds:\n  - id: a\n    url: [broken\n")
        producer.process.send_signal(signal.SIGHUP)
        producer.wait_for("keeping the last good configuration")

        _write_feeds(feeds_file, {"a": feed_server.url("/a"), "b": feed_server.url("/b")})
        producer.process.send_signal(signal.SIGHUP)
        producer.wait_for("feeds file reloaded")
        wait_for(lambda: watch.size() >= 12, 20, "feed b's items published",
                 interval_s=0.05)
        assert len(feed_server.hits("/a")) == 1  # not due again for an hour

        producer.process.send_signal(signal.SIGTERM)
        assert producer.finish(timeout_s=20) == 0  # a clean exit within the bound
        assert producer.saw("producer stopped")
    finally:
        if producer.process.poll() is None:
            producer.process.kill()
            producer.finish()


def test_feeds_list_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(rss(news_items("good", 2)))
    feeds_file = tmp_path / "feeds.yaml"
    _write_feeds(feeds_file, {"good": str(good), "bad": str(tmp_path / "missing.xml"),
                              "quiet": str(good)})
    db_url = migrated_sqlite(tmp_path / "state.db")
    engine = make_engine(db_url)
    store = Store(engine)
    now = datetime.now(UTC)
    store.sync_feeds([FeedConfig(id="good", url=good.as_uri()),
                      FeedConfig(id="bad", url=(tmp_path / "missing.xml").as_uri())])
    store.record_success("good", published=[], unchanged_ids=[], etag=None, last_modified=None,
                         next_check_at=now + timedelta(minutes=5), now=now,
                         warning="no encoding declared and the bytes are not UTF-8")
    store.record_failure("bad", "no such file", next_check_at=now + timedelta(hours=1), now=now)
    store.sync_feeds([FeedConfig(id="quiet", url=good.as_uri())])
    store.record_success("quiet", published=[], unchanged_ids=[], etag='"v1"',
                         last_modified=None, next_check_at=now, now=now - timedelta(hours=1))
    store.record_success("quiet", published=[], unchanged_ids=[], etag='"v1"',
                         last_modified=None, next_check_at=now, now=now, not_modified=True)
    engine.dispose()
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", db_url)

    assert main(["feeds", "list", "--feeds", str(feeds_file)]) == 0
    listing = capsys.readouterr().out
    assert "3 feeds, 3 enabled" in listing
    assert "good" in listing
    assert "no such file" in listing
    quiet = next(line for line in listing.splitlines() if line.startswith("quiet"))
    changed = (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    assert f"304 not modified (changed {changed})" in quiet
    good_line = next(line for line in listing.splitlines() if line.startswith("good"))
    assert "200, nothing new" in good_line
    assert "warning: no encoding declared" in good_line

    assert main(["feeds", "check", "--feeds", str(feeds_file), "--fetch"]) == 1
    checked = capsys.readouterr().out
    assert "FAILING bad: no such file (1 errors in a row)" in checked
    assert "FETCH good: ok, rss20, 2 items, utf-8" in checked
    assert "FETCH bad: FAILED no such file" in checked

    # The file as `rules check` takes its own: FILE, --feeds FILE, or NEWSWATCH_FEEDS_FILE.
    assert main(["feeds", "check", str(feeds_file)]) == 1
    assert f"{feeds_file}: 3 feeds" in capsys.readouterr().out
    monkeypatch.setenv("NEWSWATCH_FEEDS_FILE", str(feeds_file))
    assert main(["feeds", "check"]) == 1
    assert f"{feeds_file}: 3 feeds" in capsys.readouterr().out

    feeds_file.write_text("feeds:\n  - id: x\n")
    assert main(["feeds", "check", "--feeds", str(feeds_file)]) == 2
    assert "feeds.yaml:2: feeds[0].url: Field required" in capsys.readouterr().err

