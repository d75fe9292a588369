"""Article text cut into segments for display: evidence sentences and matched phrases.

The templates escape every segment's text (article text is hostile input); this module
only decides where the evidence is. Evidence is found by its sentence and phrase, not by
character offsets, because the stored text is shown with its whitespace tidied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

_SPACE = re.compile(r"\s+")
_PARAGRAPHS = re.compile(r"\n\s*\n")
MARK_START, MARK_END = "\ue000", "\ue001"


@dataclass(frozen=True)
class Segment:
    """A piece of text; ``topics`` whose evidence it is, ``phrase`` if a matched phrase."""

    text: str
    topics: tuple[str, ...] = ()
    phrase: bool = False


def squash(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def paragraphs(*parts: str) -> list[str]:
    """The text's paragraphs, each with its whitespace collapsed; empty ones dropped."""
    out: list[str] = []
    for part in parts:
        out.extend(p for p in (squash(chunk) for chunk in _PARAGRAPHS.split(part)) if p)
    return out


def _spans(text: str, needle: str) -> Iterable[tuple[int, int]]:
    if not needle:
        return
    lowered, wanted = text.lower(), needle.lower()
    start = lowered.find(wanted)
    while start != -1:
        yield start, start + len(wanted)
        start = lowered.find(wanted, start + len(wanted))


def _phrase_spans(text: str, phrase: str) -> Iterable[tuple[int, int]]:
    """Whole-word occurrences; an acronym ("IS") only in capitals, not inside "this"."""
    if not phrase:
        return []
    flags = 0 if phrase.isupper() and len(phrase) <= 5 else re.IGNORECASE
    pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", flags)
    return [m.span() for m in pattern.finditer(text)]


def segments(text: str, evidence: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Segment]:
    """``text`` cut at every evidence sentence and phrase of ``evidence`` (per topic).

    A phrase is marked inside its evidence sentence; where the sentence is not in this
    text (a title, or text cut differently), the phrase alone is marked.
    """
    sentence_spans: list[tuple[int, int, str]] = []
    phrase_spans: list[tuple[int, int]] = []
    for topic, spans in evidence.items():
        for span in spans:
            sentence = squash(str(span.get("sentence", "")))
            phrase = squash(str(span.get("phrase", "")))
            found = list(_spans(text, sentence)) if len(sentence) >= 8 else []
            for start, end in found:
                sentence_spans.append((start, end, topic))
                inner = text[start:end]
                phrase_spans.extend((start + a, start + b) for a, b in _phrase_spans(inner, phrase))
            if not found:
                phrase_spans.extend(_phrase_spans(text, phrase))
    cuts = sorted({0, len(text), *(p for s in sentence_spans for p in s[:2]),
                   *(p for s in phrase_spans for p in s)})
    out: list[Segment] = []
    for start, end in pairwise(cuts):
        if start >= end:
            continue
        topics = tuple(sorted({t for a, b, t in sentence_spans if a <= start and end <= b}))
        is_phrase = any(a <= start and end <= b for a, b in phrase_spans)
        out.append(Segment(text[start:end], topics, is_phrase))
    return out


def marked(snippet: str) -> list[Segment]:
    """A database snippet whose matches are wrapped in MARK_START/MARK_END, as segments."""
    out: list[Segment] = []
    inside = False
    for piece in re.split(f"([{MARK_START}{MARK_END}])", snippet):
        if piece == MARK_START:
            inside = True
        elif piece == MARK_END:
            inside = False
        elif piece:
            out.append(Segment(piece, phrase=inside))
    return out
