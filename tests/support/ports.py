"""Free TCP ports on 127.0.0.1 for the servers, brokers and daemons a test starts.

A port is chosen some time before the program it is meant for binds it, and on a busy
machine something else may take it in between. Two things did, and are avoided here:

- The kernel's ephemeral range (``ip_local_port_range``) is where every outgoing
  connection (Kafka clients, PostgreSQL, HTTP) gets its source port, and where a port
  bound to 0 comes from: a port seen free there may be a client's a moment later. Ports
  are taken from outside that range, where only a listener can take one.
- Two choices in one test run, or in two runs side by side on the machine, could fall on
  the same port. Each port handed out is claimed in a folder of the machine's temporary
  directory (a file naming the owning process, under a lock) and never handed out again
  while that process lives; a claim whose process has ended is taken over.

Every port is also checked free (bound, on every address) before it is handed out.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# A developer's own Kafka broker may be listening there even when the port looks free
# for a moment: never hand them out.
RESERVED_PORTS = frozenset({9092, 9093})
# Below this are the well-known and the commonly configured service ports.
LOWEST_PORT = 10_000
HIGHEST_PORT = 65_535
# Linux's default, for a kernel that does not say.
DEFAULT_EPHEMERAL = (32_768, 60_999)

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_CLAIMS = Path(tempfile.gettempdir()) / f"newswatch-test-ports-{os.getuid()}"
_mine: set[int] = set()
_mine_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, both ends included."""
    try:
        low, high = (int(field) for field in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def port_range() -> range:
    """The ports handed out: the larger stretch of [10000, 65535] outside the ephemeral
    range."""
    low, high = ephemeral_range()
    below = range(LOWEST_PORT, max(LOWEST_PORT, low))
    above = range(min(HIGHEST_PORT + 1, high + 1), HIGHEST_PORT + 1)
    outside = max(below, above, key=len)
    # A kernel whose ephemeral range leaves nothing outside: the whole stretch, checked.
    return outside if len(outside) >= 1_000 else range(LOWEST_PORT, HIGHEST_PORT + 1)


def free_port() -> int:
    """A port nothing listens on now, claimed for this process (see the module's doc)."""
    return free_port_block(1)


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports, all claimed for this process (for a
    program that takes a base port and counts up from it)."""
    ports = port_range()
    if size < 1 or size > len(ports):
        raise ValueError(f"a block of {size} ports does not fit in {ports}")
    starts = range(ports.start, ports.stop - size + 1)
    offset = random.randrange(len(starts))  # runs side by side start far apart
    with _mine_lock, _claims_locked():
        for index in range(len(starts)):
            base = starts[(offset + index) % len(starts)]
            block = range(base, base + size)
            if all(_available(port) for port in block):
                for port in block:
                    _claim(port)
                return base
    raise RuntimeError(f"no block of {size} free ports left in {ports}")


@contextlib.contextmanager
def _claims_locked() -> Iterator[None]:
    """The claims folder, locked against every other process choosing ports."""
    _CLAIMS.mkdir(exist_ok=True)
    with (_CLAIMS / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _available(port: int) -> bool:
    """Neither claimed by a live process (this one included) nor bound by anything."""
    if port in RESERVED_PORTS or port in _mine:
        return False
    owner = _claim_owner(port)
    if owner is not None and owner != os.getpid() and _alive(owner):
        return False
    with socket.socket() as sock:
        try:
            # The wildcard address: taken when anything is bound to the port on any
            # address (a daemon binding 0.0.0.0 would clash with it too).
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _claim_owner(port: int) -> int | None:
    try:
        return int((_CLAIMS / str(port)).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _claim(port: int) -> None:
    (_CLAIMS / str(port)).write_text(str(os.getpid()))
    _mine.add(port)


@atexit.register
def _release() -> None:
    """Drop this process's claims (a process killed before this runs leaves them behind;
    they are taken over once it is gone)."""
    for port in _mine:
        with contextlib.suppress(OSError):
            if _claim_owner(port) == os.getpid():
                (_CLAIMS / str(port)).unlink()
