"""Telling a digest: one article that lists several unrelated items (a daily briefing,
"Donnerstag: Teslas Zahlen, TSMC-Pläne ..." with "E-Autos im Überfluss + TSMCs neue
Fertigungsprozesse + ..."). Its words are a few events' words at once, so it shares
enough with each of them to look like their story; the clusterer keeps it in a story of
its own rather than let it join one event's story or bridge two.

Two shapes, either is enough:

- the text is a list: at least `MIN_ITEMS` short items separated by one list mark
  ("+", "•", "·", "|", "▪", or bullets at line starts);
- the title is a briefing kicker ("Monday:", "Morning briefing:", "Donnerstag:") before
  at least two items separated by commas, semicolons or "+".

Pure: the same title and text always give the same answer.
"""

from __future__ import annotations

import re

from consumers.stories.text import WORD, fold

MIN_ITEMS = 4
# An item of a list is a headline, not a paragraph: a text whose "items" run longer is
# prose that happens to use the mark.
MAX_ITEM_WORDS = 12
_MARKS = ("+", "•", "·", "|", "▪", "►", "◆")
_LINE_BULLET = re.compile(r"(?:^|\n)\s*[-*•]\s")
_TITLE_ITEMS = re.compile(r",|;|\s\+\s")
# A kicker made only of these words names the issue of a briefing, not an event.
_KICKER_WORDS = frozenset("""
monday tuesday wednesday thursday friday saturday sunday
montag dienstag mittwoch donnerstag freitag samstag sonntag wochenende
lundi mardi mercredi jeudi vendredi samedi dimanche
lunes martes miercoles jueves viernes sabado domingo
segunda terca quarta quinta sexta feira sabado domingo
lunedi martedi mercoledi giovedi venerdi sabato domenica
maandag dinsdag woensdag donderdag vrijdag zaterdag zondag
morning evening night daily weekly weekend today tonight the your news in brief briefing
briefings digest roundup round up recap headlines newsletter top stories
""".split())  # noqa: SIM905 (a word list reads better as text)
MAX_KICKER_WORDS = 4


def is_digest(title: str, text: str) -> bool:
    """Whether the article is a digest of several items (see the module docstring)."""
    return _listed(text) or _briefing_title(title)


def _listed(text: str) -> bool:
    lists = [text.split(f" {mark} ") for mark in _MARKS if f" {mark} " in text]
    if "\n" in text and _LINE_BULLET.search(text):
        lists.append(_LINE_BULLET.split(text))
    for pieces in lists:
        items = [len(WORD.findall(piece)) for piece in pieces]
        items = [count for count in items if count]
        if len(items) >= MIN_ITEMS and sorted(items)[len(items) // 2] <= MAX_ITEM_WORDS:
            return True
    return False


def _briefing_title(title: str) -> bool:
    kicker, colon, rest = title.partition(":")
    if not colon:
        return False
    words = WORD.findall(fold(kicker))
    if not words or len(words) > MAX_KICKER_WORDS or not all(
            word in _KICKER_WORDS for word in words):
        return False
    return len([item for item in _TITLE_ITEMS.split(rest) if WORD.search(item)]) >= 2
