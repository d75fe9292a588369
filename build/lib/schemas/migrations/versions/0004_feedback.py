"""Analysts' verdicts on topic hits: the feedback table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger stays 64-bit on PostgreSQL.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False,
                  comment="articles.id; no foreign key: a verdict outlives a pruned article, "
                          "because it is training data"),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False,
                  comment="relevant or not_relevant"),
        sa.Column("who", sa.String(length=128), nullable=False,
                  comment="User name, or the OS user for the CLI"),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        comment="Every verdict is kept (an audit trail); the newest per article and topic wins",
    )
    op.create_index("ix_feedback_article_id_topic", "feedback", ["article_id", "topic"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    op.drop_index("ix_feedback_article_id_topic", table_name="feedback")
    op.drop_table("feedback")
