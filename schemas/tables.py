"""The SQL tables, as SQLAlchemy 2 Core metadata. Alembic migrations are made from these.

Times are stored as timezone-aware UTC. JSON columns hold lists and evidence. Indexes
serve the alert rules' queries: topic hits by topic and time, articles by published time
and feed, article_entities by entity and time.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger stays 64-bit on PostgreSQL.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", String(64), primary_key=True, comment="From feeds.yaml: the feed's key"),
    Column("url", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("next_check_at", DateTime(timezone=True)),
    Column("disabled_reason", Text, comment="Set when the feed answered 410 Gone"),
    Column("items_seen", Integer, nullable=False, server_default="0"),
)

seen_items = Table(
    "seen_items",
    metadata,
    Column("article_id", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("feed_id", String(64), nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    comment="Producer's record of what Kafka acknowledged; written after the ack only.",
)

articles = Table(
    "articles",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("url", Text),
    Column("title", Text, nullable=False, server_default=""),
    Column("summary", Text, nullable=False, server_default=""),
    Column("content", Text, nullable=False, server_default=""),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("published_estimated", Boolean, nullable=False, server_default="0"),
    Column("updated", DateTime(timezone=True)),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("feed_id", String(64), nullable=False),
    Column("feed_name", Text, nullable=False, server_default=""),
    Column("language", String(16)),
    Column("authors", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("topics_version", String(64), nullable=False, server_default=""),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Index("ix_articles_published", "published"),
    Index("ix_articles_feed_published", "feed_id", "published"),
)

entities = Table(
    "entities",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("label", String(16), nullable=False),
    UniqueConstraint("name", "label", name="uq_entities_name_label"),
)

article_entities = Table(
    "article_entities",
    metadata,
    Column("article_id", String(64), ForeignKey("articles.id", ondelete="CASCADE"),
           primary_key=True),
    Column("entity_id", BigId, ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("published", DateTime(timezone=True), nullable=False,
           comment="Copied from the article so entity queries by time need no join"),
    Index("ix_article_entities_entity_published", "entity_id", "published"),
)

topic_hits = Table(
    "topic_hits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True,
           comment="Grows with every insert: the alert evaluator's watermark"),
    Column("article_id", String(64), ForeignKey("articles.id", ondelete="CASCADE"),
           nullable=False),
    Column("topic", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("topics_version", String(64), nullable=False),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("article_id", "topic", name="uq_topic_hits_article_topic"),
    Index("ix_topic_hits_topic_published", "topic", "published"),
)
