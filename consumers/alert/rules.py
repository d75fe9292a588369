"""Loading ``rules.yaml``: YAML -> `schemas.rules_file.RulesFile`, with errors a user can act on.

Every problem becomes one `ConfigError` whose message names the file, the rule (by its
name, not its position) or channel, and the field, e.g.::

    rules.yaml: rule 'is-threat': match.min_score: Input should be less than or equal to 1

Checks that span the file (unique rule names, channels that exist) are made here too.
Environment variables named by channels are read later, when channels are built, so
`rules check` can validate a file on a machine without the secrets.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from newswatch.errors import ConfigError
from schemas import yaml_load
from schemas.rules_file import (
    AppriseChannel,
    EmailChannel,
    RulesFile,
    WebhookChannel,
)


def default_rules_path() -> Path:
    """The demo rules shipped with the package (one rule per default topic), which run when
    ``NEWSWATCH_RULES_FILE`` is unset: ``newswatch/demo/rules.yaml``, beside the demo feeds."""
    return Path(str(resources.files("newswatch").joinpath("demo", "rules.yaml")))


def load_rules(path: Path) -> RulesFile:
    """Read and validate a rules file. Raises `ConfigError` (naming rule and field)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rules file: {exc.strerror or exc}") from exc
    return parse_rules(text, source=str(path))


def parse_rules(text: str, source: str = "rules.yaml") -> RulesFile:
    """Validate rules given as YAML text. Every problem reads ``source:line: rule 'name':
field: message`` (problems joined by ``; ``)."""
    document = yaml_load.load_document(text, source)
    raw = document.data if document.data is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{document.where()}: expected a mapping with 'rules' and 'channels'")
    try:
        parsed = RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(
            f"{document.where(tuple(error['loc']))}: {_describe(error, raw)}"
            for error in exc.errors()
        )) from exc
    _check_references(parsed, document)
    return parsed


def missing_environment(rules: RulesFile) -> list[str]:
    """Environment variables the channels name that are not set (no values are read out)."""
    missing = []
    for name, channel in rules.channels.items():
        for var in _env_names(channel):
            if not os.environ.get(var):
                missing.append(f"channel '{name}': {var} is not set")
    return missing


def _env_names(channel: object) -> list[str]:
    names: list[str | None] = []
    if isinstance(channel, EmailChannel):
        names = [channel.username_env, channel.password_env]
    elif isinstance(channel, WebhookChannel):
        names = [channel.url_env, channel.secret_env]
    elif isinstance(channel, AppriseChannel):
        names = [channel.url_env]
    return [n for n in names if n]


def _check_references(parsed: RulesFile, document: yaml_load.YamlDocument) -> None:
    problems: list[str] = []
    seen: set[str] = set()
    for i, rule in enumerate(parsed.rules):
        if rule.name in seen:
            problems.append(f"{document.where(('rules', i, 'name'))}: rule '{rule.name}': "
                            "name: used by two rules")
        seen.add(rule.name)
        for channel in rule.channels:
            if channel not in parsed.channels:
                known = ", ".join(sorted(parsed.channels)) or "none defined"
                problems.append(
                    f"{document.where(('rules', i, 'channels'))}: rule '{rule.name}': "
                    f"channels: unknown channel '{channel}' (channels: {known})"
                )
    if problems:
        raise ConfigError("; ".join(problems))


def _describe(error: Any, raw: dict[str, Any]) -> str:
    """'rule NAME: field.path: message' for one pydantic error."""
    loc = list(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    where = ""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = raw.get("rules")
        name = None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
        # Only a short string name is echoed: the value came from the file (issue 16).
        ok = isinstance(name, str) and 0 < len(name) <= 100
        where = f"rule '{name}'" if ok else f"rule #{loc[1] + 1}"
        loc = loc[2:]
    elif len(loc) >= 2 and loc[0] == "channels":
        where = f"channel '{loc[1]}'"
        loc = loc[2:]
        # A discriminated union puts the channel type in the path: drop it.
        if loc and loc[0] in {"email", "webhook", "apprise", "jsonl", "terminal"}:
            loc = loc[1:]
    field = ".".join(str(part) for part in loc if not str(part).startswith("function-"))
    parts = [p for p in (where, field) if p]
    return ": ".join([*parts, message])
