"""Named entities: spaCy NER plus the alias table, normalised and counted.

Two sources of mentions, in this order of precedence:

1. The alias table: every name of a canonical entity ("ISIS", "Daesh", "IS-K" -> Islamic
   State; "U.S." -> United States) is found by a phrase matcher, whether or not NER saw
   it. Aliases match case-insensitively; the ``exact`` ones only as written, and a short
   all-capitals exact alias such as "IS" is ignored inside an all-capitals headline
   ("THE WITCH IS DEAD"), where it is only the verb.
   Names in other languages (``names:`` in the table, e.g. Исламское государство,
   داعش, Islamischer Staat) are found in documents of their language, in all their
   inflected forms (`consumers.enrich.lemma_forms`), and only where the text writes
   them with a capital; each counts under the one canonical name, so an English and a
   Russian article about the same group count together. (Names written in lower case,
   as French "talibans" or Russian "талибы", are plain aliases, found everywhere.)
2. spaCy NER entities of the kinds users care about (people, organisations, places,
   nationalities and groups, events, facilities) that no alias mention overlaps, with a
   leading "the" and a trailing "'s" removed, and renamed when their text is an alias.

Each token of an alias mention carries its canonical name in ``token._.canonical`` so
that topic token patterns can say ``{"_": {"canonical": "Islamic State"}}``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

from consumers.enrich.lemma_forms import WordForms, forms_by_phrase
from consumers.enrich.nlp import BLANK_FALLBACK, report_label
from schemas.messages import EntityCount
from schemas.topics_file import AliasFile, normalise_alias

REPORTED_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "FAC"})
# A gazetteer name that NER finds inside a person's or organisation's name is part of
# that name: "Jordan" in "Michael Jordan", "Georgia" in "Georgia Tech".
NAME_LABELS = frozenset({"PERSON", "ORG", "FAC"})
CANONICAL = "canonical"
MAX_SURFACE_FORMS = 10
# No name of a person, group or place is this long: NER calling a megabyte-long "word" a
# PERSON (found by tests/hostile) would otherwise put it in the entities table, whose
# (name, label) index PostgreSQL refuses above ~2.7 KB, stalling the store.
MAX_NAME_CHARS = 200
NAME_CACHE = 50_000  # entity texts whose cleaning is remembered (a few MB at most)
_QUOTES = "'\"‘’“”"


@dataclass(frozen=True)
class Mention:
    """One mention of an entity: canonical name, label and token span [start, end).

    ``in_alias_table`` says the name and label are the alias table's, not NER's guess.
    """

    name: str
    label: str
    start: int
    end: int
    text: str
    in_alias_table: bool


class EntityFinder:
    """Finds and normalises entity mentions in docs made by one pipeline.

    Built once per pipeline and alias table; `mentions` is then a pure function of a doc
    (apart from setting ``token._.canonical`` on it).
    """

    def __init__(self, nlp: Language, aliases: AliasFile, language: str = "en",
                 book: WordForms | None = None) -> None:
        """``book`` holds the language's word forms (`WordForms`), to share one lookup
        of the lemma tables with the topic matcher."""
        if not Token.has_extension(CANONICAL):
            Token.set_extension(CANONICAL, default="")
        self._by_name: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        self._by_exact: dict[str, str] = {}
        self._names: dict[str, tuple[str, str | None]] = {}  # `_cleaned`
        self._loose = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        self._cased = PhraseMatcher(nlp.vocab, attr="LOWER")
        forms = _forms_of_names(aliases, language, book)
        for entity in aliases.entities:
            self._by_name[entity.name] = entity.label
            loose = {normalise_alias(name) for name in (entity.name, *entity.aliases)}
            self._by_key.update(dict.fromkeys(loose, entity.name))
            self._by_exact.update(dict.fromkeys(entity.exact, entity.name))
            if entity.cased:
                self._cased.add(entity.name, [nlp.make_doc(key) for key in sorted(loose)])
            else:
                self._loose.add(entity.name, [nlp.make_doc(key) for key in sorted(loose)])
            if entity.exact:
                self._exact.add(entity.name, [nlp.make_doc(name) for name in entity.exact])
            cased = _names_in(entity.names, language, forms) - loose
            self._by_key.update(dict.fromkeys(cased, entity.name))
            if cased:
                self._cased.add(entity.name, [nlp.make_doc(name) for name in sorted(cased)])

    def _cleaned(self, text: str) -> tuple[str, str | None]:
        """An entity's text cleaned (`_clean`) and the canonical name its normalised form
        is an alias of, if any: remembered, since names recur across articles."""
        found = self._names.get(text)
        if found is None:
            if len(self._names) >= NAME_CACHE:
                self._names.clear()
            cleaned = _clean(text)
            found = self._names[text] = (cleaned, self._by_key.get(normalise_alias(cleaned)))
        return found

    def mentions(self, doc: Doc) -> list[Mention]:
        """Alias mentions and reportable NER entities of ``doc``, in text order."""
        alias_spans = [
            Span(doc, start, end, label=match_id)
            for matcher in (self._loose, self._exact)
            for match_id, start, end in matcher(doc)
        ]
        alias_spans = [span for span in alias_spans if not _shouted(span)]
        ents = doc.ents  # a new tuple of Spans at every read: read once
        named = [ent for ent in ents if report_label(ent.label_) in NAME_LABELS]
        alias_spans += [span for span in self._cased(doc, as_spans=True)
                        if _capitalised(span) and not _inside_name(span, named)]
        found: list[Mention] = []
        taken: set[int] = set()
        for span in filter_spans(alias_spans):
            name = span.label_
            found.append(Mention(name, self._by_name[name], span.start, span.end, span.text,
                                 True))
            for token in span:
                token._.set(CANONICAL, name)
            taken.update(range(span.start, span.end))
        for ent in ents:
            label = report_label(ent.label_)
            if label not in REPORTED_LABELS or taken.intersection(range(ent.start, ent.end)):
                continue
            text, keyed = self._cleaned(ent.text)
            if not text or len(ent.text) > MAX_NAME_CHARS:
                continue
            canonical = keyed or (None if _shouted(ent) else self._by_exact.get(text))
            if canonical is None:
                found.append(Mention(text, label, ent.start, ent.end, ent.text, False))
            else:
                found.append(Mention(canonical, self._by_name[canonical], ent.start, ent.end,
                                     ent.text, True))
        found.sort(key=lambda mention: mention.start)
        return found


def count_entities(mentions: Iterable[Mention]) -> tuple[EntityCount, ...]:
    """Mentions grouped by canonical name, most mentioned first.

    A person named by surname alone ("Putin") is counted with the one full name in the
    same document that ends with it ("Vladimir Putin"); with two candidates it stays
    apart. The label is the alias table's when the name is in it, otherwise the label
    NER gave most often (the first seen on a tie).
    """
    mentions = _merge_surnames(list(mentions))
    counts: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    table_label: dict[str, str] = {}
    texts: dict[str, list[str]] = defaultdict(list)
    for mention in mentions:
        counts[mention.name] += 1
        labels[mention.name][mention.label] += 1
        if mention.in_alias_table:
            table_label[mention.name] = mention.label
        surface = " ".join(mention.text.split())
        if surface not in texts[mention.name] and len(texts[mention.name]) < MAX_SURFACE_FORMS:
            texts[mention.name].append(surface)
    ordered = sorted(counts, key=lambda name: (-counts[name], name))
    return tuple(
        EntityCount(
            name=name,
            label=table_label.get(name) or labels[name].most_common(1)[0][0],
            count=counts[name],
            texts=tuple(texts[name]),
        )
        for name in ordered
    )


def _merge_surnames(mentions: list[Mention]) -> list[Mention]:
    full_names: dict[str, set[str]] = defaultdict(set)
    for mention in mentions:
        if mention.label == "PERSON" and not mention.in_alias_table and " " in mention.name:
            full_names[mention.name.rsplit(" ", 1)[1]].add(mention.name)
    merged = []
    for mention in mentions:
        candidates = full_names.get(mention.name, set())
        if mention.label == "PERSON" and " " not in mention.name and len(candidates) == 1:
            mention = replace(mention, name=next(iter(candidates)))
        merged.append(mention)
    return merged


def _forms_of_names(aliases: AliasFile, language: str, book: WordForms | None
                    ) -> dict[str, set[str]]:
    """The inflected forms of every name the table gives in ``language``."""
    return forms_by_phrase(language, language_names(aliases, language), book=book)


def language_names(aliases: AliasFile, language: str) -> list[str]:
    """Every name the alias table gives in ``language``, normalised."""
    return [normalise_alias(name) for entity in aliases.entities
            for name in entity.names.get(language, ())]


def _names_in(names: dict[str, tuple[str, ...]], language: str,
              forms: dict[str, set[str]]) -> set[str]:
    """An entity's names for this language's matcher: the language's own, in all their
    forms. The generic ``xx`` pipeline (a language nothing is configured for) looks for
    every language's names as written."""
    if language == BLANK_FALLBACK:
        return {normalise_alias(name) for written in names.values() for name in written}
    keys = [normalise_alias(name) for name in names.get(language, ())]
    return {form for key in keys for form in forms.get(key, {key}) if form}


