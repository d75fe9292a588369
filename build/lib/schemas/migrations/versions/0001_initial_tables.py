"""Initial tables: feeds and seen items (producer), articles, entities, topic hits (store).

Revision ID: 0001
Revises: None
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger stays 64-bit on PostgreSQL.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.String(length=64), nullable=False,
                  comment="From feeds.yaml: the feed's key"),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("error_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", Timestamp, nullable=True),
        sa.Column("last_success_at", Timestamp, nullable=True),
        sa.Column("next_check_at", Timestamp, nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True,
                  comment="Set when the feed answered 410 Gone"),
        sa.Column("items_seen", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
    )
    op.create_table(
        "seen_items",
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("feed_id", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_seen_items")),
        comment="Producer's record of what Kafka acknowledged; written after the ack only.",
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.String(length=64), nullable=False,
                  comment="schemas.ids.article_id"),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("guid", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.Column("published", Timestamp, nullable=False),
        sa.Column("published_estimated", sa.Boolean(), server_default=sa.false(),
                  nullable=False),
        sa.Column("updated", Timestamp, nullable=True),
        sa.Column("fetched_at", Timestamp, nullable=False),
        sa.Column("feed_id", sa.String(length=64), nullable=False),
        sa.Column("feed_name", sa.Text(), server_default="", nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("content_hash", sa.String(length=64), server_default="", nullable=False),
        sa.Column("topics_version", sa.String(length=64), server_default="", nullable=False),
        sa.Column("enriched_at", Timestamp, nullable=False,
                  comment="Orders enrichments: an older one arriving late never replaces a newer"),
        sa.Column("stored_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_articles")),
    )
    _compress_article_text_with_lz4()
    op.create_index("ix_articles_published", "articles", ["published"])
    op.create_index("ix_articles_feed_published", "articles", ["feed_id", "published"])
    op.create_table(
        "entities",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("name", "label", name="uq_entities_name_label"),
    )
    # No foreign keys on the largest table: see schemas/tables.py for why.
    op.create_table(
        "article_entities",
        sa.Column("article_id", sa.String(length=64), nullable=False, comment="articles.id"),
        sa.Column("entity_id", BigId, nullable=False, comment="entities.id"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("published", Timestamp, nullable=False,
                  comment="Copied from the article so entity queries by time need no join"),
        sa.PrimaryKeyConstraint("article_id", "entity_id", name=op.f("pk_article_entities")),
    )
    op.create_index("ix_article_entities_entity_published", "article_entities",
                    ["entity_id", "published"])
    op.create_table(
        "topic_hits",
        sa.Column("id", BigId, autoincrement=True, nullable=False,
                  comment="Grows with every insert: the alert evaluator's watermark"),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("topics_version", sa.String(length=64), nullable=False),
        sa.Column("published", Timestamp, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE",
                                name=op.f("fk_topic_hits_article_id_articles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_hits")),
        sa.UniqueConstraint("article_id", "topic", name="uq_topic_hits_article_topic"),
        # Ids never reused on SQLite: the alert evaluator's watermark relies on it.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_topic_hits_topic_published", "topic_hits", ["topic", "published"])


def _compress_article_text_with_lz4() -> None:
    # PostgreSQL compresses long text with pglz by default, which cost the store ~40 us of
    # server CPU per article (measured on 3 KB bodies); lz4 (PostgreSQL 14+, when built
    # with it, as Debian's and the Docker images are) costs a fraction of that.
    if op.get_context().as_sql or op.get_bind().dialect.name != "postgresql":
        return
    lz4 = op.get_bind().execute(sa.text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )).scalar()
    if lz4:
        for name in ("summary", "content"):
            op.execute(f"ALTER TABLE articles ALTER COLUMN {name} SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_table("topic_hits")
    op.drop_table("article_entities")
    op.drop_table("entities")
    op.drop_table("articles")
    op.drop_table("seen_items")
    op.drop_table("feeds")
