"""Stories: the stories, story_articles and story_state tables; articles.story_id and
articles.duplicate_of.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column(
            "story_id", sa.String(length=64),
            comment="stories.id; NULL until the stories stage placed the article"))
        batch.add_column(sa.Column(
            "duplicate_of", sa.String(length=64),
            comment="articles.id of the original when this is a near-duplicate copy"))
        batch.create_index("ix_articles_story_id", ["story_id"])
    op.create_table(
        "stories",
        sa.Column("id", sa.String(length=64), nullable=False,
                  comment="The id of the story's first article: stable across replays"),
        sa.Column("title", sa.Text(), server_default="", nullable=False,
                  comment="Leading title: the first article's"),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("articles", sa.Integer(), server_default="0", nullable=False),
        sa.Column("outlets", sa.Integer(), server_default="0", nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True),
                  comment="Set when the story went quiet and left the clusterer's memory"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
    )
    op.create_index("ix_stories_last_seen", "stories", ["last_seen"])
    op.create_index("ix_stories_closed_at", "stories", ["closed_at"])
    op.create_table(
        "story_articles",
        sa.Column("id", BigId, autoincrement=True, nullable=False,
                  comment="Placement order: a restart replays open stories in this order"),
        sa.Column("article_id", sa.String(length=64), nullable=False, comment="articles.id"),
        sa.Column("story_id", sa.String(length=64), nullable=False, comment="stories.id"),
        sa.Column("duplicate_of", sa.String(length=64)),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outlet", sa.Text(), server_default="", nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("lead", sa.Text(), server_default="", nullable=False,
                  comment="The first words of the article's text that the clusterer read"),
        sa.Column("entities", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=16),
                  comment="The feed's language tag, as the article had it"),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_articles")),
        sa.UniqueConstraint("article_id", name="uq_story_articles_article_id"),
        sqlite_autoincrement=True,
        comment="The stories stage's decisions: an article placed once keeps its story",
    )
    op.create_index("ix_story_articles_story_id", "story_articles", ["story_id"])
    op.create_table(
        "story_state",
        sa.Column("name", sa.String(length=32), nullable=False,
                  comment="'clusterer': the one stage"),
        sa.Column("owner", sa.String(length=128), nullable=False,
                  comment="host:pid of the active instance"),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_story_state")),
        comment="A lease: one stories stage places articles at a time; others stand by",
    )


def downgrade() -> None:
    op.drop_table("story_state")
    op.drop_index("ix_story_articles_story_id", table_name="story_articles")
    op.drop_table("story_articles")
    op.drop_index("ix_stories_closed_at", table_name="stories")
    op.drop_index("ix_stories_last_seen", table_name="stories")
    op.drop_table("stories")
    with op.batch_alter_table("articles") as batch:
        batch.drop_index("ix_articles_story_id")
        batch.drop_column("duplicate_of")
        batch.drop_column("story_id")
