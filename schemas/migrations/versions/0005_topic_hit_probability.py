"""topic_hits.probability: the relevance layer's calibrated probability beside the score.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("topic_hits", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "probability", sa.Float(), nullable=True,
            comment="The relevance model's probability; NULL when rules alone decided"))


def downgrade() -> None:
    with op.batch_alter_table("topic_hits", schema=None) as batch_op:
        batch_op.drop_column("probability")
