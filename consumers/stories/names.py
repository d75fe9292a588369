"""Which words of an article are names, and when a shared template hides two events.

Words alone cannot tell "the same people" from "the same event". Two signals the
clusterer uses to tell them apart, both from the article's own text (no model):

- `name_terms`: the article's words that are names (people, places, organisations),
  from the entities enrichment found and, in languages whose spelling marks names by a
  capital (all of `consumers.stories.salience.LANGUAGES` but German, which capitalises
  every noun), from how the words are written: a capital in the middle of a sentence,
  or a word in capitals ("UN", "D.C."). A title in Title Case or in capitals says
  nothing by its case, so only its text's case counts then; the first word of a sentence
  counts only when the next word is capitalised too ("Fairfax County").
- `plain_terms`: the words the article writes in lower case, ordinary words there
  whatever another article's capitals say.
- `template_conflict`: two titles that share their frame ("X wellness calendar, Aug.
  16-23", "Earthquake strikes off the coast of X") but each fill the frame's slot with a
  name the other never mentions are one series about two subjects, not one event.

Pure functions of the text: the same article always gives the same answers, whether it
is placed live or rebuilt after a restart.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from consumers.stories.text import WORD, content_word

# Languages where a capital does not mark a name: German capitalises every noun.
CASE_BLIND = frozenset({"de"})
# What ends a sentence (or a headline's kicker) before a word: the next word's capital
# is then the sentence's, not a name's. Dashes: a dateline ("CHICAGO (AP) — Former ...").
_SENTENCE_END = frozenset(".!?:;—–|")
_OPENERS = "\"'“‘«(["
# A frame shares at least this many words of the two titles (names, numbers and all):
# "magnitude 6.1 earthquake strikes off X", "X County health calendar, Aug."; two
# ("Trump to shrink Bears Ears", "Trump shrinks Grand Staircase") are one action told of
# two places, not a series.
MIN_SHARED_TITLE = 3


def name_terms(title: str, lead: str, language: str, entities: Iterable[str] = ()
               ) -> frozenset[str]:
    """The terms (as `consumers.stories.text.terms` spells them) of ``title`` and
    ``lead`` that are names; see the module docstring for how they are told."""
    names: set[str] = set()
    for entity in entities:
        names.update(_terms_of(entity))
    if language in CASE_BLIND:
        return frozenset(names)
    for text in (title, lead):
        if text.islower() or not text:
            continue  # no capital at all (the commonest case in a summary's tail)
        matches = list(WORD.finditer(text))
        case = _title_case([m.group() for m in matches])
        if case == "sentence":
            names.update(_capitalised(text, matches))
        elif case == "title":
            # Capitals mean nothing in "Obama Reports For Jury Duty" (and some feeds'
            # summaries repeat the title), but an acronym still stands out ("UN").
            names.update(word for m in matches if _is_acronym(token := m.group())
                         and (word := _term(token)))
    return frozenset(names)


def plain_terms(*texts: str) -> frozenset[str]:
    """The terms written in lower case somewhere in ``texts``: a word the article itself
    writes small is an ordinary word there ("monument protections"), whatever another
    article's capitals say ("Bears Ears National Monument")."""
    return frozenset(word for text in texts for token in WORD.findall(text)
                     if token[0].islower() and (word := _term(token)))


def template_conflict(article_title: Collection[str], article_names: Collection[str],
                      article_words: Mapping[str, object], story_title: Collection[str],
                      story_names: Collection[str], story_words: Mapping[str, object]
                      ) -> bool:
    """Whether the article's title and the story's are one frame with two subjects:
    without their names and numbers they are the same words, and each names a subject
    the other does not mention anywhere ("Earthquake strikes off Chile" and "Earthquake
    strikes off Japan"; not "Trump to shrink Bears Ears" and "Trump shrinks Bears Ears
    and Grand Staircase", where one only names more). The titles share at least
    `MIN_SHARED_TITLE` words.

    ``*_title``: the titles' terms; ``*_names``: the terms known as names on each side;
    ``*_words``: every term each side weighed (title and lead)."""
    frame = _frame(article_title, article_names)
    if not frame or frame != _frame(story_title, story_names):
        return False
    if sum(1 for word in article_title if word in story_title) < MIN_SHARED_TITLE:
        return False
    ours = any(word in article_names and word not in story_words for word in article_title)
    return ours and any(word in story_names and word not in article_words
                        for word in story_title)


def _frame(title: Collection[str], names: Collection[str]) -> set[str]:
    return {word for word in title if word not in names and not word.isdigit()}


def _term(token: str) -> str:
    return content_word(token)[0]


def _terms_of(text: str) -> list[str]:
    return [word for word in map(_term, WORD.findall(text)) if word]


def _is_acronym(token: str) -> bool:
    # isupper: every cased character is a capital ("D.C.", "UN"; not "6.1", "Obama").
    return token.isupper() and sum(ch.isalpha() for ch in token) >= 2


def _title_case(words: list[str]) -> str:
    """"upper" (in capitals), "title" (Title Case) or "sentence": whether a capital in
    a text of ``words`` (a title, or a summary that repeats one) means anything."""
    tokens = [t for t in words if t.lower() != t.upper()]  # with a letter in it
    if not tokens:
        return "sentence"
    if sum(_is_acronym(t) for t in tokens) >= 0.7 * len(tokens):
        return "upper"
    # Title Case capitalises the long words after the first; short ones ("of", "in")
    # may stay small in either style.
    long_words = [t for t in tokens[1:] if len(t) >= 4]
    if len(long_words) >= 2 and sum(t[0].isupper() for t in long_words) >= 0.8 * len(
            long_words):
        return "title"
    return "sentence"


def _capitalised(text: str, matches: list[re.Match[str]]) -> list[str]:
    """The terms of ``text`` (its words: ``matches``) written with a capital where a
    sentence would not put one. A sentence's first word is a name only when the next
    word is capitalised too ("Fairfax County wellness calendar")."""
    found: list[str] = []
    for i, match in enumerate(matches):
        token = match.group()
        if not token[0].isupper():
            continue
        word = _term(token)
        if not word:
            continue
        if _is_acronym(token) or not _starts_sentence(text, match.start(), i):
            found.append(word)
            continue
        following = matches[i + 1].group() if i + 1 < len(matches) else ""
        if following[:1].isupper() and not _starts_sentence(
                text, matches[i + 1].start(), i + 1):
            found.append(word)
    return found


def _starts_sentence(text: str, start: int, index: int) -> bool:
    if index == 0:
        return True
    before = text[max(0, start - 4):start].rstrip().rstrip(_OPENERS).rstrip()
    return not before or before[-1] in _SENTENCE_END
