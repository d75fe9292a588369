"""``newswatch producer`` and ``newswatch feeds list|check``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from newswatch.daemon import Daemon
from newswatch.db import make_engine
from newswatch.errors import FeedError
from newswatch.settings import Settings
from producers.daemon import run
from producers.fetch import Fetcher
from producers.parse import parse
from producers.state import FeedState, Store
from schemas import tables
from schemas.feeds_file import FeedConfig, load_feeds_file


def register(subparsers: Any) -> None:
    producer: argparse.ArgumentParser = subparsers.add_parser(
        "producer", help="poll the feeds and publish new articles to Kafka")
    _feeds_option(producer)
    producer.add_argument("--once", action="store_true",
                          help="refresh the due feeds once and exit (cron, tests)")
    producer.add_argument("--default-interval", type=float, metavar="SECONDS",
                          help="poll interval of feeds that set none "
                               "(default: NEWSWATCH_PRODUCER_DEFAULT_INTERVAL_S)")
    producer.set_defaults(handler=handle_producer)

    feeds: argparse.ArgumentParser = subparsers.add_parser(
        "feeds", help="list the configured feeds with their state, or check them")
    actions = feeds.add_subparsers(dest="feeds_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="feeds and their polling state")
    _feeds_option(listing)
    check = actions.add_parser(
        "check", help="validate feeds.yaml and report failing feeds (exit 1 if any)")
    # As `rules check` takes its file: FILE or --feeds FILE, default from the settings.
    check.add_argument("file", type=Path, nargs="?", default=None, metavar="FILE",
                       help="feeds.yaml (default: NEWSWATCH_FEEDS_FILE, else the demo feeds)")
    _feeds_option(check)
    check.add_argument("--fetch", action="store_true",
                       help="also fetch and parse every enabled feed now (nothing is "
                            "published or recorded)")
    feeds.set_defaults(handler=handle_feeds)


def _feeds_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feeds", type=Path, metavar="FILE",
                        help="feeds.yaml (default: NEWSWATCH_FEEDS_FILE, else the demo feeds)")


def _path(args: argparse.Namespace, settings: Settings) -> Path:
    given: Path | None = getattr(args, "file", None) or args.feeds
    return given if given is not None else settings.feeds_path()


def handle_producer(args: argparse.Namespace, settings: Settings) -> int:
    shell = Daemon("producer", settings)
    return shell.run(lambda: run(settings, _path(args, settings), shell, once=args.once,
                                 default_interval_s=args.default_interval))


def handle_feeds(args: argparse.Namespace, settings: Settings) -> int:
    path = _path(args, settings)
    config = load_feeds_file(path)  # ConfigError: one clear message, exit 2
    states = _states(settings)
    print(f"{path}: {len(config.feeds)} feeds, {len(config.enabled())} enabled")
    _print_table(config.feeds, states)
    if args.feeds_action == "list":
        return 0
    failing = [f for f in config.enabled()
               if (s := states.get(f.id)) is not None and (s.error_count or s.disabled_reason)]
    for feed in failing:
        state = states[feed.id]
        print(f"FAILING {feed.id}: {state.disabled_reason or state.last_error} "
              f"({state.error_count} errors in a row)")
    broken = _fetch_all(config.enabled(), settings) if args.fetch else 0
    return 1 if failing or broken else 0


def _states(settings: Settings) -> dict[str, FeedState]:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        if tables.feeds.name not in inspect(engine).get_table_names():
            return {}
        return Store(engine).states()
    except SQLAlchemyError as exc:
        print(f"(feed state unavailable: {type(exc).__name__}: {exc})")
        return {}
    finally:
        engine.dispose()


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


_POLL_OUTCOMES = {"published": "new items", "unchanged": "200, nothing new",
                  "not_modified": "304 not modified", "failed": "failed"}


def last_poll(state: FeedState) -> str:
    """What the feed answered last: a 304 shows that conditional GET works."""
    if state.last_outcome is None:
        return "-"
    text = _POLL_OUTCOMES.get(state.last_outcome, state.last_outcome)
    if state.last_outcome == "not_modified" and state.last_changed_at is not None:
        text += f" (changed {_when(state.last_changed_at)})"
    return text


def _print_table(feeds: tuple[FeedConfig, ...], states: dict[str, FeedState]) -> None:
    header = ("ID", "ON", "LAST SUCCESS", "LAST POLL", "NEXT CHECK", "ERRORS", "ITEMS",
              "LAST ERROR / WARNING")
    rows = [header]
    for feed in feeds:
        state = states.get(feed.id)
        if state is None:
            rows.append((feed.id, "yes" if feed.enabled else "no", "never", "-", "now", "0",
                         "0", "-"))
            continue
        on = "GONE" if state.disabled_reason else ("yes" if feed.enabled else "no")
        error = state.disabled_reason or state.last_error or "-"
        if state.last_error and state.last_error_at:
            error = f"{_when(state.last_error_at)} {error}"
        if state.last_warning and not state.error_count:
            error = f"warning: {state.last_warning}"  # read fine, but something was repaired
        rows.append((feed.id, on, _when(state.last_success_at), last_poll(state),
                     _when(state.next_check_at), str(state.error_count), str(state.items_seen),
                     error[:70]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[-1])


def _fetch_all(feeds: tuple[FeedConfig, ...], settings: Settings) -> int:
    """Fetch and parse each feed now; print one line each; return how many failed."""
    fetcher = Fetcher(settings)
    broken = 0
    try:
        for feed in feeds:
            try:
                fetched = fetcher.fetch(feed.url)
                parsed = parse(fetched.body, http_charset=fetched.charset,
                               encoding=feed.encoding, language=feed.language)
            except FeedError as exc:
                broken += 1
                print(f"FETCH {feed.id}: FAILED {exc}")
                continue
            notes = f" ({'; '.join(parsed.warnings)})" if parsed.warnings else ""
            print(f"FETCH {feed.id}: ok, {parsed.version or 'feed'}, {len(parsed.entries)} "
                  f"items, {parsed.encoding}{notes}")
    finally:
        fetcher.close()
    return broken
