"""``newswatch store``, ``newswatch db upgrade|current|check|prune|revision`` and
``newswatch articles``: the store daemon, the database's schema and retention, and lookups.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from consumers.store.daemon import (
    DEFAULT_BATCH,
    DEFAULT_GROUP,
    run_sql_stage,
    run_store,
)
from consumers.store.prune import DEFAULT_BATCH as PRUNE_BATCH
from consumers.store.prune import PruneResult, Retention, preview, prune
from consumers.store.query import ArticleMatch, recent_articles
from newswatch import migrate
from newswatch.db import make_engine
from newswatch.settings import Settings
from schemas import duration


def parse_duration(text: str) -> timedelta:
    """``90d``, ``24h``, ``1h30m`` ... as a timedelta (argparse type; `schemas.duration`)."""
    try:
        return duration.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use a number and a unit, e.g. 90d, 24h, 1h30m"
        ) from exc


def parse_since(text: str) -> datetime:
    """A duration back from now (``24h``) or an ISO date or time (UTC when no offset)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (24h, 7d) nor a date (2021-10-21)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def register(subparsers: Any) -> None:
    store: argparse.ArgumentParser = subparsers.add_parser(
        "store", help="consume news.enriched into the database (a consumer group)")
    store.add_argument("--group", default=DEFAULT_GROUP, help="consumer group id")
    store.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                       help="records per transaction")
    store.set_defaults(handler=handle_store)

    db: argparse.ArgumentParser = subparsers.add_parser(
        "db", help="migrate, inspect and prune the database")
    actions = db.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="migrate the database to the current schema")
    upgrade.add_argument("--revision", default="head", help=argparse.SUPPRESS)
    actions.add_parser("current", help="show the database's schema revision and the code's")
    actions.add_parser("check", help="compare the database's tables with the code's")
    pruning = actions.add_parser(
        "prune", help="delete old articles (with their hits), old alerts and stale seen rows")
    pruning.add_argument("--older-than", type=parse_duration, required=True,
                         metavar="AGE", help="e.g. 90d: articles stored before now - AGE")
    pruning.add_argument("--by", choices=("stored", "published"), default="stored",
                         help="the article time AGE counts from (default: when it was stored; "
                              "archives and backfills are old on purpose)")
    pruning.add_argument("--alerts-older-than", type=parse_duration, default=None,
                         metavar="AGE", help="sent or failed alerts, with their delivery log, "
                                             "decided before now - AGE (default 90d, and never "
                                             "less than --older-than)")
    pruning.add_argument("--dry-run", action="store_true",
                         help="print what would be deleted; delete nothing")
    pruning.add_argument("--batch-size", type=int, default=PRUNE_BATCH,
                         help="rows per transaction")
    revision = actions.add_parser(
        "revision", help="(developers) write a migration for changes to schemas/tables.py")
    revision.add_argument("-m", "--message", required=True)
    db.set_defaults(handler=handle_db)

    articles: argparse.ArgumentParser = subparsers.add_parser(
        "articles", help="recent articles by topic, entity or feed, with topic scores")
    articles.add_argument("--topic", help="only articles with a hit on this topic")
    articles.add_argument("--since", type=parse_since, default="24h",
                          help="how far back: 24h, 7d, or a date (default 24h)")
    articles.add_argument("--entity", help="only articles naming this entity")
    articles.add_argument("--feed", help="only articles of this feed id")
    articles.add_argument("--language", metavar="CODE",
                          help="only articles in this language (pt also finds pt-BR)")
    articles.add_argument("--limit", type=int, default=50)
    articles.add_argument("--json", action="store_true", help="JSON lines, for scripts")
    articles.set_defaults(handler=handle_articles)


def handle_store(args: argparse.Namespace, settings: Settings) -> int:
    return run_sql_stage("store", settings, lambda stop, engine: run_store(
        settings, stop, engine=engine, group_id=args.group, batch_size=args.batch_size))


