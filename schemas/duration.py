"""One way to write a length of time, in every file and command of Newswatch.

``90`` (a number: seconds), ``45s``, ``15m``, ``6h``, ``7d``, ``2w``, a decimal such as
``1.5h``, or several units largest first, such as ``1h30m`` or ``1d12h``. Units are
case-blind and may be spaced (``10 m``). Anything else is refused with a message that
shows the form: a text without a unit (``"90"``), a negative, an unknown unit (``3y``).
`Duration` is the pydantic type (feeds' ``poll_interval``, rules' ``within``); commands
call `parse_duration` and `format_duration`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([wdhms])\s*")
_FORM = "a duration such as 30s, 5m, 1h30m, 6h or 7d"


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """The duration ``value`` stands for; `ValueError` naming the accepted form otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):  # `poll_interval: yes` is a typo, not 1 second
        raise ValueError(f"{value!r} is not {_FORM}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is not {_FORM} (it is negative)")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} is not {_FORM}")
    text, seconds, at, last_rank = value.lower(), 0.0, 0, -1
    for part in _PART.finditer(text):
        if part.start() != at:
            break
        rank = list(UNIT_SECONDS).index(part.group(2))
        if rank <= last_rank:  # "30m1h" or "1h1h": largest unit first, each once
            raise ValueError(f"{value!r} is not {_FORM} (largest unit first, each once)")
        seconds += float(part.group(1)) * UNIT_SECONDS[part.group(2)]
        at, last_rank = part.end(), rank
    if at == 0 or at != len(text):
        raise ValueError(f"{value!r} is not {_FORM}")
    return timedelta(seconds=seconds)


def _validate(value: Any) -> Any:
    # None and other types go on to pydantic, which refuses them with its own message
    # (and lets `Duration | None` accept None).
    if isinstance(value, str | int | float | timedelta):
        return parse_duration(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_validate)]


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling in one unit, e.g. ``6h`` or ``90s`` (`parse_duration`
    reads it back)."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
