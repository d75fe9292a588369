"""``newswatch run``: the whole pipeline on its embedded defaults, in one command."""

from __future__ import annotations

import argparse
from typing import Any

from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_cli import local_kafka
from newswatch.settings import Settings
from schemas import tables


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the pipeline (local Kafka unless KAFKA_BOOTSTRAP_SERVERS is set)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka_bootstrap_servers:
        print(f"Kafka: using {settings.kafka_bootstrap_servers}")
    else:
        print(f"Kafka: local broker ready at {local_kafka(settings).start()}")
    names = ensure_topics(settings)
    print(f"Kafka topics: {names.articles}, {names.enriched}, {names.dlq}")
    engine = make_engine(settings.sqlalchemy_url())
    tables.metadata.create_all(engine)
    engine.dispose()
    print(f"Database: {engine.url.render_as_string(hide_password=True)} ready")
    print("Pipeline stages (producer, enrich, store, alert) are not built yet; "
          "the broker keeps running (stop it with: newswatch kafka stop)")
    return 0
