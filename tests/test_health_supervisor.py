"""The operations endpoint and the child supervisor, with real sockets and processes."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from newswatch import metrics as _metrics  # noqa: F401 - registers the counters
from newswatch.health import HealthServer
from newswatch.supervisor import ChildSpec, Supervisor
from tests.support.ports import free_port
from tests.support.waits import wait_for


def test_health_endpoints_answer_and_readiness_follows_the_check() -> None:
    ready = {"value": False}
    server = HealthServer(free_port(), lambda: ready["value"]).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503
        ready["value"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert "newswatch_articles_enriched_total" in metrics.text
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.stop()
        server.stop()  # idempotent


def test_a_crashed_child_is_restarted_and_stop_all_ends_the_rest(tmp_path: Path) -> None:
    crash = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
    crasher = ChildSpec("crasher", [sys.executable, "-c", crash], log_path=tmp_path / "crasher.log")
    sleeper = ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor([crasher, sleeper])
    supervisor.start_all()
    reports: list[str] = []

    def restarted_twice() -> bool:
        reports.extend(supervisor.check())
        return supervisor.children[0].restarts >= 2

    wait_for(restarted_twice, 10, "two restarts of the crashing child", interval_s=0.1)
    codes = supervisor.stop_all(timeout_s=5)

    assert supervisor.children[0].restarts >= 2
    assert "crasher exited with code 3" in reports[0]
    assert "boom" in reports[0]
    assert codes["sleeper"] == -15  # ended by our SIGTERM, not killed
