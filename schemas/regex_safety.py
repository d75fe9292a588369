"""Refusing the regular expressions that can take exponential time (ReDoS).

spaCy's Matcher runs a token pattern's ``REGEX`` with Python's backtracking `re`, without
a time limit: ``^(a+)+$`` on a 27-letter token took 6.5 s, doubling per letter (issue 16).
A pattern cannot be interrupted once spaCy runs it, so the risky shapes are refused when
topics.yaml is loaded, with the reason:

- a repeat inside a repeat (``(a+)+``, ``(\\w*)*``): nested quantifiers;
- an alternation inside a repeat (``(a|aa)+``): overlapping branches backtrack the same
  way; a character class (``[ab]+``) says the same thing safely;
- backreferences and conditional groups (``(a)\\1``): not regular, no bound at all;
- patterns over `MAX_REGEX_CHARS`.

What remains (literals, classes, single quantifiers, anchors, lookarounds without
repeats) runs in time polynomial in the token length, and tokens are words.
"""

from __future__ import annotations

import re
from re import _constants as sre  # type: ignore[attr-defined]  # the parser re itself uses
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_REGEX_CHARS = 200
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT}


def check_regex(pattern: str) -> None:
    """Raise `ValueError` saying why ``pattern`` is refused; return when it is safe."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex of {len(pattern)} characters is over {MAX_REGEX_CHARS}")
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
    _walk(list(parsed), pattern, inside_repeat=False)


def regexes_in(token_pattern: Any) -> list[str]:
    """Every ``REGEX`` value in a spaCy token pattern (at any depth, e.g. under ``_``)."""
    found: list[str] = []
    if isinstance(token_pattern, dict):
        for key, value in token_pattern.items():
            if key == "REGEX" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(regexes_in(value))
    elif isinstance(token_pattern, list):
        for item in token_pattern:
            found.extend(regexes_in(item))
    return found


def _walk(items: list[tuple[Any, Any]], pattern: str, inside_repeat: bool) -> None:
    for op, arg in items:
        if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise ValueError(f"regex {pattern!r} uses a backreference or conditional group, "
                             "which can take exponential time")
        if op in _REPEATS:
            _low, high, body = arg
            unbounded = high is sre.MAXREPEAT or high > 1
            if unbounded and inside_repeat:
                raise ValueError(f"regex {pattern!r} nests a repeat inside a repeat, which "
                                 "can take exponential time; refused")
            _walk(list(body), pattern, inside_repeat or unbounded)
        elif op is sre.BRANCH:
            if inside_repeat:
                raise ValueError(f"regex {pattern!r} repeats an alternation, which can "
                                 "take exponential time; use a character class instead")
            for branch in arg[1]:
                _walk(list(branch), pattern, inside_repeat)
        elif op is sre.SUBPATTERN:
            _walk(list(arg[-1]), pattern, inside_repeat)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _walk(list(arg[1]), pattern, inside_repeat)
        elif op is sre.ATOMIC_GROUP:
            _walk(list(arg), pattern, inside_repeat)
        # POSSESSIVE_REPEAT never backtracks; literals, classes and anchors are linear.
