"""Email channel: multipart text + HTML over SMTP, with STARTTLS or SSL.

The user name and password come from the environment variables the rules file names;
they are never logged. SMTP 4xx replies, timeouts and dropped connections are retried;
5xx replies (including a refused login) fail for good. A message accepted for some
recipients but refused for others counts as delivered (retrying would send it twice to
those who got it) and the refusals are recorded in the status.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from consumers.alert.channels.base import SendResult, delivered, final, retryable
from consumers.alert.render import render_html, render_text, subject
from schemas.alert_payload import AlertPayload
from schemas.rules_file import EmailChannel


def build_message(alert: AlertPayload, config: EmailChannel) -> EmailMessage:
    """The email for ``alert``: text part first, HTML alternative second."""
    message = EmailMessage()
    message["Subject"] = subject(alert, config.subject_prefix)
    message["From"] = config.from_
    message["To"] = ", ".join(config.to)
    message["Date"] = formatdate(localtime=False)
    domain = config.from_.rsplit("@", 1)[-1] or None
    message["Message-ID"] = make_msgid(idstring=f"alert{alert.alert_id}", domain=domain)
    message["X-Newswatch-Alert-Id"] = str(alert.alert_id)
    message["X-Newswatch-Dedup-Key"] = alert.dedup_key
    message.set_content(render_text(alert))
    message.add_alternative(render_html(alert), subtype="html")
    return message


class EmailNotifier:
    """Sends each alert in its own SMTP session (so it is safe from several threads)."""

    kind = "email"

    def __init__(self, name: str, config: EmailChannel, *, username: str | None,
                 password: str | None) -> None:
        self.name = name
        self._config = config
        # One SMTP server is one destination (consumers/alert/destinations.py).
        self.destination = f"smtp:{config.host.lower()}:{config.effective_port()}"
        self._username = username
        self._password = password

    def _context(self) -> ssl.SSLContext:
        cafile = str(self._config.ca_file) if self._config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def _connect(self) -> smtplib.SMTP:
        config = self._config
        timeout = config.timeout.total_seconds()
        if config.security == "ssl":
            return smtplib.SMTP_SSL(config.host, config.effective_port(), timeout=timeout,
                                    context=self._context())
        return smtplib.SMTP(config.host, config.effective_port(), timeout=timeout)

    def send(self, alert: AlertPayload) -> SendResult:
        message = build_message(alert, self._config)
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if self._config.security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = f"all recipients refused ({', '.join(str(c) for c in codes)})"
            if codes and all(400 <= code < 500 for code in codes):
                return retryable(f"smtp {codes[0]}", text)
            return final(f"smtp {codes[0] if codes else 550}", text)
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            text = f"{type(exc).__name__}: {exc.smtp_code} {reply}"
            if 400 <= exc.smtp_code < 500:
                return retryable(f"smtp {exc.smtp_code}", text)
            return final(f"smtp {exc.smtp_code}", text)
        except smtplib.SMTPNotSupportedError as exc:
            return final("smtp unsupported", f"the server does not support it: {exc}")
        except ssl.SSLCertVerificationError as exc:
            return final("tls", f"certificate not trusted: {exc.verify_message}")
        except (smtplib.SMTPException, OSError) as exc:
            return retryable("connection", f"{type(exc).__name__}: {exc}")
        if refused:
            return delivered(f"smtp 250 (refused: {', '.join(sorted(refused))})")
        return delivered("smtp 250")

    def close(self) -> None:
        return None
