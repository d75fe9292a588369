"""Fixtures of the end-to-end and fault tests: a private PostgreSQL schema, a feed server,
a webhook receiver and an SMTP server, all on 127.0.0.1, and a unique topic prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import postgres_schema


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own on the shared test
    server (NEWSWATCH_TEST_POSTGRES_URL); dropped afterwards."""
    with postgres_schema("e2e") as url:
        yield url


@pytest.fixture
def prefix() -> str:
    """A Kafka topic prefix no other test uses."""
    return f"e2e{uuid.uuid4().hex[:10]}."
