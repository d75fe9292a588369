"""topic_hits.evaluated: the alert evaluator reads unevaluated rows, not an id watermark.

An id watermark with a gap allowance skipped a hit whose transaction committed after the
allowance expired (a store process frozen for 150 s: 380 alerts of 381, issue 16). Hits
are now marked evaluated in the evaluation's transaction; a row committed late is simply
unevaluated until it is read, whatever the gap. Rows at or below the stored watermark
and not among its gaps were evaluated already, and are marked so here.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch (which on SQLite rebuilds the table and would drop
    # its AUTOINCREMENT: replaced hits would get their ids back).
    op.add_column("topic_hits", sa.Column(
        "evaluated", sa.Boolean(), server_default=sa.false(), nullable=False,
        comment="Set by the alert evaluator in the transaction that evaluated the hit"))
    op.create_index("ix_topic_hits_evaluated_id", "topic_hits", ["evaluated", "id"])
    conn = op.get_bind()
    row = conn.execute(sa.text(
        "SELECT watermark, gaps FROM alert_state WHERE name = 'topic_hits'")).first()
    if row is None:
        return
    gaps = row.gaps if isinstance(row.gaps, list) else json.loads(row.gaps or "[]")
    conn.execute(sa.text("UPDATE topic_hits SET evaluated = :yes WHERE id <= :watermark"),
                 {"yes": True, "watermark": int(row.watermark)})
    pending = [int(hit_id) for hit_id, _seen in gaps]
    for start in range(0, len(pending), 500):
        conn.execute(sa.text("UPDATE topic_hits SET evaluated = :no WHERE id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)),
                     {"no": False, "ids": pending[start:start + 500]})


def downgrade() -> None:
    op.drop_index("ix_topic_hits_evaluated_id", table_name="topic_hits")
    with op.batch_alter_table("topic_hits",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("evaluated")
