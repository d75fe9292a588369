"""Alert tables: evaluator state, groups, alerts, their articles, the outbox, deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger stays 64-bit on PostgreSQL.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("name", sa.String(length=64), nullable=False,
                  comment="'topic_hits': the one evaluator"),
        sa.Column("watermark", sa.BigInteger(), nullable=False,
                  comment="Highest topic_hits.id evaluated"),
        sa.Column("gaps", sa.JSON(), nullable=False,
                  comment="[[id, first seen ISO time], ...]: ids below the watermark not yet "
                          "seen, which a transaction still open may commit; re-read until "
                          "they expire"),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_state")),
    )
    op.create_table(
        "alert_groups",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=255), nullable=False,
                  comment="'*' is the rule's digest; otherwise e.g. 'topic=is_threat'"),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False,
                  comment="Alerts decided for the group; part of each alert's dedup key"),
        sa.Column("last_alert_at", Timestamp, nullable=True),
        sa.Column("release_at", Timestamp, nullable=True,
                  comment="When the articles held by the throttle (or digest) go out"),
        sa.Column("last_true_at", Timestamp, nullable=True,
                  comment="Last time the spike condition held: a spike fires once per "
                          "episode"),
        sa.Column("last_reason", sa.Text(), server_default="", nullable=False,
                  comment="Why the group last triggered; repeated in alerts the throttle "
                          "held"),
        sa.PrimaryKeyConstraint("rule", "group_key", name=op.f("pk_alert_groups")),
    )
    op.create_index("ix_alert_groups_release_at", "alert_groups", ["release_at"])
    op.create_table(
        "alerts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False,
                  comment="rule:hash of group and articles; written with the decision"),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="alert or digest"),
        sa.Column("status", sa.String(length=16), nullable=False,
                  comment="pending, sent or failed"),
        sa.Column("reason", sa.Text(), nullable=False, comment="Why it fired, in words"),
        sa.Column("payload", sa.JSON(), nullable=False,
                  comment="schemas.alert_payload.AlertPayload without alert_id: what is sent"),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedup_key", name="uq_alerts_dedup_key"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
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
    op.create_table(
        "alert_sends",
        sa.Column("alert_id", BigId, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False,
                  comment="pending, sent or failed"),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True,
                  comment="Due time; pushed ahead while an attempt is in flight (a lease)"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_sends_alert_id_alerts")),
        sa.PrimaryKeyConstraint("alert_id", "channel", name=op.f("pk_alert_sends")),
        comment="The outbox: one row per alert and channel, written with the alert",
    )
    op.create_index("ix_alert_sends_status_next_attempt_at", "alert_sends",
                    ["status", "next_attempt_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("alert_id", BigId, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", Timestamp, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False,
                  comment="sent, retry or failed"),
        sa.Column("status", sa.String(length=64), nullable=False,
                  comment="e.g. 'http 500', 'smtp 250'"),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE",
                                name=op.f("fk_deliveries_alert_id_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        comment="Every delivery attempt, successful or not",
    )
    op.create_index("ix_deliveries_alert_id", "deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("alert_sends")
    op.drop_table("alert_articles")
    op.drop_table("alerts")
    op.drop_table("alert_groups")
    op.drop_table("alert_state")
