"""Where article pages may be fetched from: the egress policy of full-text fetches.

An article's link comes from feed content, which is untrusted: with ``full_text: true``
a link to 127.0.0.1 (the producer's own /metrics), 169.254.169.254 (a cloud's metadata
service) or a public page that redirects there was fetched and its text published as the
article (issue 16). The policy:

- only ``http`` and ``https`` (never ``file:``, which the feed fetcher reads from disk);
- every connection, including each redirect's, goes to an address the policy checked:
  the host name is resolved here, every address it resolves to must be public (not
  loopback, private, link-local, multicast, reserved or unspecified, in IPv4 or IPv6,
  IPv4-mapped included), and the socket connects to the checked address, so a DNS
  answer cannot change between the check and the connection;
- ``producer_fulltext_allow`` lists addresses or CIDR ranges allowed anyway (a test
  server on 127.0.0.1, an intranet news site).

The check lives in the connection layer (an httpcore network backend), below httpx's
redirect handling, so no redirect can get around it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from newswatch.errors import ConfigError, FeedError
from newswatch.http_deadline import deadline_transport

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOWED_SCHEMES = ("http", "https")


class EgressDeniedError(httpcore.ConnectError):
    """A connection the egress policy refused (raised inside httpcore, seen by httpx as a
    connect error and turned into a `FeedError` of kind ``egress`` by the fetcher)."""


def parse_allow(setting: str) -> tuple[Network, ...]:
    """The networks of a comma-separated ``producer_fulltext_allow``; `ConfigError` names
    a bad entry."""
    networks = []
    for entry in (part.strip() for part in setting.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"NEWSWATCH_PRODUCER_FULLTEXT_ALLOW: {entry!r} is not an "
                              "address or CIDR range") from None
    return tuple(networks)


class EgressPolicy:
    """Decides whether an address may be connected to; see the module docstring."""

    def __init__(self, allow: Sequence[Network] = ()) -> None:
        self.allow = tuple(allow)

    def check_url(self, url: str) -> None:
        """`FeedError` (kind ``egress``) for a scheme other than http and https."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise FeedError(f"article link with scheme {scheme or '(none)'!r} refused: only "
                            "http and https pages are fetched", kind="egress")

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused, or None when it may be connected to."""
        if any(address in network for network in self.allow):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.refusal(address.ipv4_mapped)
        for kind in ("loopback", "private", "link_local", "multicast", "reserved",
                     "unspecified"):
            if getattr(address, f"is_{kind}"):
                return kind.replace("_", "-")
        if not address.is_global:
            return "not global"
        return None

    def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses ``host`` resolves to, all permitted; `EgressDeniedError` if any
        is not (one bad address is enough to refuse: the host points inside)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = _unique(ipaddress.ip_address(info[4][0]) for info in infos)
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise EgressDeniedError(f"{host} resolves to {address} ({reason}): refused "
                                        "by the egress policy (producer_fulltext_allow)")
        return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the policy permits."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self._policy.resolve(host, port):
            try:
                # TLS still verifies and sends SNI for ``host``: httpcore starts TLS on
                # this stream with the request's host name, not the address.
                return super().connect_tcp(str(address), port, timeout, local_address,
                                           socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")


def guarded_transport(policy: EgressPolicy, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend` (and obeys
    `newswatch.http_deadline`)."""
    return deadline_transport(limits, GuardedBackend(policy))


def _unique(addresses: Iterable[Address]) -> list[Address]:
    seen: list[Address] = []
    for address in addresses:
        if address not in seen:
            seen.append(address)
    return seen