def handle_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.db_action == "revision":
        path = migrate.new_revision(args.message)
        print(f"wrote {path}; review it before committing" if path
              else "schemas/tables.py and the migrations agree: nothing to write")
        return 0
    engine = make_engine(settings.sqlalchemy_url())
    where = engine.url.render_as_string(hide_password=True)
    try:
        if args.db_action == "upgrade":
            revision = migrate.upgrade(engine, args.revision)
            print(f"database {where} is at revision {revision}")
            return 0
        if args.db_action == "current":
            current, head = migrate.current_revision(engine), migrate.head_revision()
            state = "up to date" if current == head else "run: newswatch db upgrade"
            print(f"database {where} is at revision {current or '(none)'}; "
                  f"code needs {head} ({state})")
            return 0 if current == head else 1
        if args.db_action == "check":
            migrate.check_schema(engine)
            differences = migrate.schema_differences(engine)
            for difference in differences:
                print(f"differs: {difference}")
            if not differences:
                print(f"database {where} matches the tables of this code")
            return 1 if differences else 0
        return _prune(engine, args)
    finally:
        engine.dispose()


def _prune(engine: Engine, args: argparse.Namespace) -> int:
    try:
        retention = Retention.of(args.older_than, by=args.by,
                                 alerts_older_than=args.alerts_older_than)
    except ValueError as exc:
        print(f"newswatch db prune: {exc}", file=sys.stderr)
        return 2
    migrate.check_schema(engine)
    if args.dry_run:
        plan = preview(engine, retention)
        print(f"dry run, nothing deleted. Would delete {plan.articles} of "
              f"{plan.articles_total} articles {plan.by} before "
              f"{plan.cutoff:%Y-%m-%d %H:%M} UTC" + _published_range(plan)
              + f", with {plan.topic_hits} topic hits and {plan.entity_links} entity links; "
              f"{plan.seen_items} seen items that left their feeds; {plan.alerts} sent or "
              f"failed alerts decided before {retention.alerts_cutoff:%Y-%m-%d %H:%M} UTC, "
              f"with {plan.deliveries} delivery attempts.")
        if plan.kept_held:
            print(f"Kept: {plan.kept_held} old articles a throttle or digest holds for an "
                  f"alert not sent yet.")
        return 0
    result = prune(engine, args.older_than, by=args.by,
                   alerts_older_than=args.alerts_older_than, batch_size=args.batch_size)
    print(f"deleted {result.articles} articles {result.by} before "
          f"{result.cutoff:%Y-%m-%d %H:%M} UTC, with {result.topic_hits} topic hits and "
          f"{result.entity_links} entity links; {result.seen_items} seen items; "
          f"{result.alerts} alerts with {result.deliveries} delivery attempts; "
          f"in {result.batches} transactions"
          + (f"; kept {result.kept_held} articles held for an alert" if result.kept_held
             else ""))
    return 0


def _published_range(plan: PruneResult) -> str:
    if plan.first_published is None or plan.last_published is None:
        return ""
    return (f" (published {plan.first_published:%Y-%m-%d} to "
            f"{plan.last_published:%Y-%m-%d})")


def handle_articles(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        migrate.check_schema(engine)
        found = recent_articles(engine, since=args.since, topic=args.topic,
                                entity=args.entity, feed=args.feed,
                                language=args.language, limit=args.limit)
    finally:
        engine.dispose()
    if args.json:
        for match in found:
            sys.stdout.write(json.dumps(match.to_json(), ensure_ascii=False) + "\n")
        return 0
    Console().print(_table(found, args))
    return 0


def _table(found: list[ArticleMatch], args: argparse.Namespace) -> Table:
    filters = [f"{name} {value}" for name, value in
               (("topic", args.topic), ("entity", args.entity), ("feed", args.feed),
                ("language", args.language)) if value]
    title = (f"{len(found)} articles since {args.since:%Y-%m-%d %H:%M} UTC"
             + (f" ({', '.join(filters)})" if filters else ""))
    table = Table(title=title, show_lines=False)
    table.add_column("Published (UTC)", no_wrap=True)
    table.add_column("Feed")
    table.add_column("Lang", no_wrap=True)
    table.add_column("Title", ratio=3)
    table.add_column("Topics", no_wrap=True)
    table.add_column("URL", overflow="fold", ratio=2)
    for match in found:
        topics = "\n".join(f"{t.topic} {t.score:.2f}" for t in match.topics) or "-"
        # Text(), not str: a title like "[LIVE] ..." must not be read as rich markup.
        table.add_row(f"{match.published:%Y-%m-%d %H:%M}", Text(match.feed_name or match.feed_id),
                      Text(match.language or "-"), Text(match.title), Text(topics),
                      Text(match.url or ""))
    return table
