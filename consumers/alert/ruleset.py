"""The rules in force: loaded, compiled and with their channels built; reloads keep the
last good set.

`RulesHolder.reload` is what SIGHUP triggers: it builds a whole new `RuleSet` from the
file and swaps it in only when every step succeeded. An invalid file is refused with a
logged error naming the rule and field, and the rules already running stay in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from consumers.alert.channels import Notifier, build_channels, close_all
from consumers.alert.compile import CompiledRules, compile_rules
from consumers.alert.rules import load_rules
from newswatch.errors import ConfigError
from schemas.rules_file import Delivery, RulesFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleSet:
    """One consistent generation of rules, channels and delivery policy."""

    path: Path
    file: RulesFile
    rules: CompiledRules
    channels: Mapping[str, Notifier]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def build_ruleset(path: Path, *, dialect: str, state_dir: Path,
                  environ: Mapping[str, str] | None = None,
                  compile_them: bool = True) -> RuleSet:
    """Load, validate and compile ``path`` and build its channels; raises `ConfigError`.
    Without ``compile_them`` (a delivery-only process) the set holds no compiled rule."""
    parsed = load_rules(path)
    channels = build_channels(parsed, state_dir, environ)
    rules = parsed.rules if compile_them else []
    return RuleSet(path=path, file=parsed, rules=compile_rules(rules, dialect),
                   channels=channels)


class RulesHolder:
    """Holds the current `RuleSet`; thread-safe reads, reload on request."""

    def __init__(self, path: Path, *, dialect: str, state_dir: Path,
                 environ: Mapping[str, str] | None = None, compile_them: bool = True
                 ) -> None:
        """Loads ``path`` at once: an invalid file here raises `ConfigError` (no rules yet).
        ``compile_them``: see `build_ruleset`."""
        self._path = path
        self._compile = compile_them
        self._dialect = dialect
        self._state_dir = state_dir
        self._environ = environ
        self._lock = threading.Lock()
        self._retired: list[RuleSet] = []
        self._current = self._build()

    def _build(self) -> RuleSet:
        return build_ruleset(self._path, dialect=self._dialect, state_dir=self._state_dir,
                             environ=self._environ, compile_them=self._compile)

    @property
    def current(self) -> RuleSet:
        with self._lock:
            return self._current

    def channels(self) -> tuple[Mapping[str, Notifier], Delivery]:
        """The channels and delivery policy in force (the deliverer's view)."""
        current = self.current
        return current.channels, current.file.delivery

    def reload(self) -> bool:
        """Re-read the rules file. True when the new rules are in force; False (and the
        old ones kept, and the error logged) when the file is invalid."""
        try:
            fresh = self._build()
        except ConfigError as exc:
            log.error("rules reload refused; the rules in force stay: %s", exc,
                      extra={"rules_file": str(self._path)})
            return False
        with self._lock:
            # Old channels may be sending right now; they are closed at shutdown.
            self._retired.append(self._current)
            self._current = fresh
        log.info("rules reloaded", extra={"rules_file": str(self._path),
                                          "rules": len(fresh.rules),
                                          "channels": len(fresh.channels)})
        return True

    def close(self) -> None:
        """Close every generation's channels. Idempotent."""
        with self._lock:
            generations = [*self._retired, self._current]
            self._retired = []
        for generation in generations:
            close_all(generation.channels)
