"""How much a shared word says that two articles report the same event.

A word's weight blends two signals:

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

from wordfreq import zipf_frequency

# Zipf scale: 7.7 "the", ~5 "market", ~3.4 "snowden", 0 never seen. A word at or above
# the ceiling gets no rarity weight.
RARITY_CEILING = 7.0


@lru_cache(maxsize=200_000)
def zipf(word: str) -> float:
    """The word's Zipf frequency in English (0 for a word the table does not know:
    names, numbers, new words, which are the most telling ones)."""
    return float(zipf_frequency(word, "en"))


def rarity(word: str, ceiling: float = RARITY_CEILING) -> float:
    """0 for the commonest words, up to ``ceiling`` for words English never uses."""
    return max(0.0, ceiling - zipf(word))


def spread(open_stories: int, stories_with_word: int) -> float:
    """Inverse story frequency in [0, 1]: 1 for a word in no open story, towards 0 for a
    word in all of them. Normalised by the number of open stories, so the weight keeps
    its scale from the first story to the fifty-thousandth."""
    total = math.log(open_stories + 2)
    return math.log((open_stories + 2) / (stories_with_word + 1)) / total
