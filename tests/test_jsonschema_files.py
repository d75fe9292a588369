"""The committed JSON Schema files match the message types they are generated from."""

from __future__ import annotations

import json

from schemas.jsonschema_gen import SCHEMA_DIR, render_all, stale
from schemas.messages import Article


def test_committed_schema_files_are_current() -> None:
    assert stale() == [], "run: newswatch schemas write"


def test_schema_files_cover_every_published_type_and_state_the_version() -> None:
    names = set(render_all())
    assert {"article.v1.json", "enriched_article.v2.json", "dead_letter.v1.json",
            "alert_payload.v1.json"} <= names
    article = json.loads((SCHEMA_DIR / "article.v1.json").read_text())
    assert article["properties"]["schema_version"]["const"] == 1
    assert set(article["required"]) >= {"id", "url", "published", "fetched_at", "feed_id"}
    assert Article.model_json_schema()["title"] == article["title"]
