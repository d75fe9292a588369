"""feeds.last_warning: what the last poll had to repair, kept apart from failures.

Before this, a recoverable problem (an encoding the producer had to guess, bytes
replaced, a recoverable XML error) was written into ``last_error`` of a feed that
polled fine, so the console could tell a warning from an error only by its words.

Revision ID: 0017
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column(
            "last_warning", sa.Text(),
            comment="What the last poll that got a body had to repair (an encoding guessed, "
                    "bytes replaced, a recoverable XML error), '; '-separated; NULL if none"))
        batch.add_column(sa.Column("last_warning_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("last_warning_at")
        batch.drop_column("last_warning")
