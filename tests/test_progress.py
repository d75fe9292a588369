"""`newswatch run`'s status line and summary, scraped from real /metrics endpoints."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from newswatch.progress import failed_summary, render, scrape
from tests.support.ports import free_port


@pytest.fixture
def alert_metrics() -> Iterator[tuple[int, Counter, Counter]]:
    """A child's /metrics on 127.0.0.1, with the alert daemon's two delivery counters."""
    registry = CollectorRegistry()
    delivered = Counter("newswatch_alerts_delivered_total", "sent", ["channel"],
                        registry=registry)
    failed = Counter("newswatch_alerts_failed_total", "failed for good", ["channel"],
                     registry=registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], delivered, failed
    server.shutdown()
    server.server_close()


def test_failed_deliveries_show_in_the_status_line_with_where_to_look(
        alert_metrics: tuple[int, Counter, Counter]) -> None:
    port, delivered, failed = alert_metrics
    delivered.labels("hook").inc(3)
    totals = scrape([port, free_port()])  # a silent child counts 0
    assert totals["delivered"] == 3
    assert totals["failed deliveries"] == 0
    assert "failed deliveries 0" in render(totals)
    assert "alerts --failed" not in render(totals)

    failed.labels("hook").inc()
    failed.labels("mail").inc()
    line = render(scrape([port]))
    assert "delivered 3 | failed deliveries 2" in line
    assert "see `newswatch alerts --failed`" in line
    assert "`newswatch alerts resend --failed`" in line


def test_the_summary_names_alerts_failed_for_good() -> None:
    assert failed_summary(0) is None
    assert failed_summary(4) == (
        "4 alert(s) failed for good: see `newswatch alerts --failed`; "
        "`newswatch alerts resend --failed` sends them again")
