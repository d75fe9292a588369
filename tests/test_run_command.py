"""`newswatch run` on its embedded defaults, as the README's first command runs it: local
Kafka, SQLite, the demo feeds; the seed article fires all three default rules in bounded
time, every daemon answers /healthz and /metrics, and Ctrl+C stops everything cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from newswatch.kafka_local import LocalKafka
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SEED_TITLE = "After Issuing Warning About the Threat Posed by The Islamic State"
RULES = {"islamic-state-threat", "drug-trafficking", "regime-recognition"}


def _free_port_block(size: int) -> int:
    for _ in range(50):
        base = free_port()
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no block of free ports")


def _seed_rules(alerts_file: Path) -> set[str]:
    if not alerts_file.exists():
        return set()
    fired = set()
    for line in alerts_file.read_text().splitlines():
        alert = json.loads(line)
        if any(a["title"].startswith(SEED_TITLE) for a in alert.get("articles", [])):
            fired.add(alert["rule"]["name"])
    return fired


def _other_language_alerts(alerts_file: Path) -> set[str]:
    """The languages of the articles alerted by the demo rule for other languages."""
    if not alerts_file.exists():
        return set()
    found: set[str] = set()
    for line in alerts_file.read_text().splitlines():
        alert = json.loads(line)
        if alert["rule"]["name"] == "other-languages":
            found |= {str(a.get("language")) for a in alert.get("articles", [])}
    return found


def test_run_fires_seed_alerts_serves_health_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = _free_port_block(4)
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "NEWSWATCH_DATABASE_URL"}}
    env.update({
        "NEWSWATCH_STATE_DIR": str(state),
        "NEWSWATCH_KAFKA_PORT": str(free_port()),
        "NEWSWATCH_KAFKA_CONTROLLER_PORT": str(free_port()),
        "NEWSWATCH_KAFKA_HEAP": "384m",
    })
    stdout = (tmp_path / "run.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "newswatch.cli", "run", "--metrics-base-port", str(base)],
        env=env, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    output = tmp_path / "run.out"
    try:
        deadline = time.monotonic() + 240
        while _seed_rules(state / "alerts.jsonl") != RULES and time.monotonic() < deadline:
            assert process.poll() is None, output.read_text()[-3000:]
            time.sleep(1)
        assert _seed_rules(state / "alerts.jsonl") == RULES, output.read_text()[-3000:]
        # The demo feed's Portuguese, Arabic, Polish, French and Spanish items (declared
        # English by the feed, detected from their text) fire the other-languages rule.
        while not _other_language_alerts(state / "alerts.jsonl") and (
                time.monotonic() < deadline + 60):
            time.sleep(1)
        languages = _other_language_alerts(state / "alerts.jsonl")
        assert languages, output.read_text()[-3000:]
        assert "en" not in languages
        assert languages <= {"pt", "ar", "pl", "fr", "es"}

        for port in range(base, base + 4):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        metrics = "".join(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                          for port in range(base, base + 4))
        assert "newswatch_articles_published_total" in metrics
        assert "newswatch_articles_stored_total" in metrics

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
        stdout.close()
        LocalKafka(state / "kafka").stop()
    text = output.read_text()
    assert code == 0, text[-3000:]
    assert "Summary:" in text
    for stage in ("producer", "enrich", "store", "alert"):
        assert f"{stage}: exit 0" in text, text[-3000:]
    assert LocalKafka(state / "kafka").pid() is None, "the broker run started was left running"
    print(text[text.index("Summary:"):])
