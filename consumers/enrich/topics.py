"""Topic definitions compiled to matchers, and the scoring of one document.

How a document is scored for a topic:

1. Every rule, constraint and exclusion finds its spans: phrases (all word forms, on
   lower-case tokens), token patterns, alias-table entities and NER labels.
2. An exclusion with ``scope: overlap`` removes the rule and constraint spans it
   overlaps ("facial recognition" removes "recognition"; "like ISIS" removes that
   mention of the Islamic State as an actor); with ``scope: sentence`` it removes every
   span in its sentence ("drug test", "honours list"); with ``scope: lead``, found in the
   title or lead (the first sentence after the title) while none of the constraints it
   names in ``unless`` is, it removes every span after the lead (a Taliban attack report
   that names the Islamic State in its last sentence is the Taliban's story).
3. A rule's span counts only if each constraint it ``requires`` has a span within reach:
   the same sentence, the same document, or n tokens either side in the same sentence.
4. Of overlapping evidence ("drug dealers" found by two rules) only the heaviest counts.
5. The score is a noisy-OR of the evidence: ``1 - prod(1 - w)``, where ``w`` is the
   rule's weight, multiplied by the topic's ``title_weight`` for evidence in the title
   (capped at 0.99), and halved for each further match of the same rule (w, w/2, w/4,
   ...), so a phrase repeated does not add up like independent evidence and a long
   article with one passing mention scores like a short one.

Each language has its own matcher (``language``): English uses the parts' ``phrases`` and
``patterns``, another language the phrases its ``languages`` block gives each part;
entities and labels count in every language.

A topic is hit when its score reaches its threshold. The same inputs always give the same
score: nothing here is learned or random.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from consumers.enrich.anchors import FilteredMatcher, Forms, KeyFilter, Pattern, doc_forms
from consumers.enrich.entities import Mention
from consumers.enrich.forms import phrase_forms
from consumers.enrich.lemma_forms import WordForms
from consumers.enrich.lemma_forms import phrase_forms as language_forms
from consumers.enrich.marks import CanonicalMarks, marked_patterns
from newswatch.errors import ConfigError
from schemas.messages import EvidenceSpan, TopicHit
from schemas.topics_file import Finder, LoadedTopics, Rule, Topic, describe_problem

DEFAULT_TOPICS_PATH = Path(__file__).resolve().parent / "topics.yaml"
MAX_EVIDENCE = 12
MAX_SENTENCE_CHARS = 600
MAX_WEIGHT = 0.99


@dataclass(frozen=True)
class _Part:
    """Where a compiled finder belongs: topic, kind (rule/constraint/exclusion), name."""

    topic: str
    kind: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.topic}\x1f{self.kind}\x1f{self.name}"


@dataclass(frozen=True)
class Scored:
    """A topic's score for one document, its evidence, and whether it is a hit."""

    topic: str
    score: float
    hit: bool
    evidence: tuple[EvidenceSpan, ...]

    def as_hit(self) -> TopicHit:
        return TopicHit(topic=self.topic, score=self.score, evidence=self.evidence)


