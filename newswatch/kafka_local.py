"""A real single-node Apache Kafka (KRaft) broker for local runs and tests.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` and are cached in a
git-ignored folder; the broker runs with ``java`` on 127.0.0.1 as a detached process whose
pid is kept in its state folder, so ``newswatch kafka stop`` works from another shell.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from newswatch.errors import KafkaStartError, MissingToolError
from newswatch.kafka_probe import broker_answers

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POM_PATH = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
DEFAULT_LIB_DIR = PROJECT_ROOT / ".cache" / "kafka" / "lib"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

_NO_JAVA = (
    "java was not found: install a Java 17+ runtime "
    "(Debian: apt-get install openjdk-17-jre-headless), or point Newswatch at an existing "
    "cluster with KAFKA_BOOTSTRAP_SERVERS=host:port"
)
_NO_MVN = (
    "mvn was not found and the Kafka jars are not cached yet: install Maven "
    "(Debian: apt-get install maven), or point Newswatch at an existing cluster with "
    "KAFKA_BOOTSTRAP_SERVERS=host:port"
)


def resolve_jars(lib_dir: Path = DEFAULT_LIB_DIR, pom: Path = POM_PATH) -> Path:
    """Make sure the broker's jars are in ``lib_dir``, fetching them with Maven if not.

    Idempotent: returns at once when the Kafka server jar is already there.
    """
    if any(lib_dir.glob("kafka_2.13-*.jar")):
        return lib_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(_NO_MVN)
    lib_dir.mkdir(parents=True, exist_ok=True)
    command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={lib_dir}"]
    log.info("resolving Kafka jars with Maven lib_dir=%s", lib_dir)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(lib_dir.glob("kafka_2.13-*.jar")):
        raise KafkaStartError(
            f"mvn could not resolve the Kafka jars (exit {result.returncode}): "
            f"{(result.stdout + result.stderr).strip()[-2000:]}"
        )
    return lib_dir


def _log4j_config(log_dir: Path) -> str:
    # A rolling file keeps the broker's own log bounded when it runs for months.
    return "\n".join([
        "status = error",
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log_dir / 'server.log'}",
        f"appender.file.filePattern = {log_dir / 'server.log.%i'}",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 20MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        "logger.kafka.name = kafka",
        "logger.kafka.level = WARN",
        "logger.apache.name = org.apache.kafka",
        "logger.apache.level = WARN",
        "",
    ])


# The JVM of a local broker. A broker moves bytes between sockets and files; its hot code
# is small and C2's optimisations buy nothing measurable in its steady rate (1.9 ms of CPU
# per full-text article with C1 only, 2.1 with C2, on a 2-core AMD EPYC), while C2's
# compiling cost ~2 CPU seconds in the broker's first minutes, taken from NER on a small
# machine and paid again by every broker the tests start. The serial collector: one node,
# a small heap, and no concurrent GC threads competing with the daemons for the cores.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


@dataclass(frozen=True)
class LocalKafka:
    """One local broker+controller: its ports, heap, jar cache and state folder."""

    state_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    lib_dir: Path = DEFAULT_LIB_DIR
    partitions: int = 1
    # Cluster membership (`LocalKafkaCluster`); the defaults are the single node.
    node_id: int = 1
    voters: str | None = None
    cluster_id: str | None = None
    replication: int = 1
    min_insync: int = 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    def server_properties(self) -> str:
        """The broker configuration: one KRaft node on loopback (replication factor 1), or
        one member of a `LocalKafkaCluster`."""
        voters = self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        rf, isr = self.replication, self.min_insync
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            f"num.partitions={self.partitions}",
            "auto.create.topics.enable=true",
            f"offsets.topic.replication.factor={rf}",
            # Few offset partitions: a single node needs no spread and starts groups faster.
            "offsets.topic.num.partitions=5",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={isr}",
            f"default.replication.factor={rf}",
            f"min.insync.replicas={isr}",
            # A replica that fell behind must never become leader: no acknowledged loss.
            "unclean.leader.election.enable=false",
            "group.initial.rebalance.delay.ms=0",
            # The controller appends a no-op record to its metadata log this often so
            # brokers see it live; every 500 ms (the default) kept an idle broker at 4% of
            # a core here, every 5 s at 2.7% (bench/bench_fulltext.py, issue 17).
            "metadata.max.idle.interval.ms=5000",
            "log.retention.hours=168",
            "",
        ])

    def pid(self) -> int | None:
        """The broker's pid when its process is alive, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A pid can be reused by an unrelated process after a reboot; check it is ours.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if KAFKA_MAIN.encode() in cmdline else None

    def is_ready(self, timeout_s: float = 3.0) -> bool:
        """True when the broker answers a metadata request from kafka-python."""
        return broker_answers(self.bootstrap, timeout_s)

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the process without waiting for it to answer (a cluster member cannot
        answer before a quorum of its peers runs); None when it already runs."""
        if self.pid() is not None:
            return None
        self._check_ports()
        java = shutil.which("java")
        if java is None:
            raise MissingToolError(_NO_JAVA)
        resolve_jars(self.lib_dir)
        for folder in (self.data_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "server.properties"
        config.write_text(self.server_properties())
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(_log4j_config(self.log_dir))
        classpath = f"{self.lib_dir}/*"
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath, config)
        command = [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_OPTIONS,
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.log_dir}", "-cp", classpath, KAFKA_MAIN, str(config),
        ]
        console = (self.log_dir / "console.log").open("ab")
        process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        console.close()
        self.pid_file.write_text(str(process.pid))
        return process

    def kill(self) -> None:
        """SIGKILL the process (a crash, for fault tests). Idempotent."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def start(self, timeout_s: float = 90.0) -> str:
        """Start the broker unless it already runs; return the bootstrap address when ready.

        Formats KRaft storage on first use. Raises `MissingToolError` without java (or
        without mvn when the jars are not cached) and `KafkaStartError` with the tail of
        the broker's log when it exits or stays silent past ``timeout_s``.
        """
        if self.pid() is not None and self.is_ready():
            return self.bootstrap
        process = self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = self._log_tail()
                if "Address already in use" in tail:  # taken between the check and Java
                    raise KafkaStartError(self._port_clash(self.port, self.controller_port))
                raise KafkaStartError(
                    f"the Kafka broker exited with code {process.returncode}: {tail}")
            if self.is_ready(timeout_s=2.0):
                return self.bootstrap
            time.sleep(0.3)
        self.stop()
        raise KafkaStartError(f"the Kafka broker was not ready after {timeout_s:.0f}s: "
                              f"{self._log_tail()}")

    def _check_ports(self) -> None:
        """Refuse, in one line, to start on a port another program holds: Java would die
        with a stack trace, or worse, another broker on it would pass for ours."""
        for port in (self.port, self.controller_port):
            if port_taken(port):
                raise KafkaStartError(self._port_clash(port))

    def _port_clash(self, *ports: int) -> str:
        names = " or ".join(str(port) for port in ports)
        return (f"cannot start the local Kafka broker: port {names} on 127.0.0.1 is in use "
                "by another program; stop it, or choose free ports with NEWSWATCH_KAFKA_PORT "
                "and NEWSWATCH_KAFKA_CONTROLLER_PORT, or use a running broker with "
                "KAFKA_BOOTSTRAP_SERVERS")

    def _format(self, java: str, classpath: str, config: Path) -> None:
        cluster_id = self.cluster_id or _cluster_id()
        result = subprocess.run(
            [java, "-cp", classpath, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(config)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise KafkaStartError(f"formatting KRaft storage failed: {result.stderr.strip()}")

    def signal_stop(self) -> None:
        """SIGTERM the broker without waiting: it shuts down cleanly by itself."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker with SIGTERM (SIGKILL after ``timeout_s``); False if none ran.

        Idempotent: stopping a stopped broker is not an error.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            log.warning("Kafka broker did not stop within %.0fs, killing pid=%d", timeout_s, pid)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("console.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text.strip() or "(no log output)"


@dataclass(frozen=True)
class LocalKafkaCluster:
    """Three (or ``size``) KRaft nodes on loopback, each broker and controller, topics
    replicated ``replication`` times with ``min_insync`` in-sync replicas: what the
    high-availability fault tests kill -9 pieces of."""

    nodes: tuple[LocalKafka, ...]

    @staticmethod
    def create(state_dir: Path, ports: list[int], controller_ports: list[int], *,
               heap: str = "320m", min_insync: int = 2) -> LocalKafkaCluster:
        voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controller_ports))
        cluster_id = _cluster_id()
        return LocalKafkaCluster(tuple(
            LocalKafka(state_dir=state_dir / f"node{i + 1}", port=port,
                       controller_port=controller_ports[i], heap=heap, partitions=3,
                       node_id=i + 1, voters=voters, cluster_id=cluster_id,
                       replication=len(ports), min_insync=min_insync)
            for i, port in enumerate(ports)))

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout_s: float = 120.0) -> str:
        """Start every node, then wait until each answers."""
        for node in self.nodes:
            node.launch()
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            while not node.is_ready(timeout_s=2.0):
                if time.monotonic() > deadline:
                    self.stop()
                    raise KafkaStartError(f"cluster node {node.node_id} not ready after "
                                          f"{timeout_s:.0f}s: {node._log_tail()}")
                time.sleep(0.3)
        return self.bootstrap

    def node(self, node_id: int) -> LocalKafka:
        return next(node for node in self.nodes if node.node_id == node_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``host:port`` (we cannot bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT after our own broker stopped is free to Java.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _cluster_id() -> str:
    """A random KRaft cluster id: URL-safe base64 of 16 bytes, as Kafka's own tool makes.

    Ids starting with '-' are drawn again: the storage tool's argument parser would read
    one as an option (Kafka's Uuid.randomUuid avoids them for the same reason).
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _alive(pid: int) -> bool:
    # Reap it if it is our child, so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.lower()
    except OSError:
        return ""
    return ""
