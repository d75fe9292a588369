"""Word forms in languages other than English: a phrase written once matches its
inflections ("Anschlag" finds "Anschläge", "Anschlägen"; "государство" finds
"государства", "государством").

Like `consumers.enrich.forms` for English, phrases are expanded once, when topics are
compiled, and documents are matched on lower-case tokens: no lemmatizer runs per token.
The forms come from spaCy's lemma lookup tables (the ``spacy-lookups-data`` package:
form -> lemma for de, es, fr, pt, ru, tr, and pl by part of speech). Each word of a
phrase is looked up to its lemma, and every form the table maps to that lemma is a form
of the word. Only the lemmas the phrases need are kept: the tables themselves (0.4-4 s
and up to ~1 GB to read for Polish) are read once per process and language and dropped.

Arabic has no table: there a word's forms are the word with the proclitics written onto
it (و, ف, ب, ل, ك, and the article ال merging with ل into لل), with and without hamza on
an initial alef; suffixes are written out in the phrases themselves.

A word the table does not know keeps just its own spelling, plus what the phrase lists:
explicit forms always work. Over-generation is harmless: a form not in a document costs
nothing.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from consumers.enrich.forms import MAX_FORMS_PER_PHRASE, Inflect

log = logging.getLogger(__name__)

LOOKUP_TABLES: dict[str, tuple[str, ...]] = {
    "de": ("de_lemma_lookup",),
    "es": ("es_lemma_lookup",),
    "fr": ("fr_lemma_lookup",),
    "pt": ("pt_lemma_lookup",),
    "ru": ("ru_lemma_lookup",),
    "tr": ("tr_lemma_lookup",),
    "pl": ("pl_lemma_lookup_noun", "pl_lemma_lookup_adj", "pl_lemma_lookup_verb"),
}
MAX_FORMS_PER_WORD = 500  # a lemma with more forms than this is a table artefact
# Turkish modifiers do not inflect ("uyuşturucu kaçakçılığı", "uyuşturucu kaçakçılarının"):
# only a phrase's last word takes its forms, which keeps agglutination's hundreds of forms
# from multiplying.
HEAD_FINAL = frozenset({"tr"})
_FORM = re.compile(r"^[^\W\d_]+(?:-[^\W\d_]+)*$")
ARABIC_PROCLITICS = ("و", "ف", "ب", "ل", "ك", "وب", "ول", "فب", "فل")
_ARABIC_ALEFS = "أإآ"


def phrase_forms(language: str, phrases: Iterable[str], inflect: Inflect = "all",
                 book: WordForms | None = None) -> set[str]:
    """Every form of every phrase in ``language`` (lower case), at most
    ``MAX_FORMS_PER_PHRASE`` per phrase; ``inflect="none"`` keeps phrases as written."""
    return {form for forms in forms_by_phrase(language, phrases, inflect, book).values()
            for form in forms}


class WordForms:
    """The forms of a set of words of one language, from one pass over its tables.

    Build one per language with every word its phrases and names use (reading a table
    costs up to seconds), and share it between the entity finder and topic matcher.
    """

    def __init__(self, language: str, phrases: Iterable[str] = ()) -> None:
        self.language = language
        self._forms = word_forms(language, frozenset(
            word for phrase in phrases for word in normalise(phrase).split()))

    def of(self, word: str) -> set[str]:
        """The word's forms; a word it was not built with is looked up on its own."""
        if word not in self._forms:
            self._forms.update(word_forms(self.language, frozenset({word})))
        return self._forms[word]


