"""The SQL tables, as SQLAlchemy 2 Core metadata. Alembic migrations are made from these.

Times are stored as UTC (timezone-aware on PostgreSQL; SQLite keeps the UTC wall time and
gives naive datetimes back, so readers treat a naive value as UTC). JSON columns hold
lists and evidence. Indexes serve the alert rules' queries: topic hits by topic and time,
articles by published time and feed, article_entities by entity and time.

A change here needs a new Alembic revision under ``schemas/migrations/versions`` (``newswatch
db revision -m "what changed"`` writes one); a test fails while the two disagree.
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
    false,
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
    Column("publishing_since", DateTime(timezone=True),
           comment="Set before the producer sends a batch, cleared with the seen rows "
                   "after the ack: when set, a batch may be in Kafka but not in seen_items"),
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
    Column("id", String(64), primary_key=True, comment="schemas.ids.article_id"),
    Column("url", Text),
    Column("guid", Text),
    Column("title", Text, nullable=False, server_default=""),
    Column("summary", Text, nullable=False, server_default=""),
    Column("content", Text, nullable=False, server_default=""),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("published_estimated", Boolean, nullable=False, server_default=false()),
    Column("updated", DateTime(timezone=True)),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("feed_id", String(64), nullable=False),
    Column("feed_name", Text, nullable=False, server_default=""),
    Column("language", String(16)),
    Column("authors", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("content_hash", String(64), nullable=False, server_default=""),
    # What the stored hits and entities were computed from: with revision and
    # content_hash it tells a replay (no change) from a re-enrichment (replace).
    Column("topics_version", String(64), nullable=False, server_default=""),
    Column("enriched_at", DateTime(timezone=True), nullable=False,
           comment="Orders enrichments: an older one arriving late never replaces a newer"),
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

# No foreign keys here, on purpose: this is the largest table (~10 rows per article) and
# PostgreSQL checks a foreign key row by row, which cost about a third of the store's
# write time. Its rows are written only by the store, in the transaction that writes
# their article, and deleted by prune before their article; entities are never deleted.
article_entities = Table(
    "article_entities",
    metadata,
    Column("article_id", String(64), primary_key=True, comment="articles.id"),
    Column("entity_id", BigId, primary_key=True, comment="entities.id"),
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
    Column("evaluated", Boolean, nullable=False, server_default=false(),
           comment="Set by the alert evaluator in the transaction that evaluated the hit"),
    UniqueConstraint("article_id", "topic", name="uq_topic_hits_article_topic"),
    Index("ix_topic_hits_topic_published", "topic", "published"),
    # The evaluator reads unevaluated hits in id order (issue 16: no watermark to skip).
    Index("ix_topic_hits_evaluated_id", "evaluated", "id"),
    # Without AUTOINCREMENT SQLite hands out max(id) + 1, so hits that replace the newest
    # ones (a re-enrichment) would get their ids back, below the alert watermark.
    sqlite_autoincrement=True,
)

# --- Alerts (consumers/alert): evaluator state, the outbox, and the delivery log. -------

alert_state = Table(
    "alert_state",
    metadata,
    Column("name", String(64), primary_key=True, comment="'topic_hits': the one evaluator"),
    Column("watermark", BigInteger, nullable=False, comment="Highest topic_hits.id evaluated"),
    Column("gaps", JSON, nullable=False,
           comment="[[id, first seen ISO time], ...]: ids below the watermark not yet seen, "
                   "which a transaction still open may commit; re-read until they expire"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("group_key", String(255), primary_key=True,
           comment="'*' is the rule's digest; otherwise e.g. 'topic=is_threat'"),
    Column("labels", JSON, nullable=False),
    Column("sequence", Integer, nullable=False, server_default="0",
           comment="Alerts decided for the group; part of each alert's dedup key"),
    Column("last_alert_at", DateTime(timezone=True)),
    Column("release_at", DateTime(timezone=True),
           comment="When the articles held by the throttle (or digest) go out"),
    Column("last_true_at", DateTime(timezone=True),
           comment="Last time the spike condition held: a spike fires once per episode"),
    Column("last_reason", Text, nullable=False, server_default="",
           comment="Why the group last triggered; repeated in alerts the throttle held"),
    Index("ix_alert_groups_release_at", "release_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(255), nullable=False,
           comment="rule:hash of group and articles; written with the decision"),
    Column("rule", String(64), nullable=False),
    Column("group_key", String(255), nullable=False),
    Column("kind", String(16), nullable=False, comment="alert or digest"),
    Column("status", String(16), nullable=False, comment="pending, sent or failed"),
    Column("reason", Text, nullable=False, comment="Why it fired, in words"),
    Column("payload", JSON, nullable=False,
           comment="schemas.alert_payload.AlertPayload without alert_id: what is sent"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    UniqueConstraint("dedup_key", name="uq_alerts_dedup_key"),
    Index("ix_alerts_created_at", "created_at"),
    Index("ix_alerts_status", "status"),
)

alert_articles = Table(
    "alert_articles",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("article_id", String(64), ForeignKey("articles.id", ondelete="CASCADE"),
           primary_key=True, comment="An article is alerted at most once per rule"),
    Column("group_key", String(255), nullable=False),
    Column("state", String(16), nullable=False,
           comment="held (by throttle), digest (waiting for it) or alerted"),
    Column("alert_id", BigId, ForeignKey("alerts.id", ondelete="CASCADE")),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_articles_rule_group_state", "rule", "group_key", "state"),
    Index("ix_alert_articles_alert_id", "alert_id"),
)

alert_sends = Table(
    "alert_sends",
    metadata,
    Column("alert_id", BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("status", String(16), nullable=False, comment="pending, sent or failed"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True),
           comment="Due time; pushed ahead while an attempt is in flight (a lease)"),
    Column("last_error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_sends_status_next_attempt_at", "status", "next_attempt_at"),
    comment="The outbox: one row per alert and channel, written with the alert",
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_id", BigId, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False, comment="sent, retry or failed"),
    Column("status", String(64), nullable=False, comment="e.g. 'http 500', 'smtp 250'"),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text),
    Index("ix_deliveries_alert_id", "alert_id"),
    comment="Every delivery attempt, successful or not",
)

# --- Analysts' verdicts (topic quality and the web console). ----------------------------

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("article_id", String(64), nullable=False,
           comment="articles.id; no foreign key: a verdict outlives a pruned article, "
                   "because it is training data"),
    Column("topic", String(64), nullable=False),
    Column("verdict", String(16), nullable=False, comment="relevant or not_relevant"),
    Column("who", String(128), nullable=False, comment="User name, or the OS user for the CLI"),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The article's text as it was judged, so that an export still trains after a prune.
    Column("title", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),
    Index("ix_feedback_article_id_topic", "article_id", "topic"),
    Index("ix_feedback_created_at", "created_at"),
    comment="Every verdict is kept (an audit trail); the newest per article and topic wins",
)
