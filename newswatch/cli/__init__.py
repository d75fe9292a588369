"""The ``newswatch`` console script: one entry point, one subcommand per capability.

Each capability's module exposes ``register(subparsers)``; it adds its subcommand and sets
``handler(args, settings) -> exit code``. Settings are loaded once here and passed in.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence

from newswatch.errors import NewswatchError
from newswatch.logs import setup_logging
from newswatch.settings import Settings, load_settings

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "newswatch.cli.kafka",
    "newswatch.cli.schema",
    "newswatch.cli.run",
    "newswatch.cli.producer",
    "newswatch.cli.store",
    "newswatch.cli.enrich",
    "newswatch.cli.feedback",
    "newswatch.cli.alert",
    "newswatch.cli.stories",
    "newswatch.cli.web",
)

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswatch",
        description="Watch news feeds, find topics and entities, alert on rules.",
    )
    parser.add_argument("--print-config", action="store_true",
                        help="print the settings (secrets hidden) and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def printed_config(settings: Settings) -> dict[str, object]:
    """What ``--print-config`` shows: the settings (secrets hidden) and what they resolve
    to on this machine (the matrix kernel ``auto`` picks)."""
    from consumers.enrich.kernel import select_kernel

    config: dict[str, object] = dict(settings.redacted())
    config["enrich_kernel_selected"] = select_kernel(settings.enrich_kernel).as_dict()
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a `NewswatchError` becomes one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_format, settings.log_level)
        if args.print_config:
            print(json.dumps(printed_config(settings), indent=2, default=str))
            return 0
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 2
        return handler(args, settings)
    except NewswatchError as exc:
        print(f"newswatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

