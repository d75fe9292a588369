"""Token patterns on ``token._.canonical`` run as patterns on a native attribute.

spaCy's `Matcher` reads every extension attribute any of its patterns names for every
token it is run over, in Python (``token._.get(name)``: an ``Underscore`` object and a
dict look-up per token), whether or not a pattern could match there. Measured on this
project's exclusions: a 32-token sentence costs ~35 µs with patterns on ``LOWER`` alone
and ~250 µs once one pattern says ``{"_": {"canonical": ...}}``; the Islamic State
exclusions over candidate sentences cost ~1.8 ms of a full-text article's analysis.

The same test on a native attribute is read in C. While the patterns run, each token
with a canonical name carries a mark in ``ENT_ID`` (``MARK`` + the name, a string no
entity id can be); the rewritten patterns test ``ENT_ID`` for the mark instead of the
extension for the name (`marked_pattern`); afterwards every token gets its own
``ENT_ID`` back (`CanonicalMarks`). A token without a canonical name keeps its own
``ENT_ID``, which is never a mark: ``canonical == X`` holds exactly when ``ENT_ID ==
MARK + X``, and ``canonical NOT_IN [...]`` exactly when ``ENT_ID`` is none of their marks.

Only the tokens of alias-table mentions (`EntityFinder.mentions`, which sets the names)
can have one, so marking reads the extension on those few tokens alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spacy.tokens import Doc

from consumers.enrich.anchors import Pattern
from consumers.enrich.entities import CANONICAL, Mention

MARK = "\x1fcanonical\x1f"  # unit separators: no entity id or name is written so


def _marked_value(value: Any) -> Any | None:
    """The ``ENT_ID`` test for a ``canonical`` test, or None when it is not one this
    module rewrites (a name, or ``IN`` / ``NOT_IN`` of names; never the empty name,
    which every token without a name has)."""
    if isinstance(value, str):
        return MARK + value if value else None
    if isinstance(value, Mapping) and len(value) == 1:
        (op, names), = value.items()
        if op in ("IN", "NOT_IN") and isinstance(names, list) and names and all(
                isinstance(name, str) and name for name in names):
            return {op: [MARK + name for name in names]}
    return None


def marked_pattern(pattern: Pattern) -> tuple[list[dict[str, Any]], bool] | None:
    """``pattern`` with every ``{"_": {"canonical": ...}}`` test as an ``ENT_ID`` test,
    and whether it had any; None when some extension test cannot be rewritten (another
    extension, another operator, or a spec that already tests ``ENT_ID``)."""
    out: list[dict[str, Any]] = []
    changed = False
    for spec in pattern:
        extension = spec.get("_")
        if extension is None:
            out.append(dict(spec))
            continue
        if not isinstance(extension, Mapping) or set(extension) != {CANONICAL} or any(
                isinstance(key, str) and key.upper() == "ENT_ID" for key in spec):
            return None
        value = _marked_value(extension[CANONICAL])
        if value is None:
            return None
        out.append({**{key: item for key, item in spec.items() if key != "_"},
                    "ENT_ID": value})
        changed = True
    return out, changed


def marked_patterns(lists: Mapping[str, Sequence[Pattern]]
                    ) -> dict[str, list[Pattern]] | None:
    """Every key's patterns rewritten (`marked_pattern`), in the same order; None when
    none tests ``canonical`` (nothing to gain) or one cannot be rewritten (run as is)."""
    out: dict[str, list[Pattern]] = {}
    changed = False
    for key, patterns in lists.items():
        out[key] = []
        for pattern in patterns:
            marked = marked_pattern(pattern)
            if marked is None:
                return None
            out[key].append(marked[0])
            changed = changed or marked[1]
    return out if changed else None


class CanonicalMarks:
    """The marks of one doc: `apply` sets them (once), `restore` gives every marked
    token its own ``ENT_ID`` back. Use as ``try: ... finally: marks.restore()``.

    ``mentions`` must be the doc's `EntityFinder.mentions`: the names are set on the
    tokens of its alias-table mentions only.
    """

    def __init__(self, doc: Doc, mentions: Iterable[Mention]) -> None:
        self._doc = doc
        self._mentions = mentions
        self._saved: list[tuple[int, int]] | None = None

    def apply(self) -> None:
        if self._saved is not None:
            return
        self._saved = []
        doc = self._doc
        strings = doc.vocab.strings
        for mention in self._mentions:
            if not mention.in_alias_table:
                continue
            for i in range(mention.start, mention.end):
                token = doc[i]
                name = token._.get(CANONICAL)
                if name:
                    self._saved.append((i, token.ent_id))
                    token.ent_id = strings.add(MARK + name)

    def restore(self) -> None:
        for i, ent_id in reversed(self._saved or ()):
            self._doc[i].ent_id = ent_id
        self._saved = None
