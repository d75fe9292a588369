"""alert_articles indexed by article: the evaluator's seen lookups, and retention.

The alert evaluator asks which rules already hold or alerted the articles of a batch
(`outbox.SqlStore.seen`): by article, one query per 500 articles, instead of one
(rule, article) pair at a time, so the cost follows the hits, not the rule matches. The
primary key (rule, article_id) cannot serve it; this index also serves the cascade of
an article's deletion (retention).

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alert_articles_article_id", "alert_articles", ["article_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_articles_article_id", table_name="alert_articles")
