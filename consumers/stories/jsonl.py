"""The JSON-lines interface of ``newswatch stories cluster`` and ``stories eval``.

Input, one object a line: ``id`` and ``title`` (required), optionally ``text``,
``published`` (ISO 8601; UTC when it has no offset), ``outlet``, ``url``, ``entities``
(a list of names), ``language`` (the feed's, e.g. "de") and, for evaluation,
``story`` (the true story id). Output, one object a line per input, in input order:
``{"id": ..., "story": ..., "duplicate_of": ...}``. This interface is stable: other tools call it.

A line that is not such an object raises `InputLineError` naming the line: the CLI stops
there rather than cluster a stream with a hole in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumers.stories.cluster import Placement, StoryInput
from newswatch.errors import NewswatchError

MAX_LINE_CHARS = 1_000_000


class InputLineError(NewswatchError):
    """A line of the JSON-lines input is not a valid article."""


@dataclass(frozen=True)
class LabelledInput:
    article: StoryInput
    story: str | None


def _text(obj: dict[str, Any], key: str, line: int, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise InputLineError(f"line {line}: {key!r} is missing")
        return ""
    if not isinstance(value, str):
        raise InputLineError(f"line {line}: {key!r} must be a string, not "
                             f"{type(value).__name__}")
    return value


def _published(obj: dict[str, Any], line: int) -> datetime | None:
    raw = _text(obj, "published", line)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InputLineError(f"line {line}: 'published' {raw[:60]!r} is not ISO 8601"
                             ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_line(raw: str, line: int) -> LabelledInput:
    """One input line as an article (and its true story, when labelled)."""
    if len(raw) > MAX_LINE_CHARS:
        raise InputLineError(f"line {line}: longer than {MAX_LINE_CHARS} characters")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputLineError(f"line {line}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise InputLineError(f"line {line}: expected a JSON object")
    article_id = _text(obj, "id", line, required=True)
    if not article_id:
        raise InputLineError(f"line {line}: 'id' is empty")
    entities = obj.get("entities") or []
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise InputLineError(f"line {line}: 'entities' must be a list of strings")
    story = obj.get("story")
    return LabelledInput(
        StoryInput(id=article_id, title=_text(obj, "title", line, required=True),
                   text=_text(obj, "text", line), published=_published(obj, line),
                   outlet=_text(obj, "outlet", line), entities=tuple(entities),
                   language=_text(obj, "language", line) or None),
        None if story is None else str(story))


def read_lines(lines: Iterable[str]) -> Iterator[LabelledInput]:
    """Parse JSON lines lazily, in order; blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield parse_line(raw, number)


def placement_line(placement: Placement) -> str:
    return json.dumps({"id": placement.id, "story": placement.story,
                       "duplicate_of": placement.duplicate_of}, ensure_ascii=False)
