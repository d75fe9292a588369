"""alert_ledger: one row per article and evaluation instead of one per (rule, article).

The evaluator wrote an ``alert_articles`` row for every (rule, article) match it held,
and updated each when it went out: with 1,000 broad rules, 333,000 rows per 1,000 hits,
half of an evaluation (issue 17). The ledger holds one row per article and evaluation
with the rules that took it (``{group key: [rule, ...]}``); a group says up to which
ledger id its matches went out (``alert_groups.released_through``) and, for a rule with a
digest, up to which id the digest sent them (``digested_through``); an alert lists its
articles itself (``alerts.article_ids``). See consumers/alert/ledger.py.

Existing rows are carried over: alerted ones first (a group's marks end up past them),
then those waiting for a digest, then the held ones (past the marks, so still held).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def _ledger_table() -> sa.TableClause:
    return sa.table("alert_ledger", sa.column("article_id"), sa.column("published"),
                    sa.column("decided_at"), sa.column("matches", sa.JSON()))


def upgrade() -> None:
    op.create_table(
        "alert_ledger",
        sa.Column("id", BigId, autoincrement=True, nullable=False,
                  comment="Grows with every insert: groups say up to which id they released"),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("published", Timestamp, nullable=False),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False,
                  comment="{group key: [rule, ...]}: the rules that took the article in "
                          "this evaluation; an article is alerted at most once per rule"),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_ledger_article_id_articles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_ledger")),
        comment="One row per article and evaluation that matched it to rules (consumers/"
                "alert/ledger.py): what is held, waits for a digest, or went out, and the "
                "dedup",
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alert_ledger_article_id", "alert_ledger", ["article_id"])
    op.add_column("alert_groups", sa.Column(
        "released_through", sa.BigInteger(), server_default="0", nullable=False,
        comment="alert_ledger.id up to which the group's matches went out (or into its "
                "rule's digest); later ones are held by the throttle"))
    op.add_column("alert_groups", sa.Column(
        "digested_through", sa.BigInteger(), server_default="0", nullable=False,
        comment="released_through when the rule's digest last went out: the group's "
                "matches after it and up to released_through wait for the digest"))
    op.add_column("alerts", sa.Column(
        "article_ids", sa.JSON(), nullable=True,
        comment="Every article the alert carries (the payload shows at most 50)"))
    _carry_over(op.get_bind())
    op.drop_index("ix_alert_articles_article_id", table_name="alert_articles")
    op.drop_index("ix_alert_articles_alert_id", table_name="alert_articles")
    op.drop_index("ix_alert_articles_rule_group_state", table_name="alert_articles")
    op.drop_table("alert_articles")


def _carry_over(conn: sa.Connection) -> None:
    rows = conn.execute(sa.text(
        "SELECT rule, article_id, group_key, state, alert_id, published, decided_at "
        "FROM alert_articles ORDER BY decided_at, article_id")).all()
    by_alert: dict[int, list[str]] = {}
    for row in rows:
        if row.state == "alerted" and row.alert_id is not None:
            by_alert.setdefault(int(row.alert_id), []).append(row.article_id)
    alerts = sa.table("alerts", sa.column("id"), sa.column("article_ids", sa.JSON()))
    for alert_id, ids in by_alert.items():
        conn.execute(alerts.update().where(alerts.c.id == alert_id).values(article_ids=ids))
    groups = sa.table("alert_groups", sa.column("released_through"),
                      sa.column("digested_through"))
    for state, mark in (("alerted", groups.c.digested_through),
                        ("digest", groups.c.released_through), ("held", None)):
        _insert_ledger(conn, [row for row in rows if row.state == state])
        if mark is not None:
            top = conn.execute(sa.text("SELECT max(id) FROM alert_ledger")).scalar() or 0
            conn.execute(groups.update().values({mark: int(top)}))


def _insert_ledger(conn: sa.Connection, rows: Sequence[Any]) -> None:
    by_article: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_article.setdefault(row.article_id, {
            "article_id": row.article_id, "published": _utc(row.published),
            "decided_at": _utc(row.decided_at), "matches": {}})
        entry["matches"].setdefault(row.group_key, []).append(row.rule)
    if by_article:
        conn.execute(_ledger_table().insert(), list(by_article.values()))


def _utc(value: Any) -> datetime:
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def downgrade() -> None:
    op.create_table(
        "alert_articles",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False,
                  comment="An article is alerted at most once per rule"),
        sa.Column("group_key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False,
                  comment="held (by throttle), digest (waiting for it) or alerted"),
        sa.Column("alert_id", BigId, nullable=True),
        sa.Column("published", Timestamp, nullable=False),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_articles_alert_id_alerts")),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_articles_article_id_articles")),
        sa.PrimaryKeyConstraint("rule", "article_id", name=op.f("pk_alert_articles")),
    )
    op.create_index("ix_alert_articles_rule_group_state", "alert_articles",
                    ["rule", "group_key", "state"])
    op.create_index("ix_alert_articles_alert_id", "alert_articles", ["alert_id"])
    op.create_index("ix_alert_articles_article_id", "alert_articles", ["article_id"])
    _carry_back(op.get_bind())
    op.drop_column("alerts", "article_ids")
    with op.batch_alter_table("alert_groups") as batch:
        batch.drop_column("digested_through")
        batch.drop_column("released_through")
    op.drop_index("ix_alert_ledger_article_id", table_name="alert_ledger")
    op.drop_table("alert_ledger")


def _carry_back(conn: sa.Connection) -> None:
    """Each ledger entry as an alert_articles row: alerted (with the alert that lists it,
    by rule), waiting for a digest, or held, by the group's marks."""
    marks = {(row.rule, row.group_key): (int(row.released_through), int(row.digested_through))
             for row in conn.execute(sa.text(
                 "SELECT rule, group_key, released_through, digested_through "
                 "FROM alert_groups"))}
    digests = {rule for rule, key in marks if key == "*"}
    carried: dict[tuple[str, str], int] = {}
    for row in conn.execute(sa.text("SELECT id, rule, article_ids FROM alerts")):
        ids = row.article_ids if not isinstance(row.article_ids, str) else json.loads(
            row.article_ids)
        for article in ids or []:
            carried[(row.rule, article)] = int(row.id)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in conn.execute(sa.text(
            "SELECT id, article_id, published, decided_at, matches FROM alert_ledger")):
        matches = row.matches if not isinstance(row.matches, str) else json.loads(row.matches)
        for key, rules in matches.items():
            for rule in rules:
                released, digested = marks.get((rule, key), (0, 0))
                state = ("held" if int(row.id) > released else
                         "digest" if rule in digests and int(row.id) > digested else "alerted")
                out[(rule, row.article_id)] = {
                    "rule": rule, "article_id": row.article_id, "group_key": key,
                    "state": state, "published": _utc(row.published),
                    "decided_at": _utc(row.decided_at),
                    "alert_id": carried.get((rule, row.article_id)) if state == "alerted"
                    else None}
    table = sa.table("alert_articles", *(sa.column(name) for name in (
        "rule", "article_id", "group_key", "state", "alert_id", "published", "decided_at")))
    if out:
        conn.execute(table.insert(), list(out.values()))
