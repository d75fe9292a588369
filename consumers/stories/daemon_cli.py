"""``newswatch stories run``: the stories stage as a daemon (signals, health, metrics)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine, text

from newswatch.daemon import StopFlag, install_signal_handlers
from newswatch.db import make_engine
from newswatch.health import start_health_server
from newswatch.settings import Settings


def register_run(commands: Any) -> None:
    run: argparse.ArgumentParser = commands.add_parser(
        "run", help="the stories stage: place news.enriched articles in stories (daemon)")
    # Defaults as in consumers.stories.daemon, which is imported only to run.
    run.add_argument("--group", default="newswatch-stories", help="Kafka consumer group")
    run.add_argument("--batch-size", type=int, default=500)
    run.set_defaults(handler=handle_run)


def handle_run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.store.daemon import tune_gc_for_batches
    from consumers.stories.daemon import run_stories

    stop = StopFlag()
    install_signal_handlers(stop)
    # The open stories are millions of long-lived objects: the default collector would
    # rescan them all every few thousand allocations (the store's tuning, measured there).
    tune_gc_for_batches()
    engine = make_engine(settings.sqlalchemy_url())
    health = start_health_server(settings.metrics_port, lambda: _answers(engine),
                                 settings.metrics_host)
    try:
        run_stories(settings, stop, engine=engine, group_id=args.group,
                    batch_size=args.batch_size)
    finally:
        if health is not None:
            health.stop()
        engine.dispose()
    return 0


def _answers(engine: Engine) -> bool:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True
