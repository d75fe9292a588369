"""Every test that needs a service carries the ``integration`` marker (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import SERVICE_FIXTURES, needs_a_service


def test_service_tests_are_marked_and_unit_tests_are_not(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    unmarked = [item.nodeid for item in items
                if needs_a_service(item) and item.get_closest_marker("integration") is None]
    assert not unmarked, f"tests that need a service but are not marked: {unmarked[:10]}"
    me = next(item for item in items if item.nodeid == request.node.nodeid)
    assert me.get_closest_marker("integration") is None  # this one needs nothing


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_postgresql_half_of_db_url_is_integration(backend: str,
                                                      request: pytest.FixtureRequest) -> None:
    """A db_url test's PostgreSQL half is always marked; its SQLite half whenever it also
    uses a service fixture (a Kafka broker, an HTTP server ...). A SQLite half may carry
    the marker without one: some tests start their own server (a STARTTLS SMTP server)."""
    halves = [item for item in request.session.items
              if getattr(getattr(item, "callspec", None), "params", {}).get("db_url") == backend]
    for item in halves:
        marked = item.get_closest_marker("integration") is not None
        uses_service = bool(set(getattr(item, "fixturenames", ())) & SERVICE_FIXTURES)
        if backend == "postgresql" or uses_service:
            assert marked, item.nodeid