def _inside_name(span: Span, names: Sequence[Span]) -> bool:
    return any(ent.start <= span.start and span.end <= ent.end and ent.text != span.text
               for ent in names)


def _capitalised(span: Span) -> bool:
    """The name is written with a capital, or in a script without case (Arabic,
    Chinese): "Peru" is a country, "peru" a turkey."""
    first = next((char for char in span.text if char.isalpha()), "")
    return not first.islower()


def _clean(text: str) -> str:
    """'the Taliban's' -> 'Taliban': no leading article, possessive, quotes or spaces."""
    text = " ".join(text.split()).strip(_QUOTES + " ")
    text = re.sub(r"^(?:the|The|THE)\s+", "", text)
    text = re.sub(r"['’]s?$", "", text)
    return text.strip(_QUOTES + " -")


def _shouted(span: Span) -> bool:
    """An all-capitals short alias next to an all-capitals word: a verb in a headline."""
    if not (span.text.isupper() and len(span.text) <= 3):
        return False
    neighbours: Sequence[Token] = [
        token for token in (_word_near(span, -1), _word_near(span, +1)) if token is not None
    ]
    return any(token.text.isupper() and len(token.text) > 1 for token in neighbours)


def _word_near(span: Span, step: int) -> Token | None:
    doc = span.doc
    i = span.start - 1 if step < 0 else span.end
    while 0 <= i < len(doc):
        token = doc[i]
        if token.is_alpha:
            return token
        if not (token.is_punct or token.is_space or token.is_quote):
            return None
        i += step
    return None
