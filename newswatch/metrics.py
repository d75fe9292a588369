"""Prometheus metrics of every daemon, defined once so names never drift.

Each daemon serves them with `serve_metrics(port)`; labels are bounded sets (stage,
feed id, rule name, channel), never article ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

ARTICLES_FETCHED = Counter("newswatch_articles_fetched_total",
                           "Feed items parsed and normalised", ["feed"])
ARTICLES_PUBLISHED = Counter("newswatch_articles_published_total",
                             "Articles acknowledged by Kafka on news.articles", ["feed"])
FEED_ERRORS = Counter("newswatch_feed_errors_total", "Failed feed polls", ["feed", "kind"])
FEED_POLLS = Counter("newswatch_feed_polls_total", "Feed polls", ["feed", "outcome"])
LEASE_FENCED = Counter(
    "newswatch_producer_lease_fenced_total",
    "Refresh steps a producer skipped because its feed lease may have lapsed (it was frozen "
    "or cut off from the database): the poll, the publish or the record of the outcome",
    ["feed", "step"])
MESSAGES_PROCESSED = Counter("newswatch_messages_processed_total",
                             "Kafka messages a stage processed", ["stage"])
DEAD_LETTERED = Counter("newswatch_dead_lettered_total",
                        "Messages sent to the dead-letter topic", ["stage", "error"])
INPUT_REPAIRED = Counter(
    "newswatch_input_repaired_total",
    "Hostile or broken input repaired or cut instead of refused (a lying encoding, broken "
    "XML, entity declarations, control characters, absurd dates, oversized text)",
    ["stage", "kind"])
ARTICLES_ENRICHED = Counter("newswatch_articles_enriched_total", "Articles enriched")
ANALYSES_REUSED = Counter("newswatch_analyses_reused_total",
                         "Articles whose analysis was reused from an exact duplicate's")
ARTICLES_STORED = Counter("newswatch_articles_stored_total", "Articles written to SQL")
ARTICLES_PLACED = Counter("newswatch_articles_placed_total",
                          "Articles placed in stories, by outcome", ["outcome"])
STORIES_OPEN = Gauge("newswatch_stories_open", "Stories the clusterer holds in memory")
ALERTS_FIRED = Counter("newswatch_alerts_fired_total", "Alerts decided", ["rule"])
ALERTS_DELIVERED = Counter("newswatch_alerts_delivered_total", "Alert deliveries that succeeded",
                           ["channel"])
ALERTS_FAILED = Counter("newswatch_alerts_failed_total", "Alerts that failed for good",
                        ["channel"])
ALERT_DELIVERY_SECONDS = Histogram(
    "newswatch_alert_delivery_seconds",
    "Seconds from an alert's decision to its successful delivery", ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
DELIVERIES_IN_FLIGHT = Gauge("newswatch_deliveries_in_flight",
                             "Alert sends started and not finished")
DELIVERY_WAKEUPS = Counter("newswatch_delivery_wakeups_total",
                           "Times the deliverer was woken for new outbox rows, by source "
                           "(process: the evaluator beside it; notify: PostgreSQL NOTIFY)",
                           ["source"])
ALERTS_SILENCED = Counter("newswatch_alerts_silenced_total",
                          "Groups that matched while silenced: nothing was decided", ["rule"])
WEB_REQUESTS = Counter("newswatch_web_requests_total", "Requests the web console answered",
                       ["route", "status"])
WEB_REQUEST_SECONDS = Histogram("newswatch_web_request_seconds", "Time to answer a request",
                                ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                    1, 2.5, 5))
WEB_LOGIN_FAILURES = Counter("newswatch_web_login_failures_total",
                             "Refused sign-ins", ["reason"])
WEB_CHANGES = Counter("newswatch_web_changes_total",
                      "Changes made in the console or API (audited)", ["action"])
CONSUMER_LAG = Gauge("newswatch_consumer_lag", "Messages behind the log end", ["stage"])
BATCH_SECONDS = Histogram("newswatch_batch_seconds", "Time to process one batch", ["stage"],
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DEPENDENCY_UP = Gauge("newswatch_dependency_up",
                      "1 when the stage's output (database, broker) answers", ["stage"])
RETRIES = Counter("newswatch_retries_total",
                  "Retryable failures waited out (newswatch.retry), by what was retried",
                  ["what"])
STARTUP_WAITS = Counter("newswatch_startup_waits_total",
                        "Failed tries to reach a dependency while a daemon starts",
                        ["stage", "dependency"])


def serve_metrics(port: int | None, addr: str = "127.0.0.1") -> None:
    """Serve /metrics on ``port`` (no-op when None)."""
    if port is not None:
        start_http_server(port, addr=addr)
