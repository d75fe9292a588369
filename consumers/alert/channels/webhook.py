"""Webhook channel: the versioned JSON payload, POSTed and signed with HMAC-SHA256.

Headers sent with every request:

- ``X-Newswatch-Timestamp``: Unix seconds when the request was signed;
- ``X-Newswatch-Signature``: ``t=<timestamp>,v1=<hex>`` where ``hex`` is
  HMAC-SHA256(secret, ``"<timestamp>." + body``) (only when a secret is configured);
- ``X-Newswatch-Alert-Id`` and ``X-Newswatch-Dedup-Key``: receivers drop repeats by them
  (a timeout after the receiver got the request leads to a second, identical POST).

2xx is delivered; 429, 5xx, timeouts and connection errors are retried; any other status
(including redirects, which are not followed) fails for good.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

import httpx

from consumers.alert.channels.base import SendResult, delivered, final, retryable
from consumers.alert.destinations import webhook_destination
from newswatch.http_deadline import deadline_transport, request_deadline
from newswatch.retry_after import parse_retry_after
from schemas.alert_payload import AlertPayload

SIGNATURE_HEADER = "X-Newswatch-Signature"
TIMESTAMP_HEADER = "X-Newswatch-Timestamp"
USER_AGENT = "Newswatch-Alerts/1"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def classify(status: int, retry_after: str | None = None) -> SendResult:
    """Alertmanager's rule: 2xx done, 429/5xx retry, anything else final."""
    code = f"http {status}"
    if 200 <= status < 300:
        return delivered(code)
    if status == 429 or status >= 500:
        return retryable(code, f"the receiver answered {status}", parse_retry_after(retry_after))
    return final(code, f"the receiver answered {status}")



class WebhookNotifier:
    """POSTs each alert to one URL. Thread-safe (one pooled httpx client)."""

    kind = "webhook"

    def __init__(self, name: str, url: str, *, secret: bytes | None, timeout_s: float,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._url = url
        self.destination = webhook_destination(url)  # per-host isolation (destinations.py)
        self._secret = secret
        self._clock = clock
        self._timeout_s = timeout_s
        # The channel's timeout bounds the whole request, not each read: a receiver that
        # drips its response headers held every delivery worker (issue 16).
        self._client = httpx.Client(
            timeout=timeout_s, follow_redirects=False,
            transport=transport or deadline_transport(httpx.Limits()),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
        )

    def send(self, alert: AlertPayload) -> SendResult:
        body = alert.model_dump_json().encode("utf-8")
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            "X-Newswatch-Alert-Id": str(alert.alert_id),
            "X-Newswatch-Dedup-Key": alert.dedup_key,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            with request_deadline(self._timeout_s):
                response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            return retryable("timeout", "the receiver did not answer in time")
        except httpx.TransportError as exc:
            # The message names the failure (refused, reset), never the URL.
            return retryable("connection", f"{type(exc).__name__}: {exc}")
        return classify(response.status_code, response.headers.get("Retry-After"))

    def close(self) -> None:
        self._client.close()
