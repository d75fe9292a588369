"""How much a shared word says that two articles report the same event.

A word's weight is its rarity, optionally damped by its spread (the clusterer's
``spread_power``):

- rarity in English at large (`wordfreq`'s Zipf frequency, a static table shipped in the
  package): "titanfall" or "herbalife" are rare, "market" or "sales" common. A stream
  statistic alone fails for headlines, because a big story makes its own key word
  frequent in the stream ("snowden" is in 230 of 2,023 dev headlines) and so weak exactly
  where it should be strong;
- spread over the open stories (in how many of them the word occurs): a word that many
  open stories share ("trump" in a US news stream) stops being evidence that an article
  belongs to any one of them, which the static table cannot know.

Pure and deterministic: the table is fixed, the spread is state the caller passes in.
"""

from __future__ import annotations

import math
from functools import lru_cache

from wordfreq import get_frequency_dict, zipf_frequency

# Zipf scale: 7.7 "the", ~5 "market", ~3.4 "snowden", 0 never seen. A word at or above
# the ceiling gets no rarity weight.
RARITY_CEILING = 7.0
# wordfreq's "large" table costs ~38 MB of memory per language, "small" ~4 MB. English,
# the language of most feeds and of the dev set, gets the large one (the small one cost
# 0.036 B-cubed F1 there); the others get the small one, so that guessing among eleven
# languages stays within the stage's memory budget.
LARGE_TABLES = frozenset({"en"})


# Languages whose tables need no extra tokenizer (Chinese and Japanese would need jieba
# or MeCab); an article in another language is weighed as English, which makes every
# word rare: it then joins a story only on near-identical wording.
LANGUAGES = ("en", "de", "fr", "es", "pt", "it", "nl", "sv", "pl", "ru", "tr")


# Bounded small: wordfreq keeps its own cache of 100,000 look-ups behind this one, which
# saves only the call path. At 500,000 entries (a word in eleven languages each, when
# the language is guessed) this cache was the largest thing in memory: ~65 MB at 20,000
# open stories, more than the stories themselves.
@lru_cache(maxsize=65_536)
def zipf(word: str, language: str = "en") -> float:
    """The word's Zipf frequency in ``language`` (0 for a word the table does not know:
    names, numbers, new words, which are the most telling ones)."""
    table = "large" if language in LARGE_TABLES else "small"
    return float(zipf_frequency(word, language, wordlist=table))


def guess_language(words: list[str], hint: str | None = None) -> str:
    """The language of ``words``: ``hint`` (the feed's, e.g. "de-DE") when it is one of
    `LANGUAGES`, else the language in whose table the words are most frequent.

    Good enough for weighing words (a German headline's "und" and "mit" must not count as
    rare); not a general language detector.
    """
    if hint:
        base = hint.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    if len(words) < 3:
        return "en"  # too little to tell: "twitter" alone is more frequent in Portuguese
    best, best_total = "en", sum(_table_zipf(word, "en") for word in words)
    for language in LANGUAGES[1:]:
        total = sum(_table_zipf(word, language) for word in words)
        if total > best_total + 0.5 * len(words):  # English unless clearly another
            best, best_total = language, total
    return best


def _table_zipf(word: str, language: str) -> float:
    """The word's Zipf frequency read straight from the language's table (a dict lookup,
    no cache: guessing asks every word in eleven languages, which filled the cache of
    `zipf` with entries used once). Only guessing uses it: ``word`` as the table spells
    it, without wordfreq's tokenizer, is close enough to choose a language."""
    table = "large" if language in LARGE_TABLES else "small"
    frequency = get_frequency_dict(language, table).get(word, 0.0)
    return math.log10(frequency) + 9.0 if frequency > 0 else 0.0


def rarity(word: str, language: str = "en", ceiling: float = RARITY_CEILING) -> float:
    """0 for the commonest words, up to ``ceiling`` for words the language never uses."""
    return max(0.0, ceiling - zipf(word, language))


def spread(open_stories: int, stories_with_word: int) -> float:
    """Inverse story frequency in [0, 1]: 1 for a word in no open story, towards 0 for a
    word in all of them. Normalised by the number of open stories, so the weight keeps
    its scale from the first story to the fifty-thousandth."""
    total = math.log(open_stories + 2)
    return math.log((open_stories + 2) / (stories_with_word + 1)) / total
