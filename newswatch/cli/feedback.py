"""``newswatch feedback add|export``: analysts' verdicts in, training data out.

    newswatch feedback add ARTICLE recognition --not-relevant --note "an award"
    newswatch feedback export > feedback.jsonl
    newswatch topics train tests/data/labelled/*.jsonl feedback.jsonl --out model.json
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from consumers.store.feedback import export_feedback, latest_verdicts, record_feedback
from newswatch import migrate
from newswatch.db import make_engine
from newswatch.errors import ConfigError
from newswatch.settings import Settings


def register(subparsers: Any) -> None:
    feedback: argparse.ArgumentParser = subparsers.add_parser(
        "feedback", help="record analysts' verdicts on topics; export them as training data")
    actions = feedback.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="record a verdict: is ARTICLE about TOPIC?")
    add.add_argument("article", metavar="ARTICLE", help="article id")
    add.add_argument("topic", metavar="TOPIC", help="topic name, e.g. recognition")
    verdict = add.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--relevant", dest="verdict", action="store_const", const="relevant",
                         help="the article is about the topic")
    verdict.add_argument("--not-relevant", dest="verdict", action="store_const",
                         const="not_relevant", help="the article only mentions it, or not even")
    add.add_argument("--note", default="", help="why (kept with the verdict)")
    add.add_argument("--who", default=None, help="your name (default: the OS user)")
    add.set_defaults(handler=handle_add)
    export = actions.add_parser("export", help="verdicts as labelled JSON lines (for "
                                               "`newswatch topics train`)")
    export.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="write here instead of stdout")
    export.set_defaults(handler=handle_export)


def handle_add(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        migrate.check_schema(engine)
        row = record_feedback(engine, article_id=args.article, topic=args.topic,
                              verdict=args.verdict, who=args.who or _os_user(),
                              note=args.note)
        verdicts = latest_verdicts(engine, args.article)
    finally:
        engine.dispose()
    print(f"recorded feedback {row}: {args.article} {args.topic} {args.verdict} "
          f"(verdicts now: {', '.join(f'{t}={v}' for t, v in sorted(verdicts.items()))})")
    return 0


def handle_export(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        migrate.check_schema(engine)
        if args.out is None:
            count = _write(engine, sys.stdout)
        else:
            try:
                with args.out.open("w", encoding="utf-8") as out:
                    count = _write(engine, out)
            except OSError as exc:
                raise ConfigError(f"{args.out}: cannot write: {exc.strerror or exc}") from exc
    finally:
        engine.dispose()
    print(f"exported {count} judged articles", file=sys.stderr)
    return 0


def _write(engine: Any, out: Any) -> int:
    count = 0
    for record in export_feedback(engine):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    out.flush()
    return count


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"
