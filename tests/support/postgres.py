"""A PostgreSQL schema of its own on the shared server, for one test or benchmark run."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from newswatch.db import make_engine

POSTGRES_ENV = "NEWSWATCH_TEST_POSTGRES_URL"  # set by eval "$(scripts/postgres.sh start)"


@contextlib.contextmanager
def fresh_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A URL of the server at ``base_url`` whose search_path is a new, empty schema
    (``<prefix>_<random>``); the schema and all in it are dropped on the way out."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
