"""Word forms: how a phrase written once matches all its inflections.

Topics are matched on lemmas in spirit ("recognise" finds "recognised", "recognizes",
"recognising") but not by running spaCy's lemmatizer: that needs the tagger and its
shared tok2vec, which cut throughput from ~12.4k to ~8.0k words per CPU second on this
machine (``bench/bench_enrich.py --pipelines``). Instead each phrase is expanded once,
when topics are compiled, into its regular English inflections and British/American
spellings, and documents are matched on lower-case tokens. That is as good as lemmas
for the regular words topics are made of; an irregular form ("fought", "caught") is
listed as a phrase of its own.

Over-generation is harmless: a form that is not a word never occurs in text.
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

Inflect = Literal["all", "nouns", "none"]

VOWELS = frozenset("aeiou")
MAX_FORMS_PER_PHRASE = 512

# Never inflected: "of" must not become "ofs", nor "us" "uses".
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "without",
    "into", "onto", "over", "under", "as", "and", "or", "but", "nor", "not", "no", "is", "are",
    "was", "were", "be", "been", "being", "has", "have", "had", "do", "does", "did", "this",
    "that", "these", "those", "it", "its", "he", "she", "they", "them", "his", "her", "their",
    "we", "us", "our", "you", "your", "i", "me", "my", "who", "whom", "whose", "which", "what",
    "than", "then", "so", "such", "very", "more", "most", "less", "least", "all", "any",
    "some", "each", "every", "both", "either", "neither", "up", "down", "out", "off", "about",
    "after", "before", "between", "against", "during", "via", "per",
})

# Already inflected, or a noun by its suffix: only a plural, never "recognitioned".
NOUN_SUFFIXES = ("ing", "tion", "sion", "ment", "ness", "ity", "ism", "ship", "ance", "ence")

_SPELLING = (
    (re.compile(r"is(e|es|ed|ing|ation|ations)$"), r"iz\1"),
    (re.compile(r"iz(e|es|ed|ing|ation|ations)$"), r"is\1"),
    (re.compile(r"ys(e|es|ed|ing)$"), r"yz\1"),
    (re.compile(r"yz(e|es|ed|ing)$"), r"ys\1"),
)


def phrase_forms(phrase: str, inflect: Inflect = "all") -> set[str]:
    """Every form of a phrase: each word in its inflections, hyphen and space variants.

    ``phrase`` is lower-cased; with ``inflect="none"`` only the hyphen/space variants of
    the phrase as written are returned. The result never has more than 512 forms.
    """
    words = phrase.lower().split()
    if not words:
        return set()
    choices = [sorted(word_forms(word, inflect)) for word in words]
    forms: set[str] = set()
    for combo in itertools.product(*choices):
        for joined in _joinings(combo):
            forms.add(joined)
            if len(forms) >= MAX_FORMS_PER_PHRASE:
                return forms
    return forms


def word_forms(word: str, inflect: Inflect = "all") -> set[str]:
    """One word's forms: itself, plus inflections of its last hyphen-separated part."""
    word = word.lower()
    if inflect == "none" or word in FUNCTION_WORDS:
        return {word}
    head, sep, last = word.rpartition("-")
    if not last.isalpha() or len(last) < 2:
        return {word}
    if last.endswith("s") and not last.endswith(("ss", "us", "is")):
        forms = {last}  # already a plural or a third person: 'traffickers', 'seizes'
    elif inflect == "nouns":
        forms = _noun_forms(last)
    else:
        forms = _all_forms(last)
    forms |= {variant for form in forms for variant in _spellings(form)}
    return {head + sep + form for form in forms}


def _joinings(words: tuple[str, ...]) -> set[str]:
    """'drug trafficking' also as 'drug-trafficking', and a hyphenated word spaced out."""
    if len(words) == 1:
        word = words[0]
        return {word, word.replace("-", " ")} if "-" in word and " " not in word else {word}
    out = {" ".join(words)}
    if len(words) <= 4:
        for seps in itertools.product((" ", "-"), repeat=len(words) - 1):
            text = words[0]
            for previous, sep, word in zip(words[:-1], seps, words[1:], strict=True):
                content = previous not in FUNCTION_WORDS and word not in FUNCTION_WORDS
                text += (sep if content else " ") + word
            out.add(text)
    return out


def _noun_forms(word: str) -> set[str]:
    return {word, _plural(word)}


def _all_forms(word: str) -> set[str]:
    if word.endswith("ed") or word.endswith(NOUN_SUFFIXES):
        return _noun_forms(word) if not word.endswith("ed") else {word}
    forms = {word, _plural(word)}
    if word.endswith("ic"):
        return forms | {word + "ked", word + "king"}
    if word.endswith("e"):
        forms.add(word + "d")
        if word.endswith("ie"):
            forms.add(word[:-2] + "ying")
        elif word.endswith(("ee", "ye", "oe")):
            forms.add(word + "ing")
        else:
            forms.add(word[:-1] + "ing")
        return forms
    if word.endswith("y") and len(word) > 2 and word[-2] not in VOWELS:
        return forms | {word[:-1] + "ied", word + "ing"}
    forms |= {word + "ed", word + "ing"}
    if _ends_cvc(word):
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return forms


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 2 and word[-2] not in VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def _ends_cvc(word: str) -> bool:
    """'plot', 'kidnap', 'ban': a consonant doubles before -ed/-ing."""
    if len(word) < 3:
        return False
    a, b, c = word[-3], word[-2], word[-1]
    return a not in VOWELS and b in VOWELS and c not in VOWELS and c not in "wxy"


def _spellings(form: str) -> set[str]:
    out = {form}
    for pattern, replacement in _SPELLING:
        out.add(pattern.sub(replacement, form))
    return out