class TopicMatcher:
    """All topics of a topics file, compiled into one phrase matcher and two Matchers.

    Compiling validates every token pattern with spaCy and raises `ConfigError` naming
    the topic and field of a bad one. ``score(doc, mentions, title_end)`` is then a pure
    function of its arguments.

    Exclusion patterns run only on the sentences where a topic has candidate evidence:
    elsewhere they cannot cancel anything, and token patterns (unlike phrases) cost time
    on every token they are run over. Both run behind a pre-filter on the words their
    patterns need (`consumers.enrich.anchors`): a pattern whose words are absent from the
    doc (or sentence) is not run, which changes no result (``prefilter=False`` runs every
    pattern everywhere, the reference the tests compare with). With the pre-filter, a
    sentence runs only the exclusions its words allow, and exclusions that test
    ``token._.canonical`` run on marks in ``ENT_ID`` instead (`consumers.enrich.marks`),
    which spaCy reads in C rather than an extension per token in Python.
    """

    def __init__(self, nlp: Language, loaded: LoadedTopics, language: str = "en",
                 book: WordForms | None = None, prefilter: bool = True) -> None:
        """``language`` chooses the phrases; ``book`` holds its word forms (built here
        from the topics' phrases in that language when not given)."""
        self.version = loaded.version
        self.language = language
        self._book = book if book is not None or language == "en" else WordForms(
            language, topic_phrases(loaded, language))
        self.topics: dict[str, Topic] = dict(loaded.topics.topics)
        self._phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._patterns = Matcher(nlp.vocab, validate=True)
        self._exclusion_patterns: dict[str, Matcher] = {
            name: Matcher(nlp.vocab, validate=True) for name in self.topics}
        # Topics with a ``scope: lead`` exclusion: their lead is always searched for it.
        self._lead_scoped = frozenset(
            name for name, topic in self.topics.items()
            if any(exclusion.scope == "lead" for exclusion in topic.exclusions))
        self._finders: dict[str, tuple[_Part, Finder]] = {}
        # Each key's token patterns, as added to the matchers, for the pre-filter.
        self._pattern_lists: dict[str, list[Pattern]] = defaultdict(list)
        self._exclusion_lists: dict[str, dict[str, list[Pattern]]] = defaultdict(
            lambda: defaultdict(list))
        for name, topic in self.topics.items():
            for i, rule in enumerate(topic.rules):
                self._compile(nlp, _Part(name, "rules", rule.name), rule,
                              ("topics", name, "rules", i), loaded.path,
                              topic.phrases_in(language, "rules", rule.name, rule.phrases))
            for cname, constraint in topic.constraints.items():
                self._compile(nlp, _Part(name, "constraints", cname), constraint,
                              ("topics", name, "constraints", cname), loaded.path,
                              topic.phrases_in(language, "constraints", cname,
                                               constraint.phrases))
            for i, exclusion in enumerate(topic.exclusions):
                self._compile(nlp, _Part(name, "exclusions", str(i)), exclusion,
                              ("topics", name, "exclusions", i), loaded.path,
                              topic.phrases_in(language, "exclusions", exclusion.name,
                                               exclusion.phrases) if exclusion.name
                              or language == "en" else ())
        self._prefilter = prefilter
        # The parts that count entity mentions, in `_finders` order (the order spans are
        # found in): read once here instead of testing every part for every document.
        self._entity_finders = [(key, finder.entities, finder.labels)
                                for key, (_, finder) in self._finders.items()
                                if finder.entities or finder.labels]
        self._filtered = FilteredMatcher(nlp.vocab, self._patterns, self._pattern_lists)
        self._exclusion_filters = {topic: KeyFilter(lists)
                                   for topic, lists in self._exclusion_lists.items()}
        self._exclusion_filtered: dict[str, FilteredMatcher] = {}
        self._marked: set[str] = set()  # topics whose exclusions run on marks (below)
        for name, lists in self._exclusion_lists.items():
            self._exclusion_filtered[name] = self._exclusions_matcher(nlp, name, lists)

    def _exclusions_matcher(self, nlp: Language, topic: str,
                            lists: dict[str, list[Pattern]]) -> FilteredMatcher:
        """The pre-filtered matcher of a topic's exclusions; where they test
        ``token._.canonical``, one of the same patterns testing the marks instead
        (`consumers.enrich.marks`: the same matches, without reading the extension of
        every token), recorded in ``_marked``."""
        marked = marked_patterns(lists)
        if marked is None:
            return FilteredMatcher(nlp.vocab, self._exclusion_patterns[topic], lists)
        matcher = Matcher(nlp.vocab, validate=True)
        for key, patterns in marked.items():
            matcher.add(key, [[dict(spec) for spec in pattern] for pattern in patterns],
                        greedy="LONGEST")
        self._marked.add(topic)
        return FilteredMatcher(nlp.vocab, matcher, marked)

    def _compile(self, nlp: Language, part: _Part, finder: Finder,
                 loc: tuple[int | str, ...], path: Path, phrases: tuple[str, ...]) -> None:
        """Compile one part: ``phrases`` are the ones for this matcher's language; token
        patterns are written against English words, so only English uses them."""
        self._finders[part.key] = (part, finder)
        if self.language == "en":
            forms = sorted({form for phrase in phrases
                            for form in phrase_forms(phrase, finder.inflect)})
        else:
            forms = sorted(language_forms(self.language, phrases, finder.inflect, self._book))
        if forms:
            self._phrases.add(part.key, [nlp.make_doc(form) for form in forms])
        matcher = (self._exclusion_patterns[part.topic] if part.kind == "exclusions"
                   else self._patterns)
        lists = (self._exclusion_lists[part.topic] if part.kind == "exclusions"
                 else self._pattern_lists)
        for i, pattern in enumerate(finder.patterns if self.language == "en" else ()):
            try:
                matcher.add(part.key, [pattern], greedy="LONGEST")
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(describe_problem(
                    path, (*loc, "patterns", i),
                    f"not a valid spaCy token pattern: {_first_line(exc)}")) from exc
            lists[part.key].append(pattern)

    def score(self, doc: Doc, mentions: Sequence[Mention], title_end: int = 0,
              text: str | None = None) -> list[Scored]:
        """Score every topic on ``doc``; ``title_end`` is the character where the title ends.

        ``mentions`` are the doc's entity mentions (`EntityFinder.mentions`). ``text``, when
        given, must be the text the doc was made from (``doc.text``, which spaCy rebuilds
        token by token at every read): evidence phrases and sentences are cut from it.
        """
        sentences = list(doc.sents)
        sentence_of = _sentence_index(doc, sentences)
        lead = _lead_end(sentences, title_end)
        found = self._find(doc, mentions, sentences, sentence_of, lead)
        texts = _SentenceTexts(doc, sentences, sentence_of, text)
        return [
            self._score_topic(name, topic, found, sentence_of, title_end, lead, texts)
            for name, topic in self.topics.items()
        ]

    def _find(self, doc: Doc, mentions: Sequence[Mention], sentences: Sequence[Span],
              sentence_of: list[int], lead: int) -> dict[str, list[Span]]:
        spans: dict[str, list[Span]] = defaultdict(list)
        for span in self._phrases(doc, as_spans=True):
            spans[span.label_].append(span)
        words = doc_forms(doc) if self._prefilter else None
        forms = Forms.of(words) if words is not None else None
        if len(self._patterns):
            found = (self._filtered(doc, forms, words) if forms is not None
                     else self._patterns(doc, as_spans=True))
            for span in found:
                spans[span.label_].append(span)
        for key, entities, labels in self._entity_finders:
            for mention in mentions:
                if mention.name in entities or mention.label in labels:
                    spans[key].append(doc[mention.start:mention.end])
        marks = CanonicalMarks(doc, mentions)
        try:
            self._find_exclusions(spans, sentences, sentence_of, lead, words, forms, marks)
        finally:
            marks.restore()
        # One span is its own longest non-overlapping set: `filter_spans` of [s] is [s].
        return {key: filter_spans(found) if len(found) > 1 else found
                for key, found in spans.items()}

    def _find_exclusions(self, spans: dict[str, list[Span]], sentences: Sequence[Span],
                         sentence_of: list[int], lead: int, words: np.ndarray | None,
                         forms: Forms | None, marks: CanonicalMarks) -> None:
        """Add the exclusions' pattern spans in the sentences where they could matter
        (`_candidate_sentences`) to ``spans``; marks are applied where a topic's
        exclusions run on them (the caller restores them)."""
        for topic, sentence_indexes in self._candidate_sentences(spans, sentence_of).items():
            matcher = self._exclusion_patterns[topic]
            if topic in self._lead_scoped:
                sentence_indexes |= set(range(min(lead, len(sentences))))
            if not len(matcher):
                continue
            possible = self._exclusion_filters[topic]
            if forms is not None and not possible.any_possible(forms):
                continue  # none of the words its patterns need is in the doc
            only_possible = self._exclusion_filtered[topic]
            for index in sorted(sentence_indexes):
                sentence = sentences[index]
                if words is None:
                    found = matcher(sentence, as_spans=True)
                else:
                    # Only the exclusions whose words the sentence holds are run: a
                    # matcher of that subset, or none when there are none.
                    sentence_forms = Forms.of(words[sentence.start:sentence.end])
                    if topic in self._marked:
                        marks.apply()
                    found = only_possible(sentence, sentence_forms)
                for span in found:
                    spans[span.label_].append(span)

    def _candidate_sentences(self, spans: dict[str, list[Span]], sentence_of: list[int]
                             ) -> dict[str, set[int]]:
        """Per topic with a live rule span: the sentences where an exclusion could matter.

        A rule span is live when every constraint its rule requires was found somewhere.
        The sentences hold live rule spans, or spans of document-wide constraints; a
        sentence- or window-scoped constraint only counts beside a rule span anyway.
        """
        by_topic: dict[str, set[int]] = defaultdict(set)
        wide: dict[str, set[int]] = defaultdict(set)
        for key, found in spans.items():
            part, finder = self._finders[key]
            if part.kind == "rules" and isinstance(finder, Rule) and all(
                    spans.get(_Part(part.topic, "constraints", needed).key)
                    for needed in finder.requires):
                by_topic[part.topic].update(sentence_of[span.start] for span in found)
            elif part.kind == "constraints" and (
                    self.topics[part.topic].constraints[part.name].within == "document"):
                wide[part.topic].update(sentence_of[span.start] for span in found)
        return {topic: indexes | wide[topic] for topic, indexes in by_topic.items() if indexes}

    def _score_topic(self, name: str, topic: Topic, found: dict[str, list[Span]],
                     sentence_of: list[int], title_end: int, lead: int,
                     texts: _SentenceTexts) -> Scored:
        def spans_of(kind: str, part: str) -> list[Span]:
            return found.get(_Part(name, kind, part).key, [])

        def in_lead(spans: Sequence[Span]) -> bool:
            return any(sentence_of[span.start] < lead for span in spans)

        blocked_tokens: set[int] = set()
        blocked_sentences: set[int] = set()
        after_lead_blocked = False
        for i, exclusion in enumerate(topic.exclusions):
            for span in spans_of("exclusions", str(i)):
                if exclusion.scope == "overlap":
                    blocked_tokens.update(range(span.start, span.end))
                elif exclusion.scope == "sentence":
                    blocked_sentences.add(sentence_of[span.start])
            if exclusion.scope == "lead" and in_lead(spans_of("exclusions", str(i))) and not any(
                    in_lead(spans_of("constraints", needed)) for needed in exclusion.unless):
                after_lead_blocked = True

        def allowed(span: Span) -> bool:
            return (sentence_of[span.start] not in blocked_sentences
                    and not (after_lead_blocked and sentence_of[span.start] >= lead)
                    and not blocked_tokens.intersection(range(span.start, span.end)))

        constraint_spans = {
            cname: [span for span in spans_of("constraints", cname) if allowed(span)]
            for cname in topic.constraints
        }
        evidence: list[tuple[Span, str, float]] = []
        for rule in topic.rules:
            for span in spans_of("rules", rule.name):
                if not allowed(span):
                    continue
                if all(_within(span, constraint_spans[needed],
                               topic.constraints[needed].within, sentence_of)
                       for needed in rule.requires):
                    weight = rule.weight
                    if span.start_char < title_end:
                        weight = min(MAX_WEIGHT, weight * topic.title_weight)
                    evidence.append((span, rule.name, weight))
        evidence = _strongest_without_overlap(evidence)
        score = _noisy_or(evidence)
        # Only what is reported is built (the score counted all of it).
        spans = tuple(texts.evidence(span, rule) for span, rule, _ in evidence[:MAX_EVIDENCE])
        return Scored(topic=name, score=score, hit=score >= topic.threshold, evidence=spans)


