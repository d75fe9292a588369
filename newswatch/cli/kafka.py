"""``newswatch kafka start|stop|status``: the local single-node broker."""

from __future__ import annotations

import argparse
import time
from typing import Any

from newswatch.kafka_local import LocalKafka
from newswatch.kafka_probe import broker_answers
from newswatch.settings import Settings


def local_kafka(settings: Settings) -> LocalKafka:
    """The local broker described by the settings (ports, heap, state folder)."""
    return LocalKafka(
        state_dir=settings.state_dir / "kafka",
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
        # Auto-created topics get as many partitions as ensure_topics gives, so more
        # enrich or store processes can share them.
        partitions=settings.kafka_partitions,
    )


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "kafka", help="start, stop or check the local Kafka broker"
    )
    actions = parser.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)
    actions.add_parser("start", help="start the broker (formats storage on first use)")
    actions.add_parser("stop", help="stop the broker cleanly")
    actions.add_parser("status", help="say whether the broker runs and answers")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    kafka = local_kafka(settings)
    if args.kafka_action == "start":
        if settings.kafka_bootstrap_servers:
            print(f"KAFKA_BOOTSTRAP_SERVERS is set ({settings.kafka_bootstrap_servers}); "
                  "not starting a local broker")
            return 0
        began = time.monotonic()
        bootstrap = kafka.start()
        print(f"Kafka is ready at {bootstrap} ({time.monotonic() - began:.1f}s; "
              f"data in {kafka.data_dir})")
        return 0
    if args.kafka_action == "stop":
        print("Kafka stopped" if kafka.stop() else "Kafka was not running")
        return 0
    bootstrap = settings.kafka_bootstrap_servers or kafka.bootstrap
    pid = kafka.pid() if not settings.kafka_bootstrap_servers else None
    security = {k: v for k, v in settings.kafka_client_config().items()
                if k != "bootstrap_servers"}
    answering = broker_answers(bootstrap, **security)
    where = f"pid {pid}, " if pid else ""
    print(f"Kafka at {bootstrap}: {where}{'answering' if answering else 'not answering'}")
    return 0 if answering else 1
