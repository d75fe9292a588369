"""Feed leases, so several producer processes can share one database.

``feeds.lease_owner`` and ``feeds.lease_expires_at`` hold which producer refreshes a feed
now (PostgreSQL: claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``); ``producer_leases``
holds SQLite's single-writer lease (one producer polls, the others stand by). See
``producers/lease.py``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column(
            "lease_owner", sa.String(length=200),
            comment="PostgreSQL: the producer process refreshing this feed now "
                    "(producers/lease.py); NULL when none"))
        batch.add_column(sa.Column(
            "lease_expires_at", sa.DateTime(timezone=True),
            comment="When lease_owner's claim ends unless renewed (database clock): a killed "
                    "producer's feeds are taken over after it"))
    op.create_table(
        "producer_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_producer_leases")),
        comment="SQLite: the single-writer lease; only its owner polls feeds "
                "(producers/lease.py)",
    )


def downgrade() -> None:
    op.drop_table("producer_leases")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
