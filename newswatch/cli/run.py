"""``newswatch run``: the whole pipeline in one command, on embedded defaults.

Starts the local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), migrates the
database, then runs producer, enrich, store, alert (its evaluator and its deliverer as
two processes, so a busy evaluation never delays a webhook), stories and the web console
as supervised child processes (the console's URL is printed, and with no account yet an
``admin`` is created: NEWSWATCH_WEB_ADMIN_PASSWORD, else a random password printed once),
shows live progress, and on Ctrl+C stops them cleanly and prints a summary. With no
configuration it polls the bundled demo feeds and sends alerts to a JSON-lines file and
the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from newswatch.cli.kafka import local_kafka
from newswatch.cli.web import ensure_first_admin
from newswatch.daemon import StopFlag, install_signal_handlers
from newswatch.db import make_engine
from newswatch.kafka_admin import ensure_topics
from newswatch.kafka_local import LocalKafka
from newswatch.migrate import upgrade
from newswatch.progress import RunOutput, failed_summary, render, scrape
from newswatch.settings import Settings
from newswatch.supervisor import ChildSpec, Supervisor
from schemas import tables

STAGES = ("producer", "enrich", "store", "alert", "stories", "web", "deliver")
# A stage whose daemon is a subcommand of its own command group, or a role of one.
_STAGE_ARGV = {"stories": ["stories", "run"], "alert": ["alert", "--role", "evaluate"],
               "deliver": ["alert", "--role", "deliver"]}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the whole pipeline (local Kafka unless KAFKA_BOOTSTRAP_SERVERS is set)"
    )
    parser.add_argument("--metrics-base-port", type=int, default=9400,
                        help="children serve /metrics on this port and the next ones, one each")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop by itself after this many seconds (demos, tests)")
    parser.add_argument("--poll-interval", type=float, default=300.0,
                        help="seconds between polls of each feed (default 300)")
    parser.set_defaults(handler=handle)


def child_specs(settings: Settings, base_port: int, poll_interval: float) -> list[ChildSpec]:
    """The seven daemons, each with its own metrics port and log file."""
    logs = settings.state_dir / "logs"
    specs = []
    for offset, stage in enumerate(STAGES):
        argv = [sys.executable, "-m", "newswatch.cli", *_STAGE_ARGV.get(stage, [stage])]
        if stage == "producer":
            argv += ["--default-interval", str(poll_interval)]
        specs.append(ChildSpec(
            name=stage, argv=argv, log_path=logs / f"{stage}.log",
            env={"NEWSWATCH_METRICS_PORT": str(base_port + offset),
                 "NEWSWATCH_LOG_FORMAT": "json"},
        ))
    return specs


def _failed_alerts(settings: Settings) -> int:
    """Alerts the database holds as failed for good (this run's and earlier ones)."""
    engine = make_engine(settings.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.alerts)
                                    .where(tables.alerts.c.status == "failed")).scalar_one())
    except SQLAlchemyError as exc:
        print(f"  (failed alerts unknown: {type(exc).__name__})")
        return 0
    finally:
        engine.dispose()


def handle(args: argparse.Namespace, settings: Settings) -> int:
    out = RunOutput()
    broker: LocalKafka | None = None
    with contextlib.ExitStack() as cleanup:
        if settings.kafka_bootstrap_servers:
            out.say(f"Kafka: {settings.kafka_bootstrap_servers}")
        else:
            kafka = local_kafka(settings)
            if kafka.pid() is None:
                # Whatever happens next (Ctrl+C while it starts, a failed migration, a
                # closed stdout), the broker this run starts stops with it: no orphan.
                cleanup.callback(kafka.stop)
                broker = kafka
            bootstrap = kafka.start()  # KafkaStartError (a port clash...): one line, exit 2
            out.say(f"Kafka: local broker at {bootstrap} (data in {kafka.data_dir})")
        _prepare(settings, out)
        return _supervise(args, settings, out, broker)


def _prepare(settings: Settings, out: RunOutput) -> None:
    names = ensure_topics(settings)
    out.say(f"Topics: {names.articles} -> {names.enriched}; poison -> {names.dlq}")
    engine = make_engine(settings.sqlalchemy_url())
    revision = upgrade(engine)
    out.say(f"Database: {engine.url.render_as_string(hide_password=True)} at revision "
            f"{revision}")
    engine.dispose()
    first_user = ensure_first_admin(settings)
    out.say(f"Console: {settings.web_url()}"
            + (f"\n{first_user}" if first_user else " (sign in with your account)"))
    out.say(f"Feeds: {settings.feeds_path()}\nRules: {settings.rules_path()}\n"
            f"Alerts also go to: {settings.alerts_file()}\n"
            f"Daemon logs: {settings.state_dir / 'logs'}/\nPress Ctrl+C to stop.\n")


def _supervise(args: argparse.Namespace, settings: Settings, out: RunOutput,
               broker: LocalKafka | None) -> int:
    """Run the daemons until Ctrl+C (or ``--duration``), then stop them all, whatever
    went wrong in between; print the summary. A second Ctrl+C exits at once: the
    daemons already have their SIGTERM, the broker this run started gets its own."""
    stop = StopFlag()
    install_signal_handlers(stop, on_exit_now=broker.signal_stop if broker else None)
    specs = child_specs(settings, args.metrics_base_port, args.poll_interval)
    supervisor = Supervisor(specs)
    ports = [int(spec.env["NEWSWATCH_METRICS_PORT"]) for spec in specs]
    deadline = None if args.duration is None else time.monotonic() + args.duration
    last_line = ""
    totals: dict[str, float] = {}
    try:
        supervisor.start_all()
        while not stop.stopping and (deadline is None or time.monotonic() < deadline):
            for report in supervisor.check():
                out.say(f"! {report}")
            totals = scrape(ports) or totals
            line = render(totals)
            if line != last_line:
                out.status(f"[{time.strftime('%H:%M:%S')}] {line}")
                last_line = line
            stop.wait(2.0)
        out.say("\nStopping the daemons (they finish their batch and commit)...")
        totals = scrape(ports) or totals
    finally:
        codes = supervisor.stop_all()
    out.say("Summary: " + render(totals))
    for child in supervisor.children:
        out.say(f"  {child.spec.name}: exit {codes.get(child.spec.name)}, "
                f"restarts {child.restarts}")
    failed = failed_summary(_failed_alerts(settings))
    if failed is not None:
        out.say(f"  {failed}")
    out.say(f"Alerts written to {settings.alerts_file()}")
    return 0
