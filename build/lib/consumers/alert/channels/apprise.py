"""Apprise channel: any Apprise URL (Slack, Teams, Telegram, Discord, ntfy, Matrix, ...).

Apprise says only whether a notification went out, not why not, so a failure is
retried until the delivery policy gives up. The URL usually carries a token: it is read
from the environment variable the rules file names, and never logged.
"""

from __future__ import annotations

import logging

import apprise

from consumers.alert.channels.base import SendResult, delivered, retryable
from consumers.alert.render import render_text, subject
from newswatch.errors import ConfigError
from schemas.alert_payload import AlertPayload

# Apprise logs each attempt at INFO; its own messages are not ours to print.
logging.getLogger("apprise").setLevel(logging.WARNING)


class AppriseNotifier:
    kind = "apprise"

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self._url = url
        if not apprise.Apprise().add(url):
            raise ConfigError(f"channel '{name}': not a URL Apprise understands")

    def send(self, alert: AlertPayload) -> SendResult:
        app = apprise.Apprise()
        app.add(self._url)
        ok = app.notify(title=subject(alert, ""), body=render_text(alert),
                        body_format=apprise.NotifyFormat.TEXT)
        if ok:
            return delivered("apprise ok")
        return retryable("apprise failed", "the service did not accept the notification")

    def close(self) -> None:
        return None