def topic_phrases(loaded: LoadedTopics, language: str) -> list[str]:
    """Every phrase the topics give in ``language`` (English: the parts' own phrases)."""
    out: list[str] = []
    for topic in loaded.topics.topics.values():
        if language == "en":
            finders = [*topic.rules, *topic.constraints.values(), *topic.exclusions]
            out += [phrase for finder in finders for phrase in finder.phrases]
            continue
        phrases = topic.languages.get(language)
        if phrases is not None:
            for part in (phrases.rules, phrases.constraints, phrases.exclusions):
                out += [phrase for found in part.values() for phrase in found]
    return out


def _strongest_without_overlap(evidence: list[tuple[Span, str, float]]
                               ) -> list[tuple[Span, str, float]]:
    """Evidence in text order, where of overlapping spans only the heaviest counts.

    "drug dealers" found by two rules is one piece of evidence, not two.
    """
    kept: list[tuple[Span, str, float]] = []
    taken: set[int] = set()
    for item in sorted(evidence, key=lambda item: (-item[2], item[0].start)):
        tokens = range(item[0].start, item[0].end)
        if not taken.intersection(tokens):
            kept.append(item)
            taken.update(tokens)
    return sorted(kept, key=lambda item: (item[0].start, item[0].end))


def _noisy_or(evidence: Sequence[tuple[Span, str, float]]) -> float:
    """1 - prod(1 - w); the n-th match of the same rule counts w / 2**(n-1).

    Bounded for any number of matches: the halving is `math.ldexp` on a float (which
    underflows to 0.0), never an integer power (``2**1024`` does not convert to a float:
    an article repeating one phrase 1,030 times was dead-lettered, issue 16).
    """
    seen: dict[str, int] = defaultdict(int)
    remaining = 1.0
    for _, rule, weight in sorted(evidence, key=lambda item: -item[2]):
        remaining *= 1.0 - math.ldexp(weight, -seen[rule])
        seen[rule] += 1
    return round(min(1.0, max(0.0, 1.0 - remaining)), 4)


