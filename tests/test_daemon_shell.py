"""The daemon shell (`newswatch.daemon.Daemon`) with its real health server: readiness red
while a start-up connection waits, the retries counted, shutdown in order, stop honoured."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from newswatch.daemon import Daemon
from newswatch.errors import BrokerUnavailableError, ConfigError
from newswatch.settings import Settings
from tests.support.ports import free_port


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """The shell installs the process's handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                     signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _status(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code


def _waits(stage: str) -> float:
    value = REGISTRY.get_sample_value("newswatch_startup_waits_total",
                                      {"stage": stage, "dependency": "Kafka"})
    return value or 0.0


def test_readiness_is_red_while_connecting_and_shutdown_runs_in_reverse() -> None:
    port = free_port()
    shell = Daemon("shell-test", Settings(metrics_port=port))
    events: list[str] = []
    seen_while_waiting: list[tuple[int, int]] = []
    shell.ready_when(lambda: True)
    shell.close_at_exit(lambda: events.append("engine disposed"))
    before = _waits("shell-test")

    def broker() -> str:
        seen_while_waiting.append((_status(port, "/healthz"), _status(port, "/readyz")))
        if len(seen_while_waiting) < 3:
            raise BrokerUnavailableError("no Kafka broker answers")
        return "client"

    def body() -> int:
        client = shell.connect("Kafka", broker)
        events.append(f"connected {client}")
        shell.close_at_exit(lambda: events.append("client closed"))
        assert _status(port, "/readyz") == 200
        return 3

    assert shell.run(body) == 3
    # Alive but not ready during every try, including the one that succeeded.
    assert seen_while_waiting == [(200, 503)] * 3
    assert _waits("shell-test") - before == 2
    assert events == ["connected client", "client closed", "engine disposed"]
    with pytest.raises(httpx.ConnectError):  # the health server stopped with the daemon
        _status(port, "/healthz")


def test_a_stop_ends_a_start_up_wait() -> None:
    shell = Daemon("shell-stop", Settings())
    tries = threading.Event()

    def broker() -> str:
        tries.set()
        raise BrokerUnavailableError("no Kafka broker answers")

    def body() -> None:
        assert shell.connect("Kafka", broker) is None

    stopper = threading.Thread(target=lambda: tries.wait(10) and shell.stop.stop())
    stopper.start()
    assert shell.run(body) == 0
    stopper.join()


def test_a_final_error_is_not_retried_and_everything_is_closed() -> None:
    shell = Daemon("shell-final", Settings())
    closed: list[str] = []
    calls: list[int] = []
    shell.close_at_exit(lambda: closed.append("engine"))

    def broker() -> str:
        calls.append(1)
        raise ConfigError("invalid Kafka producer settings")

    with pytest.raises(ConfigError):
        shell.run(lambda: shell.connect("Kafka", broker) and None)
    assert calls == [1]
    assert closed == ["engine"]


def test_the_first_signal_stops_the_work_and_calls_on_stop() -> None:
    shell = Daemon("shell-signal", Settings())
    told: list[str] = []
    shell.on_stop(lambda: told.append("server told to stop"))

    def body() -> int:
        signal.raise_signal(signal.SIGTERM)  # handled: sets the flag, does not kill
        return 0 if shell.stop.wait(5) else 1

    assert shell.run(body) == 0
    assert told == ["server told to stop"]
