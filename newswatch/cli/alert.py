"""Alert subcommands: ``alert`` (the daemon), ``alerts`` (what was sent or failed) and
``rules check|test`` (validate a rules file; backtest it on stored history)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select

from consumers.alert.backtest import RuleReport, backtest
from consumers.alert.compile import compile_rules
from consumers.alert.daemon import ROLES, AlertDaemon
from consumers.alert.deliver import Deliverer
from consumers.alert.outbox import failed_alert_ids, resend_alert
from consumers.alert.rules import load_rules, missing_environment
from consumers.alert.ruleset import RulesHolder
from newswatch.daemon import Daemon
from newswatch.db import make_engine
from newswatch.errors import ConfigError, NotFoundError
from newswatch.migrate import check_schema, wait_for_schema
from newswatch.settings import Settings
from newswatch.utc import as_utc
from schemas import tables, yaml_load
from schemas.duration import parse_duration
from schemas.rules_file import RulesFile


def _duration(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 24h or 7d")
    return value


def register(subparsers: Any) -> None:
    alert = subparsers.add_parser(
        "alert", help="evaluate alert rules on new topic hits and deliver alerts (daemon)")
    alert.add_argument("--rules", type=Path, default=None,
                       help="rules.yaml (default: NEWSWATCH_RULES_FILE or the demo rules)")
    alert.add_argument("--skip-history", action="store_true",
                       help="on a database never evaluated, start after the newest hit")
    alert.add_argument("--role", choices=ROLES, default="all",
                       help="all: evaluate and deliver (default); evaluate: decide alerts "
                            "only; deliver: send what the outbox holds only (run it as a "
                            "process of its own for prompt webhooks under load)")
    alert.set_defaults(handler=handle_alert)

    alerts = subparsers.add_parser("alerts", help="list recent alerts and their deliveries")
    alerts.add_argument("--failed", action="store_true", help="only alerts that failed")
    alerts.add_argument("--json", action="store_true", help="JSON lines for scripts")
    alerts.add_argument("--limit", type=int, default=50)
    alerts.add_argument("--rule", default=None, help="only this rule's alerts")
    alerts.set_defaults(handler=handle_alerts)
    alert_actions = alerts.add_subparsers(dest="alerts_action", metavar="ACTION")
    resend = alert_actions.add_parser(
        "resend", help="send a failed alert again (same alert, same dedup key)")
    resend.add_argument("alert_id", nargs="?", type=int, metavar="ID", help="the alert's id")
    resend.add_argument("--failed", dest="resend_failed", action="store_true",
                        help="every alert that failed for good")
    resend.add_argument("--rule", dest="resend_rule", default=None,
                        help="with --failed: only this rule's")
    resend.set_defaults(handler=handle_resend)

    rules = subparsers.add_parser("rules", help="check or backtest a rules file")
    actions = rules.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a rules file (exit 2 when invalid)")
    # The file is taken as `feeds check` takes its own: FILE or --rules FILE, default from
    # the settings (what `newswatch alert` would run).
    check.add_argument("file", type=Path, nargs="?", default=None, metavar="FILE",
                       help="rules.yaml (default: NEWSWATCH_RULES_FILE or the demo rules)")
    check.add_argument("--rules", type=Path, default=None, metavar="FILE",
                       help="the same as FILE")
    check.add_argument("--topics", type=Path, default=None,
                       help="topics.yaml whose topic names the rules may use (default: "
                            "NEWSWATCH_TOPICS_FILE, else the shipped topics)")
    check.set_defaults(handler=handle_rules_check)
    test = actions.add_parser(
        "test", help="backtest a rules file on stored history; sends nothing")
    test.add_argument("file", type=Path)
    test.add_argument("--since", type=_duration, default=timedelta(days=7),
                      help="how far back, e.g. 24h or 7d (default 7d)")
    test.add_argument("--samples", type=int, default=3, help="sample articles per rule")
    test.add_argument("--json", action="store_true", help="one JSON object per rule")
    test.set_defaults(handler=handle_rules_test)


# --- newswatch alert -------------------------------------------------------------------


def handle_alert(args: argparse.Namespace, settings: Settings) -> int:
    """The alert daemon in the daemon shell: ready while it evaluates (``--role deliver``:
    while its delivery rounds reach the database), alive while its threads run."""
    shell = Daemon("alert", settings)
    engine = make_engine(settings.sqlalchemy_url())
    shell.close_at_exit(engine.dispose)
    running: list[AlertDaemon] = []
    shell.ready_when(lambda: bool(running) and running[0].healthy)
    shell.alive_when(lambda: not running or running[0].alive())

    def body() -> None:
        if wait_for_schema(engine, shell.stop) is None:
            return
        holder = RulesHolder(args.rules or settings.rules_path(),
                             dialect=engine.dialect.name, state_dir=settings.state_dir,
                             compile_them=args.role != "deliver")
        shell.close_at_exit(holder.close)
        deliverer = Deliverer(engine, holder.channels,
                              lease=timedelta(seconds=settings.alert_delivery_lease_s))
        daemon = AlertDaemon(engine, holder, shell.stop, role=args.role,
                             interval_s=settings.alert_poll_interval_s, deliverer=deliverer,
                             delivery_poll_s=settings.alert_delivery_poll_s)
        shell.on_stop(lambda: daemon.wakeup.set("stop"))  # a sleeping deliverer stops now
        running.append(daemon)
        daemon.run(from_now=args.skip_history)

    return shell.run(body)


# --- newswatch alerts ------------------------------------------------------------------


def recent_alerts(engine: Engine, *, failed: bool = False, rule: str | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
    """Newest alerts first, each with its sends (channel, status, attempts, last error)."""
    alerts_t, sends_t = tables.alerts, tables.alert_sends
    query = select(alerts_t).order_by(alerts_t.c.id.desc()).limit(limit)
    if failed:
        query = query.where(alerts_t.c.status == "failed")
    if rule:
        query = query.where(alerts_t.c.rule == rule)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        ids = [row.id for row in rows]
        sends: dict[int, list[dict[str, Any]]] = {}
        if ids:
            for send in conn.execute(select(sends_t).where(sends_t.c.alert_id.in_(ids))
                                     .order_by(sends_t.c.channel)):
                sends.setdefault(send.alert_id, []).append({
                    "channel": send.channel, "status": send.status,
                    "attempts": send.attempts, "last_error": send.last_error,
                })
    out = []
    for row in rows:
        payload = row.payload or {}
        out.append({
            "id": row.id, "rule": row.rule, "kind": row.kind, "group": row.group_key,
            "status": row.status, "reason": row.reason, "dedup_key": row.dedup_key,
            "created_at": as_utc(row.created_at).isoformat(),
            "finished_at": as_utc(row.finished_at).isoformat() if row.finished_at else None,
            "articles_total": payload.get("articles_total", 0),
            "titles": [a.get("title", "") for a in payload.get("articles", [])][:5],
            "sends": sends.get(row.id, []),
        })
    return out


def handle_alerts(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        check_schema(engine)
        found = recent_alerts(engine, failed=args.failed, rule=args.rule, limit=args.limit)
    finally:
        engine.dispose()
    if args.json:
        for item in found:
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        return 0
    what = "failed alerts" if args.failed else "alerts"
    table = Table(title=f"{len(found)} most recent {what}")
    for column in ("id", "created (UTC)", "rule", "group", "status", "articles", "channels"):
        table.add_column(column)
    for item in found:
        channels = "\n".join(
            f"{s['channel']}: {s['status']} x{s['attempts']}"
            + (f" ({s['last_error']})" if s["status"] != "sent" and s["last_error"] else "")
            for s in item["sends"]
        )
        first = item["titles"][0] if item["titles"] else ""
        table.add_row(str(item["id"]), item["created_at"][:16].replace("T", " "), item["rule"],
                      item["group"], item["status"], f"{item['articles_total']} {first}"[:80],
                      channels)
    Console().print(table)
    return 0


def handle_resend(args: argparse.Namespace, settings: Settings) -> int:
    """``newswatch alerts resend ID|--failed``: queue failed sends again for the daemon."""
    if (args.alert_id is None) == (not args.resend_failed):
        print("newswatch alerts resend: give an alert ID or --failed", file=sys.stderr)
        return 2
    engine = make_engine(settings.sqlalchemy_url())
    who = _who()
    queued: list[tuple[int, int]] = []
    try:
        check_schema(engine)
        ids = ([args.alert_id] if args.alert_id is not None
               else failed_alert_ids(engine, rule=args.resend_rule))
        for alert_id in ids:
            try:
                queued.append((alert_id, resend_alert(engine, alert_id, who=who)))
            except NotFoundError:
                print(f"newswatch alerts resend: no alert {alert_id}", file=sys.stderr)
                return 1
    finally:
        engine.dispose()
    sends = sum(count for _, count in queued)
    for alert_id, count in queued:
        print(f"alert {alert_id}: " + (f"{count} failed send(s) queued again" if count
                                       else "nothing failed; not queued"))
    if args.alert_id is None and not queued:
        print("no failed alerts")
    if sends:
        print(f"{sends} send(s) queued by {who}; the running `newswatch alert` daemon sends "
              f"them (same alert id and dedup key) and `newswatch alerts` shows the outcome")
    return 0 if args.alert_id is None or sends else 1


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


# --- newswatch rules check|test --------------------------------------------------------


def _known_topics(path: Path) -> set[str] | None:
    try:
        raw = yaml_load.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ConfigError):
        return None
    topics = raw.get("topics") if isinstance(raw, dict) else None
    return set(topics) if isinstance(topics, dict) else None


def check_warnings(parsed: RulesFile, topics_file: Path | None) -> list[str]:
    """Things that are valid but probably wrong: unknown topics, unset variables."""
    warnings = missing_environment(parsed)
    known = _known_topics(topics_file) if topics_file is not None else None
    if known is not None:
        for rule in parsed.rules:
            names = rule.match.topics.names() if rule.match.topics is not None else set()
            for topic in sorted(names - known):
                warnings.append(f"rule '{rule.name}': topic '{topic}' is not defined in "
                                f"{topics_file} (the rule would never fire)")
    return warnings


def handle_rules_check(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or args.rules or settings.rules_path()
    parsed = load_rules(path)
    compile_rules(parsed.rules, "sqlite")
    compile_rules(parsed.rules, "postgresql")
    for warning in check_warnings(parsed, args.topics or settings.topics_path()):
        print(f"warning: {warning}")
    enabled = sum(1 for rule in parsed.rules if rule.enabled)
    print(f"{path}: ok: {len(parsed.rules)} rule(s) ({enabled} enabled), "
          f"{len(parsed.channels)} channel(s)")
    return 0


def handle_rules_test(args: argparse.Namespace, settings: Settings) -> int:
    parsed = load_rules(args.file)
    engine = make_engine(settings.sqlalchemy_url())
    until = datetime.now(UTC)
    since = until - args.since
    try:
        check_schema(engine)
        reports = backtest(engine, compile_rules(parsed.rules, engine.dialect.name),
                           since, until, samples=args.samples)
    finally:
        engine.dispose()
    if args.json:
        for report in reports:
            sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
        return 0
    print(f"Backtest of {args.file} on stored articles published from "
          f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC. Nothing was sent.")
    for report in reports:
        print(_report_text(report))
    return 0


def _report_text(report: RuleReport) -> str:
    lines = [f"\nrule {report.rule}: {report.alerts} alert(s) with {report.articles} "
             f"article(s)" + (f"; {report.held_at_end} article(s) still held by the throttle"
                              if report.held_at_end else "")]
    for day, count in sorted(report.per_day.items()):
        lines.append(f"  {day.isoformat()}  {count:>5}  {'#' * min(count, 50)}")
    if report.samples:
        lines.append("  sample articles:")
    for item in report.samples:
        lines.append(f"    {item.published:%Y-%m-%d %H:%M}  [{item.source}] "
                     f"{' '.join(item.title.split())[:100]}")
        if item.url:
            lines.append(f"      {item.url}")
    return "\n".join(lines)
