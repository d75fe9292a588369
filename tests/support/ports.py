"""Free TCP ports on 127.0.0.1 for the servers, brokers and daemons a test starts."""

from __future__ import annotations

import socket

# A developer's own Kafka broker may be listening there even when the port looks free
# for a moment: never hand them out.
RESERVED_PORTS = frozenset({9092, 9093})


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice, never a reserved one)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def free_port_block(size: int, attempts: int = 50) -> int:
    """The first of ``size`` consecutive free ports (for a program that takes a base port
    and counts up from it)."""
    for _ in range(attempts):
        base = free_port()
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no block of {size} free ports after {attempts} attempts")
