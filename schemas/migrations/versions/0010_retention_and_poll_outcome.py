"""Retention and what a feed last answered: articles by stored time, feeds' last poll.

``ix_articles_stored_at`` serves ``newswatch db prune`` (by stored time) and the spike
rules' "how long has the store been watching"; ``feeds.last_outcome`` and
``feeds.last_changed_at`` let ``newswatch feeds list`` show a 304 and let prune tell a
seen item that left its feed from one a feed answering 304 still lists.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_articles_stored_at", "articles", ["stored_at"])
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column(
            "last_outcome", sa.String(length=16),
            comment="The last poll: published, unchanged, not_modified (HTTP 304) or failed"))
        batch.add_column(sa.Column(
            "last_changed_at", sa.DateTime(timezone=True),
            comment="Last poll that got a body (not a 304): the seen rows it listed carry "
                    "this time, so older ones have left the feed (prune)"))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("last_changed_at")
        batch.drop_column("last_outcome")
    op.drop_index("ix_articles_stored_at", table_name="articles")
