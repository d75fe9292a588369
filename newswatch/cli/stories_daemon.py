"""``newswatch stories run``: the stories stage as a daemon (signals, health, metrics)."""

from __future__ import annotations

import argparse
from typing import Any

from newswatch.settings import Settings


def register_run(commands: Any) -> None:
    run: argparse.ArgumentParser = commands.add_parser(
        "run", help="the stories stage: place news.enriched articles in stories (daemon)")
    # Defaults as in consumers.stories.daemon, which is imported only to run.
    run.add_argument("--group", default="newswatch-stories", help="Kafka consumer group")
    run.add_argument("--batch-size", type=int, default=500)
    run.set_defaults(handler=handle_run)


def handle_run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.store.daemon import run_sql_stage
    from consumers.stories.daemon import run_stories

    # The store's shell: the open stories are millions of long-lived objects, so the
    # collector is tuned as the store's is (measured there).
    return run_sql_stage("stories", settings, lambda stop, engine: run_stories(
        settings, stop, engine=engine, group_id=args.group, batch_size=args.batch_size))
