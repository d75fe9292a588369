"""`newswatch run` as an operator meets it (issue 15): ``run | tee`` then Ctrl+C leaves
nothing running, the status line updates in place on a terminal and is one line per change
elsewhere, and a Kafka port clash is one clear line, not a Java stack trace."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newswatch.cli.run import STAGES
from newswatch.kafka_local import LocalKafka
from newswatch.progress import RunOutput
from tests.support.daemons import kill_processes_of, processes_of
from tests.support.ports import free_port, free_port_block

ROOT = Path(__file__).resolve().parents[1]


def _run_env(state: Path, kafka_port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "NEWSWATCH_DATABASE_URL"}}
    env.update({
        "NEWSWATCH_STATE_DIR": str(state),
        "NEWSWATCH_KAFKA_PORT": str(kafka_port or free_port()),
        "NEWSWATCH_KAFKA_CONTROLLER_PORT": str(free_port()),
        "NEWSWATCH_KAFKA_HEAP": "384m",
        "NEWSWATCH_WEB_PORT": str(free_port()),
    })
    return env


# --- the status line -------------------------------------------------------------------


def test_on_a_terminal_the_status_line_updates_in_place() -> None:
    stream = io.StringIO()
    out = RunOutput(stream, terminal=True)
    out.status("feeds polled 1")
    out.status("feeds polled 2")
    out.say("! enrich exited with code 1")
    out.status("feeds polled 3")
    text = stream.getvalue()
    # One line rewritten with a carriage return; a message ends it and starts a new one.
    assert text == ("\rfeeds polled 1\x1b[K\rfeeds polled 2\x1b[K\n"
                    "! enrich exited with code 1\n\rfeeds polled 3\x1b[K")


def test_on_a_terminal_a_long_status_line_is_cut_to_its_width(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()
    RunOutput(stream, terminal=True).status("x" * 100)
    line = stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert len(line) == 39
    assert line.endswith("…")


def test_not_on_a_terminal_each_status_is_a_line() -> None:
    stream = io.StringIO()
    out = RunOutput(stream, terminal=False)
    out.status("feeds polled 1")
    out.status("feeds polled 2")
    out.say("Summary: ...")
    assert stream.getvalue() == "feeds polled 1\nfeeds polled 2\nSummary: ...\n"


def test_a_closed_pipe_is_dropped_not_raised() -> None:
    reader, writer = os.pipe()
    stream = os.fdopen(writer, "w")
    os.close(reader)  # the reader (tee) is gone
    out = RunOutput(stream, terminal=False)
    out.say("Stopping the daemons...")  # EPIPE: SIGPIPE is ignored by Python
    assert out.closed
    out.say("Summary: ...")  # and every later write is silently dropped
    stream.close()  # the descriptor now points at /dev/null: closing cannot fail either


# --- the real command ------------------------------------------------------------------


@pytest.mark.integration
def test_run_into_a_pipe_that_closes_then_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = free_port_block(len(STAGES))
    process = subprocess.Popen(
        [sys.executable, "-m", "newswatch.cli", "run", "--metrics-base-port", str(base)],
        cwd=ROOT, env=_run_env(state), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    seen = b""
    try:
        deadline = time.monotonic() + 180
        while b"Press Ctrl+C to stop." not in seen and time.monotonic() < deadline:
            chunk = process.stdout.readline()
            if not chunk:
                break
            seen += chunk
        assert b"Press Ctrl+C to stop." in seen, seen.decode(errors="replace")[-3000:]
        # The daemons are started right after that line; wait until each runs.
        deadline = time.monotonic() + 60
        while len(processes_of(state)) < len(STAGES) + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(processes_of(state)) >= len(STAGES) + 2  # run, broker and the six
        # `tee` dies of the same Ctrl+C: the pipe's reading end closes, then SIGINT.
        process.stdout.close()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
        deadline = time.monotonic() + 30
        while processes_of(state) and time.monotonic() < deadline:
            time.sleep(0.5)
        survivors = processes_of(state)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        kill_processes_of(state)
        LocalKafka(state / "kafka").stop()
    assert survivors == [], f"left running after Ctrl+C: {survivors}"
    assert code == 0
    assert LocalKafka(state / "kafka").pid() is None


@pytest.mark.integration
def test_a_kafka_port_clash_is_one_clear_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "newswatch.cli", "run", "--duration", "1"],
            cwd=ROOT, env=_run_env(state, kafka_port=port), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120)
        try:
            assert result.returncode == 2, result.stdout + result.stderr
            errors = result.stderr.strip().splitlines()
            assert errors == [
                f"newswatch: error: cannot start the local Kafka broker: port {port} on "
                "127.0.0.1 is in use by another program; stop it, or choose free ports with "
                "NEWSWATCH_KAFKA_PORT and NEWSWATCH_KAFKA_CONTROLLER_PORT, or use a running "
                "broker with KAFKA_BOOTSTRAP_SERVERS"], result.stderr
            assert "Exception" not in result.stdout + result.stderr
            assert processes_of(state) == []
        finally:
            kill_processes_of(state)
