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

from schemas.messages import (
    ARTICLE_ID_LENGTH,
    CONTENT_HASH_LENGTH,
    ENTITY_LABEL_LENGTH,
    FEED_ID_LENGTH,
    LANGUAGE_LENGTH,
    TOPIC_LENGTH,
    TOPICS_VERSION_LENGTH,
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
    Column("id", String(FEED_ID_LENGTH), primary_key=True,
           comment="From feeds.yaml: the feed's key"),
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
    Column("last_outcome", String(16),
           comment="The last poll: published, unchanged, not_modified (HTTP 304) or failed"),
    Column("last_changed_at", DateTime(timezone=True),
           comment="Last poll that got a body (not a 304): the seen rows it listed carry "
                   "this time, so older ones have left the feed (prune)"),
    Column("last_warning", Text,
           comment="What the last poll that got a body had to repair (an encoding guessed, "
                   "bytes replaced, a recoverable XML error), '; '-separated; NULL if none"),
    Column("last_warning_at", DateTime(timezone=True)),
    Column("lease_owner", String(200),
           comment="PostgreSQL: the producer process refreshing this feed now "
                   "(producers/lease.py); NULL when none"),
    Column("lease_expires_at", DateTime(timezone=True),
           comment="When lease_owner's claim ends unless renewed (database clock): a killed "
                   "producer's feeds are taken over after it"),
)

producer_leases = Table(
    "producer_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200)),
    Column("expires_at", DateTime(timezone=True)),
    comment="SQLite: the single-writer lease; only its owner polls feeds "
            "(producers/lease.py)",
)

