"""feeds.publishing_since: the producer's mark of a batch sent but not yet recorded as seen.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "publishing_since", sa.DateTime(timezone=True), nullable=True,
            comment="Set before the producer sends a batch, cleared with the seen rows after "
                    "the ack: when set, a batch may be in Kafka but not in seen_items"))


def downgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("publishing_since")