def normalise(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def forms_by_phrase(language: str, phrases: Iterable[str], inflect: Inflect = "all",
                    book: WordForms | None = None) -> dict[str, set[str]]:
    """Each phrase (normalised: lower case, single spaces) with its forms; ``book`` has
    the language's word forms already (else they are looked up for these phrases)."""
    keys = [normalise(phrase) for phrase in phrases]
    keys = [key for key in dict.fromkeys(keys) if key]
    if inflect == "none":
        return {key: {key} for key in keys}
    if book is None:
        book = WordForms(language, keys)
    forms_of = {word: book.of(word) for key in keys for word in key.split()}
    out: dict[str, set[str]] = {}
    for key in keys:
        words_of = key.split()
        choices = [sorted(forms_of.get(word, {word})) if (
            language not in HEAD_FINAL or i == len(words_of) - 1) else [word]
            for i, word in enumerate(words_of)]
        if language == "ar":
            choices[0] = sorted(arabic_forms(choices[0]))
        # The phrase as written is always a form: a long phrase of inflecting words has
        # more than MAX_FORMS_PER_PHRASE combinations, and the cut used to drop it
        # ("ingreso en las Naciones Unidas" matched nothing, not even itself).
        found: set[str] = {key}
        for count, combo in enumerate(itertools.product(*choices)):
            if count >= MAX_FORMS_PER_PHRASE:
                break
            found.add(" ".join(combo))
        out[key] = found
    return out


def word_forms(language: str, words: frozenset[str]) -> dict[str, set[str]]:
    """Each word's forms from the language's lemma table (itself only, without one)."""
    if language not in LOOKUP_TABLES:
        return {word: {word} for word in words}
    return {word: set(forms) for word, forms in _table_forms(language, words).items()}


def has_lookup_table(language: str) -> bool:
    return language in LOOKUP_TABLES


@lru_cache(maxsize=32)
def _table_forms(language: str, words: frozenset[str]) -> dict[str, frozenset[str]]:
    forms: dict[str, set[str]] = defaultdict(set)
    tables = [_read_table(name) for name in LOOKUP_TABLES[language]]
    wanted: dict[str, set[str]] = defaultdict(set)  # lemma -> the phrase words it serves
    for word in words:
        lemmas = {lemma for table in tables for lemma in _lemmas(table.get(word))} | {word}
        for lemma in lemmas:
            wanted[lemma.lower()].add(word)
    for table in tables:
        for form, value in table.items():
            for lemma in _lemmas(value):
                for word in wanted.get(lemma.lower(), ()):
                    if _FORM.match(form):  # "(исламскою)", "kaçakçılık'ta": not a token
                        forms[word].add(form.lower())
    del tables
    out: dict[str, frozenset[str]] = {}
    for word in words:
        found = forms.get(word, set())
        if len(found) > MAX_FORMS_PER_WORD:
            log.warning("lemma table gives too many forms: keeping the word as written",
                        extra={"language": language, "word": word, "forms": len(found)})
            found = set()
        out[word] = frozenset(found | {word})
    return out


def _lemmas(value: str | list[str] | None) -> list[str]:
    """A table's value: one lemma, or (French) a list of them."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _read_table(name: str) -> dict[str, str | list[str]]:
    """One lookup table of spacy-lookups-data, form -> lemma."""
    data = resources.files("spacy_lookups_data").joinpath("data", f"{name}.json.gz")
    with data.open("rb") as raw, gzip.open(raw) as unzipped:
        table: dict[str, str | list[str]] = json.load(unzipped)
    return table


def arabic_forms(words: Iterable[str]) -> set[str]:
    """Arabic words with the proclitics that are written onto them, and with a bare alef
    for an initial hamza-alef (news copy often drops the hamza)."""
    out: set[str] = set()
    for word in words:
        spellings = {word}
        for i, char in enumerate(word[:3]):
            if char in _ARABIC_ALEFS:
                spellings.add(word[:i] + "ا" + word[i + 1:])
        for spelling in spellings:
            out.add(spelling)
            for clitic in ARABIC_PROCLITICS:
                if spelling.startswith("ال") and clitic.endswith("ل"):
                    out.add(clitic + spelling[1:])  # ل + ال -> لل
                else:
                    out.add(clitic + spelling)
    return out