seen_items = Table(
    "seen_items",
    metadata,
    Column("article_id", String(ARTICLE_ID_LENGTH), primary_key=True),
    Column("content_hash", String(CONTENT_HASH_LENGTH), nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("feed_id", String(FEED_ID_LENGTH), nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    comment="Producer's record of what Kafka acknowledged; written after the ack only.",
)

articles = Table(
    "articles",
    metadata,
    Column("id", String(ARTICLE_ID_LENGTH), primary_key=True, comment="schemas.ids.article_id"),
    Column("url", Text),
    Column("guid", Text),
    Column("title", Text, nullable=False, server_default=""),
    Column("summary", Text, nullable=False, server_default=""),
    Column("content", Text, nullable=False, server_default=""),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("published_estimated", Boolean, nullable=False, server_default=false()),
    Column("updated", DateTime(timezone=True)),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("feed_id", String(FEED_ID_LENGTH), nullable=False),
    Column("feed_name", Text, nullable=False, server_default=""),
    Column("language", String(LANGUAGE_LENGTH)),
    Column("authors", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("content_hash", String(CONTENT_HASH_LENGTH), nullable=False, server_default=""),
    # What the stored hits and entities were computed from: with revision and
    # content_hash it tells a replay (no change) from a re-enrichment (replace).
    Column("topics_version", String(TOPICS_VERSION_LENGTH), nullable=False, server_default=""),
    Column("enriched_at", DateTime(timezone=True), nullable=False,
           comment="Orders enrichments: an older one arriving late never replaces a newer"),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    # Written by the stories stage (consumers/stories), or by the store when the stage
    # placed the article first; both copy them from story_articles, which is the record.
    Column("story_id", String(ARTICLE_ID_LENGTH),
           comment="stories.id; NULL until the stories stage placed the article"),
    Column("duplicate_of", String(ARTICLE_ID_LENGTH),
           comment="articles.id of the original when this is a near-duplicate copy"),
    Index("ix_articles_published", "published"),
    Index("ix_articles_feed_published", "feed_id", "published"),
    Index("ix_articles_stored_at", "stored_at"),
    Index("ix_articles_story_id", "story_id"),
)

entities = Table(
    "entities",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("label", String(ENTITY_LABEL_LENGTH), nullable=False),
    UniqueConstraint("name", "label", name="uq_entities_name_label"),
)

# No foreign keys here, on purpose: this is the largest table (~10 rows per article) and
# PostgreSQL checks a foreign key row by row, which cost about a third of the store's
# write time. Its rows are written only by the store, in the transaction that writes
# their article, and deleted by prune before their article; entities are never deleted.
article_entities = Table(
    "article_entities",
    metadata,
    Column("article_id", String(ARTICLE_ID_LENGTH), primary_key=True, comment="articles.id"),
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
    Column("article_id", String(ARTICLE_ID_LENGTH), ForeignKey("articles.id", ondelete="CASCADE"),
           nullable=False),
    Column("topic", String(TOPIC_LENGTH), nullable=False),
    Column("score", Float, nullable=False),
    Column("probability", Float, nullable=True,
           comment="The relevance model's probability; NULL when rules alone decided"),
    Column("evidence", JSON, nullable=False),
    Column("topics_version", String(TOPICS_VERSION_LENGTH), nullable=False),
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
    Column("released_through", BigInteger, nullable=False, server_default="0",
           comment="alert_ledger.id up to which the group's matches went out (or into its "
                   "rule's digest); later ones are held by the throttle"),
    Column("digested_through", BigInteger, nullable=False, server_default="0",
           comment="released_through when the rule's digest last went out: the group's "
                   "matches after it and up to released_through wait for the digest"),
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
    Column("article_ids", JSON,
           comment="Every article the alert carries (the payload shows at most 50)"),
    UniqueConstraint("dedup_key", name="uq_alerts_dedup_key"),
    Index("ix_alerts_created_at", "created_at"),
    Index("ix_alerts_status", "status"),
)

alert_ledger = Table(
    "alert_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True,
           comment="Grows with every insert: groups say up to which id they released"),
    Column("article_id", String(ARTICLE_ID_LENGTH), ForeignKey("articles.id", ondelete="CASCADE"),
           nullable=False),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("matches", JSON, nullable=False,
           comment="{group key: [rule, ...]}: the rules that took the article in this "
                   "evaluation; an article is alerted at most once per rule"),
    Index("ix_alert_ledger_article_id", "article_id"),
    # Ids are compared with alert_groups.released_through: without AUTOINCREMENT SQLite
    # would hand the id of a pruned newest row out again, below a group's mark.
    sqlite_autoincrement=True,
    comment="One row per article and evaluation that matched it to rules (consumers/alert/"
            "ledger.py): what is held, waits for a digest, or went out, and the dedup",
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
    Column("article_id", String(ARTICLE_ID_LENGTH), nullable=False,
           comment="articles.id; no foreign key: a verdict outlives a pruned article, "
                   "because it is training data"),
    Column("topic", String(TOPIC_LENGTH), nullable=False),
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


# --- Stories (consumers/stories): the same event across articles and outlets. -----------

stories = Table(
    "stories",
    metadata,
    Column("id", String(ARTICLE_ID_LENGTH), primary_key=True,
           comment="The id of the story's first article: stable across replays"),
    Column("title", Text, nullable=False, server_default="",
           comment="Leading title: the first article's"),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("articles", Integer, nullable=False, server_default="0"),
    Column("outlets", Integer, nullable=False, server_default="0"),
    Column("closed_at", DateTime(timezone=True),
           comment="Set when the story went quiet and left the clusterer's memory"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_stories_last_seen", "last_seen"),
    Index("ix_stories_closed_at", "closed_at"),
)

story_articles = Table(
    "story_articles",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True,
           comment="Placement order: a restart replays open stories in this order"),
    Column("article_id", String(ARTICLE_ID_LENGTH), nullable=False, comment="articles.id"),
    Column("story_id", String(ARTICLE_ID_LENGTH), nullable=False, comment="stories.id"),
    Column("duplicate_of", String(ARTICLE_ID_LENGTH)),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("outlet", Text, nullable=False, server_default=""),
    # What the clusterer read, so that a restart rebuilds the open stories exactly as
    # they were, without the articles table (which another stage writes).
    Column("title", Text, nullable=False, server_default=""),
    Column("lead", Text, nullable=False, server_default="",
           comment="The first words of the article's text that the clusterer read"),
    Column("entities", JSON, nullable=False),
    Column("language", String(LANGUAGE_LENGTH),
           comment="The feed's language tag, as the article had it"),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("article_id", name="uq_story_articles_article_id"),
    Index("ix_story_articles_story_id", "story_id"),
    sqlite_autoincrement=True,
    comment="The stories stage's decisions: an article placed once keeps its story",
)

story_state = Table(
    "story_state",
    metadata,
    Column("name", String(32), primary_key=True, comment="'clusterer': the one stage"),
    Column("owner", String(128), nullable=False, comment="host:pid of the active instance"),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    comment="A lease: one stories stage places articles at a time; others stand by",
)

# --- The web console (consumers/web): accounts, sessions, triage and its audit trail. ---

users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False, comment="viewer, analyst or admin"),
    Column("password_hash", Text, nullable=False, comment="argon2id; never the password"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), comment="Set: the account cannot sign in"),
    UniqueConstraint("name", name="uq_users_name"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False, server_default=""),
    Column("token_hash", String(64), nullable=False,
           comment="SHA-256 of the token; the token itself is shown once, when created"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True,
           comment="SHA-256 of the session cookie: a database dump signs nobody in"),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False, comment="Every form of the session"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_web_sessions_expires_at", "expires_at"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("group_key", String(255), comment="NULL: every group of the rule"),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False,
           comment="Moved to the expiry time when someone ends the silence early"),
    Column("comment", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_silences_rule_ends_at", "rule", "ends_at"),
    comment="While a silence holds, the alert daemon decides nothing for its rule or group",
)

alert_acks = Table(
    "alert_acks",
    metadata,
    Column("alert_id", BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("acknowledged_by", String(128), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("who", String(128), nullable=False),
    Column("action", String(32), nullable=False,
           comment="e.g. acknowledge, silence, unsilence, feedback, resend, user.add"),
    Column("target", String(255), nullable=False, comment="e.g. alert:12, rule:x|topic=y"),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_log_at", "at"),
    comment="Every change made through the console, the API or the CLI: who and when",
)

# Full-text search over articles (title, summary, content) is built by migration 0007 in
# each database's own way and is not a SQLAlchemy table: on PostgreSQL the generated
# tsvector column `articles.search_document` with its GIN index, on SQLite the FTS5
# virtual table `articles_fts` (plus the shadow tables FTS5 keeps) filled by triggers.
# `newswatch.migrate.schema_differences` leaves exactly these names out of its comparison;
# tests/test_migrations.py checks they exist and that a search finds an article.
SEARCH_COLUMNS = {"postgresql": {("articles", "search_document")}}
SEARCH_INDEXES = {"postgresql": {"ix_articles_search_document"}}
SEARCH_TABLES = {"sqlite": {"articles_fts", "articles_fts_data", "articles_fts_idx",
                            "articles_fts_content", "articles_fts_docsize",
                            "articles_fts_config"}}