def _within(span: Span, candidates: Sequence[Span], within: str | int,
            sentence_of: list[int]) -> bool:
    if within == "document":
        return bool(candidates)
    if within == "sentence":
        sentence = sentence_of[span.start]
        return any(sentence_of[other.start] == sentence for other in candidates)
    reach, sentence = int(within), sentence_of[span.start]
    return any(other.start < span.end + reach and span.start < other.end + reach
               and sentence_of[other.start] == sentence for other in candidates)


def _lead_end(sentences: Sequence[Span], title_end: int) -> int:
    """The index of the first sentence after the lead: the title's sentences (those that
    start before ``title_end``) and the one after them."""
    return sum(1 for sentence in sentences if sentence.start_char < title_end) + 1


def _sentence_index(doc: Doc, sentences: Sequence[Span]) -> list[int]:
    index = [0] * len(doc)
    for number, sentence in enumerate(sentences):
        for i in range(sentence.start, sentence.end):
            index[i] = number
    return index


class _SentenceTexts:
    """The text of each sentence of one doc, read from the doc's text by character
    offsets and built once however many evidence spans it holds: the same text as
    ``span.sent.text`` (the sentence holding the span's first token, as spaCy finds it
    from the sentence-start flags), without walking tokens for each span."""

    def __init__(self, doc: Doc, sentences: Sequence[Span], sentence_of: list[int],
                 text: str | None = None) -> None:
        """``text``: the text ``doc`` was made from, if known (else ``doc.text``, read once
        when first needed)."""
        self._doc = doc
        self._sentences = sentences
        self._sentence_of = sentence_of
        self._text: str | None = text
        self._stripped: dict[int, str] = {}

    def evidence(self, span: Span, rule: str) -> EvidenceSpan:
        start, end = span.start_char, span.end_char
        return EvidenceSpan(phrase=self.text[start:end], start=start, end=end,
                            sentence=self._around(span, start, end), rule=rule)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._doc.text
        return self._text

    def _around(self, span: Span, start: int, end: int) -> str:
        """The span's sentence; of a run-on 'sentence' only a window around the phrase."""
        index = self._sentence_of[span.start]
        stripped = self._stripped.get(index)
        sentence = self._sentences[index]
        if stripped is None:
            stripped = self._stripped[index] = self.sentence_text(index).strip()
        if len(stripped) <= MAX_SENTENCE_CHARS:
            return stripped
        text = self.sentence_text(index)
        middle = (start + end) // 2 - sentence.start_char
        begin = max(0, middle - MAX_SENTENCE_CHARS // 2)
        window = text[begin:begin + MAX_SENTENCE_CHARS].strip()
        return ("…" if begin > 0 else "") + window + "…"

    def sentence_text(self, index: int) -> str:
        sentence = self._sentences[index]
        return self.text[sentence.start_char:sentence.end_char]


def _first_line(exc: Exception) -> str:
    """spaCy's message without its banner and rule key, on one line."""
    lines = [line.strip(" -") for line in str(exc).splitlines() if line.strip()]
    details = [line for line in lines
               if not line.startswith(("Invalid token patterns", "Pattern "))]
    return "; ".join(details)[:300] or type(exc).__name__

