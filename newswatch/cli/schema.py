"""``newswatch schemas write|check``: the JSON Schema files of the Kafka messages."""

from __future__ import annotations

import argparse
from typing import Any

from newswatch.settings import Settings
from schemas.jsonschema_gen import stale, write_all


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schemas", help="write or check the JSON Schema files of the Kafka messages"
    )
    parser.add_argument("action", choices=["write", "check"])
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "write":
        for path in write_all():
            print(f"wrote {path}")
        return 0
    outdated = stale()
    for name in outdated:
        print(f"out of date: {name} (run: newswatch schemas write)")
    return 1 if outdated else 0
