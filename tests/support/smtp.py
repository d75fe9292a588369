"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

``rcpt_replies`` are answered, one each, to the next RCPT commands (a 451 to retry, a
550 to refuse) before recipients are accepted again; ``refusing`` answers 451 to every
message. `down` stops listening and `up` listens again on the same port. Extra keyword
arguments go to aiosmtpd's `Controller` (STARTTLS, an authenticator).
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from tests.support.ports import free_port
from tests.support.waits import wait_for


@dataclass(frozen=True)
class Mail:
    """One message the server accepted (250)."""

    message: EmailMessage
    envelope: Envelope
    at: float  # time.time() when it was accepted

    # A long header value is folded onto a continuation line; unfolded, it keeps the
    # leading space, so strip it as any receiver would.
    @property
    def alert_id(self) -> int:
        return int(str(self.message["X-Newswatch-Alert-Id"]).strip())

    @property
    def dedup_key(self) -> str:
        return str(self.message["X-Newswatch-Dedup-Key"]).strip()


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(self, server: aiosmtp.SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        with self._owner.lock:
            if self._owner.rcpt_replies:
                return self._owner.rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: aiosmtp.SMTP, session: Session,
                          envelope: Envelope) -> str:
        owner = self._owner
        if owner.refusing:
            with owner.lock:
                owner.refused += 1
            return "451 4.3.0 Mail server temporarily rejected message"
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with owner.lock:
            owner.accepted.append(Mail(message, envelope, time.time()))
        return "250 OK"


class SmtpServer:
    """Listens at once on a free port; `close` (or `down`) stops it."""

    def __init__(self, **controller_options: Any) -> None:
        self.port = free_port()
        self.refusing = False
        self.rcpt_replies: deque[str] = deque()
        self.accepted: list[Mail] = []
        self.refused = 0
        self.lock = threading.Lock()
        self._options = controller_options
        self._controller: Controller | None = None
        self.up()

    @property
    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [mail.message for mail in self.accepted]

    @property
    def envelopes(self) -> list[Envelope]:
        with self.lock:
            return [mail.envelope for mail in self.accepted]

    def keys(self) -> Counter[str]:
        """How many times each dedup key was accepted."""
        with self.lock:
            return Counter(mail.dedup_key for mail in self.accepted)

    def up(self) -> None:
        if self._controller is not None:
            return

        def listen() -> bool:
            controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                    **self._options)
            try:
                controller.start()
            except (OSError, RuntimeError):  # the old socket is still closing
                return False
            self._controller = controller
            return True

        wait_for(listen, 10, f"SMTP port {self.port} to listen again", interval_s=0.1)

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.down()
