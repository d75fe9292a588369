"""Live progress of a pipeline run, read from each child daemon's /metrics endpoint."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families

# What the progress line shows, in pipeline order: label -> metric (summed over labels).
PROGRESS_METRICS = {
    "feeds polled": "newswatch_feed_polls",
    "published": "newswatch_articles_published",
    "enriched": "newswatch_articles_enriched",
    "stored": "newswatch_articles_stored",
    "alerts fired": "newswatch_alerts_fired",
    "delivered": "newswatch_alerts_delivered",
    "dead-lettered": "newswatch_dead_lettered",
    "feed errors": "newswatch_feed_errors",
}


def scrape(ports: Iterable[int], timeout_s: float = 1.0) -> dict[str, float]:
    """Sum the progress counters over every child that answers; silent ones count 0."""
    totals = dict.fromkeys(PROGRESS_METRICS, 0.0)
    wanted = {metric: label for label, metric in PROGRESS_METRICS.items()}
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            label = wanted.get(family.name)
            if label is None:
                continue
            totals[label] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


def render(totals: dict[str, float]) -> str:
    return " | ".join(f"{label} {int(value)}" for label, value in totals.items())
