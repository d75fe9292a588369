"""``newswatch web`` as a process, in the daemon shell: /readyz on the metrics port while
the database answers, and SIGTERM while requests are being served finishes them and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from newswatch.db import make_engine
from newswatch.migrate import upgrade
from tests.support.ports import free_port
from tests.support.waits import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_sigterm_while_serving_finishes_the_requests_and_exits_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    web_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "NEWSWATCH_DATABASE_URL": url, "NEWSWATCH_STATE_DIR": str(tmp_path),
           "NEWSWATCH_WEB_PORT": str(web_port), "NEWSWATCH_METRICS_PORT": str(metrics_port),
           "NEWSWATCH_LOG_FORMAT": "json"}
    log = tmp_path / "web.log"
    with log.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "newswatch.cli", "web"], cwd=ROOT,
                                   env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err)
    answers: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10) as client:
            while not stop.is_set():
                try:
                    answers.append(client.get("/login").status_code)
                except httpx.HTTPError:
                    answers.append(0)  # refused: the server has stopped accepting

    try:
        wait_for(lambda: process.poll() is not None
                 or _status(f"http://127.0.0.1:{metrics_port}/readyz") == 200, 60,
                 "the console to be ready")
        assert process.poll() is None, log.read_text()[-3000:]
        assert _status(f"http://127.0.0.1:{web_port}/healthz") == 200
        worker = threading.Thread(target=hammer)
        worker.start()
        wait_for(lambda: len(answers) >= 20, 30, "requests being served")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        stop.set()
        worker.join(timeout=30)
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text()
    assert "stop requested" in text
    assert "web stopped" in text
    # Every request the console took before it stopped was answered in full.
    served = [code for code in answers if code != 0]
    assert len(served) >= 20
    assert set(served) == {200}
