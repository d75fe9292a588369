"""The web console: users, API tokens, sessions, silences, acknowledgements, the audit
log, and full-text search over articles.

Full-text search is each database's own: PostgreSQL gets a generated ``tsvector`` column
on articles with a GIN index (adding it rewrites the articles table once); SQLite gets an
FTS5 table kept in step with articles by triggers, filled here from the rows already
stored. Neither is a SQLAlchemy table (see ``schemas.tables.SEARCH_*``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger stays 64-bit on PostgreSQL.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# English stemming ('recognised' finds 'recognition'), the same on both databases.
PG_SEARCH_COLUMN = (
    "ALTER TABLE articles ADD COLUMN search_document tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, "
    "coalesce(summary, '') || ' ' || coalesce(content, '')), 'B')) STORED"
)
PG_SEARCH_INDEX = (
    "CREATE INDEX ix_articles_search_document ON articles USING gin (search_document)"
)
# A plain FTS5 table (it keeps its own copy of the text): an external-content table would
# need a stable integer key on articles, and VACUUM renumbers the rowids of a table
# without one. The rowid follows the article's rowid, so triggers find the row at once.
SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE articles_fts USING fts5(article_id UNINDEXED, title, body, "
    "tokenize = 'porter unicode61 remove_diacritics 2')",
    "INSERT INTO articles_fts (rowid, article_id, title, body) "
    "SELECT rowid, id, title, summary || char(10) || content FROM articles",
    "CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN "
    "INSERT OR REPLACE INTO articles_fts (rowid, article_id, title, body) "
    "VALUES (new.rowid, new.id, new.title, new.summary || char(10) || new.content); END",
    "CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, summary, content ON articles "
    "BEGIN UPDATE articles_fts SET title = new.title, "
    "body = new.summary || char(10) || new.content WHERE rowid = old.rowid; END",
    "CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN "
    "DELETE FROM articles_fts WHERE rowid = old.rowid; END",
]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False,
                  comment="viewer, analyst or admin"),
        sa.Column("password_hash", sa.Text(), nullable=False,
                  comment="argon2id; never the password"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True),
                  comment="Set: the account cannot sign in"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=128), server_default="", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False,
                  comment="SHA-256 of the token; the token itself is shown once, when "
                          "created"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_api_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False,
                  comment="SHA-256 of the session cookie: a database dump signs nobody in"),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False,
                  comment="Every form of the session"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_web_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "silences",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=255), comment="NULL: every group of the rule"),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False,
                  comment="Moved to the expiry time when someone ends the silence early"),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
        comment="While a silence holds, the alert daemon decides nothing for its rule or "
                "group",
    )
    op.create_index("ix_silences_rule_ends_at", "silences", ["rule", "ends_at"])
    op.create_table(
        "alert_acks",
        sa.Column("alert_id", BigId, nullable=False),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_acks_alert_id_alerts")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alert_acks")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False,
                  comment="e.g. acknowledge, silence, unsilence, feedback, resend, user.add"),
        sa.Column("target", sa.String(length=255), nullable=False,
                  comment="e.g. alert:12, rule:x|topic=y"),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        comment="Every change made through the console, the API or the CLI: who and when",
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_SEARCH_COLUMN)
        op.execute(PG_SEARCH_INDEX)
    else:
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_articles_search_document")
        op.execute("ALTER TABLE articles DROP COLUMN search_document")
    else:
        for trigger in ("articles_fts_insert", "articles_fts_update", "articles_fts_delete"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE articles_fts")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("alert_acks")
    op.drop_index("ix_silences_rule_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("api_tokens")
    op.drop_table("users")
