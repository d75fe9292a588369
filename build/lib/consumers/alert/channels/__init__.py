"""Alert channels, built from the ``channels`` section of the rules file.

`build_channels` reads the environment variables the file names (credentials, secret
URLs) once, when the rules are loaded; a missing one is a `ConfigError` naming the
channel and the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from consumers.alert.channels.apprise import AppriseNotifier
from consumers.alert.channels.base import Notifier
from consumers.alert.channels.email import EmailNotifier
from consumers.alert.channels.jsonl import JsonlNotifier
from consumers.alert.channels.terminal import TerminalNotifier
from consumers.alert.channels.webhook import WebhookNotifier
from newswatch.errors import ConfigError
from schemas.rules_file import (
    AppriseChannel,
    EmailChannel,
    JsonlChannel,
    RulesFile,
    TerminalChannel,
    WebhookChannel,
)


def _env(environ: Mapping[str, str], channel: str, var: str | None) -> str | None:
    if var is None:
        return None
    value = environ.get(var)
    if not value:
        raise ConfigError(f"channel '{channel}': environment variable {var} is not set")
    return value


def build_channels(rules: RulesFile, state_dir: Path,
                   environ: Mapping[str, str] | None = None) -> dict[str, Notifier]:
    """One notifier per channel of the file. Raises `ConfigError` naming the channel."""
    env = os.environ if environ is None else environ
    built: dict[str, Notifier] = {}
    try:
        for name, config in rules.channels.items():
            built[name] = _build(name, config, state_dir, env)
    except ConfigError:
        close_all(built)
        raise
    return built


def _build(name: str, config: object, state_dir: Path, env: Mapping[str, str]) -> Notifier:
    if isinstance(config, EmailChannel):
        return EmailNotifier(name, config, username=_env(env, name, config.username_env),
                             password=_env(env, name, config.password_env))
    if isinstance(config, WebhookChannel):
        url = config.url or _env(env, name, config.url_env) or ""
        secret = _env(env, name, config.secret_env)
        return WebhookNotifier(name, url, secret=secret.encode("utf-8") if secret else None,
                               timeout_s=config.timeout.total_seconds(),
                               headers=config.headers)
    if isinstance(config, AppriseChannel):
        return AppriseNotifier(name, config.url or _env(env, name, config.url_env) or "")
    if isinstance(config, JsonlChannel):
        path = config.path if config.path.is_absolute() else state_dir / config.path
        return JsonlNotifier(name, path)
    if isinstance(config, TerminalChannel):
        return TerminalNotifier(name)
    raise ConfigError(f"channel '{name}': unknown type")


def close_all(channels: Mapping[str, Notifier]) -> None:
    for notifier in channels.values():
        notifier.close()


__all__ = ["Notifier", "build_channels", "close_all"]
