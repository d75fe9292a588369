"""`newswatch run` on its embedded defaults, as the README's first command runs it: local
Kafka, SQLite, the demo feeds; the seed article fires all three default rules in bounded
time, every daemon answers /healthz and /metrics, and Ctrl+C stops everything cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from newswatch.cli.run import STAGES
from newswatch.kafka_local import LocalKafka
from tests.support.daemons import kill_processes_of, processes_of
from tests.support.ports import free_port, free_port_block

# In the fault suite (moved from tests/ to keep `make test` within its budget): the whole
# pipeline, broker included, runs as processes for a minute or more.
pytestmark = [pytest.mark.integration, pytest.mark.fault]

SEED_TITLE = "After Issuing Warning About the Threat Posed by The Islamic State"
RULES = {"islamic-state-threat", "drug-trafficking", "regime-recognition"}


def _seed_rules(alerts_file: Path) -> set[str]:
    if not alerts_file.exists():
        return set()
    fired = set()
    for line in alerts_file.read_text().splitlines():
        alert = json.loads(line)
        if any(a["title"].startswith(SEED_TITLE) for a in alert.get("articles", [])):
            fired.add(alert["rule"]["name"])
    return fired


def _sign_in_and_see_the_seed_alerts(printed: str, web_port: int) -> None:
    """The demo path: `newswatch run` prints the console's URL and a first account."""
    url = f"http://127.0.0.1:{web_port}"
    assert f"Console: {url}" in printed, printed[-3000:]
    found = re.search(r"Console account: admin, password (\S+) \(shown once", printed)
    assert found is not None, printed[-3000:]
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = client.post("/login", data={"username": "admin", "password": found.group(1),
                                             "csrf_token": token.group(1)})
        assert signed.status_code == 303
        alerts = client.get("/alerts").text
        assert all(f'data-rule="{rule}"' in alerts for rule in RULES), alerts[-2000:]
        assert SEED_TITLE in client.get("/search", params={"q": "Taliban recognition"}).text
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


def _run_the_demo(process: subprocess.Popen[bytes], state: Path, output: Path, base: int,
                  web_port: int) -> int:
    """Wait for the seed alerts, check health, metrics and the console, then Ctrl+C;
    returns the run's exit code."""
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

    for port in range(base, base + len(STAGES)):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    metrics = "".join(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                      for port in range(base, base + len(STAGES)))
    assert "newswatch_articles_published_total" in metrics
    assert "newswatch_articles_stored_total" in metrics
    _sign_in_and_see_the_seed_alerts(output.read_text(), web_port)

    process.send_signal(signal.SIGINT)
    return process.wait(timeout=90)


def test_run_fires_seed_alerts_serves_health_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = free_port_block(len(STAGES))
    web_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "NEWSWATCH_DATABASE_URL"}}
    env.update({
        "NEWSWATCH_STATE_DIR": str(state),
        "NEWSWATCH_KAFKA_PORT": str(free_port()),
        "NEWSWATCH_KAFKA_CONTROLLER_PORT": str(free_port()),
        "NEWSWATCH_KAFKA_HEAP": "384m",
        "NEWSWATCH_WEB_PORT": str(web_port),
    })
    output = tmp_path / "run.out"
    with output.open("wb") as stdout:
        # A session of its own: a failure below kills its whole group, and then every
        # process the run started (its daemons and broker run in sessions of their own).
        process = subprocess.Popen(
            [sys.executable, "-m", "newswatch.cli", "run", "--metrics-base-port", str(base)],
            env=env, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        code = _run_the_demo(process, state, output, base, web_port)
    finally:
        # Whatever failed above, nothing the run started outlives the test.
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        left = processes_of(state)  # after a clean Ctrl+C: none
        survivors = kill_processes_of(state)
        LocalKafka(state / "kafka").stop()
    assert survivors == [], f"processes of the run survived SIGKILL: {survivors}"
    text = output.read_text()
    assert code == 0, text[-3000:]
    assert left == [], f"processes of the run left running after Ctrl+C: {left}"
    assert "Summary:" in text
    for stage in STAGES:
        assert f"{stage}: exit 0" in text, text[-3000:]
    assert LocalKafka(state / "kafka").pid() is None, "the broker run started was left running"
    print(text[text.index("Summary:"):])
