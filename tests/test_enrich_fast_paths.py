"""The enricher's faster ways of computing what it computed before give the same values:
evidence sentences read by character offsets against spaCy's own ``span.sent``, the
relevance features counted from slot lists against counting them one by one (values and
key order, which the probability's dot product sums in), and token patterns run near
their anchor words against the `Matcher` over the whole doc."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import spacy
from spacy.matcher import Matcher
from spacy.tokens import Doc
from spacy.util import filter_spans

from bench.fulltext_corpus import fulltext_articles
from consumers.enrich.anchors import FilteredMatcher, Forms, doc_forms, pattern_length
from consumers.enrich.enrich import Enricher, sentence_and_entity_offsets
from consumers.enrich.entities import CANONICAL, Mention
from consumers.enrich.marks import MARK, CanonicalMarks, marked_pattern
from consumers.enrich.relevance import _WORD, EntitySpan, Featuriser, Sparse
from consumers.enrich.topics import MAX_SENTENCE_CHARS, _sentence_index, _SentenceTexts
from schemas.messages import EvidenceSpan


def reference_evidence(doc: Doc, start: int, end: int, rule: str) -> EvidenceSpan:
    """The evidence as built before: from spaCy's span and its ``sent``."""
    span = doc[start:end]
    sentence = span.sent
    text = sentence.text.strip()
    if len(text) > MAX_SENTENCE_CHARS:
        middle = (span.start_char + span.end_char) // 2 - sentence.start_char
        begin = max(0, middle - MAX_SENTENCE_CHARS // 2)
        window = sentence.text[begin:begin + MAX_SENTENCE_CHARS].strip()
        text = ("…" if begin > 0 else "") + window + "…"
    return EvidenceSpan(phrase=span.text, start=span.start_char, end=span.end_char,
                        sentence=text, rule=rule)


@pytest.fixture(scope="module")
def docs(enricher: Enricher) -> list[Doc]:
    run_on = "Word " * 300 + "drug trafficking " + "and more " * 200  # no full stop
    texts = [f"{title}\n\n{text}" for title, text in fulltext_articles(12)]
    texts += [run_on, f"Title\n\n  {run_on}\n\nShort one. Another  one.\n\n"]
    return list(enricher.nlp.pipe(texts, disable=["ner"]))


def test_evidence_sentences_are_spacys_own(docs: list[Doc]) -> None:
    """Every one- to three-token span of each doc, including spans across a sentence
    boundary and in run-on sentences cut to a window: phrase, offsets and sentence."""
    compared = 0
    for doc in docs:
        sentences = list(doc.sents)
        texts = _SentenceTexts(doc, sentences, _sentence_index(doc, sentences))
        for start in range(0, len(doc), 2):
            for width in (1, 3):
                end = min(len(doc), start + width)
                assert (texts.evidence(doc[start:end], "r")
                        == reference_evidence(doc, start, end, "r"))
                compared += 1
    assert compared > 5000


def reference_add_normalised(out: Sparse, counts: Counter[int], weight: float) -> None:
    if not counts or weight == 0:
        return
    norm = math.sqrt(sum(value * value for value in counts.values()))
    for slot, value in counts.items():
        out[slot] = out.get(slot, 0.0) + weight * value / norm


def reference_text_features(featuriser: Featuriser, text: str, title_end: int) -> Sparse:
    """`Featuriser.text_features` as it counted before: one gram at a time."""
    spec = featuriser.spec
    title = text[:title_end].lower()
    lead = text[title_end:title_end + spec.lead_chars].lower()
    words: Counter[int] = Counter()
    chars: Counter[int] = Counter()
    for prefix, part in (("t", title), ("b", lead)):
        tokens = _WORD.findall(part)
        for n in range(1, spec.word_ngrams + 1):
            for i in range(len(tokens) - n + 1):
                gram = " ".join(tokens[i:i + n])
                words[featuriser._slot(f"w:{gram}")] += 1
                if prefix == "t":
                    words[featuriser._slot(f"tw:{gram}")] += 1
        for token in tokens:
            chars.update(featuriser._char_grams(token))
    out: Sparse = {}
    reference_add_normalised(out, words, spec.word_weight)
    reference_add_normalised(out, chars, spec.char_weight)
    if spec.frame_weight:
        title_tokens = _WORD.findall(title)
        featuriser._add_frames(out, "ft", title_tokens, 2)
        featuriser._add_frames(out, "fd", title_tokens + _WORD.findall(lead), 4)
    return out


def test_text_features_equal_counting_one_by_one(enricher: Enricher) -> None:
    assert enricher.relevance is not None
    featuriser = enricher.relevance.featuriser()
    for title, text in fulltext_articles(24):
        document = f"{title}\n\n{text}"
        for title_end in (len(title), 0):
            got = featuriser.text_features(document, title_end)
            expected = reference_text_features(featuriser, document, title_end)
            assert list(got.items()) == list(expected.items())  # order too: dot products


def test_per_topic_features_do_not_depend_on_the_text_seen_before(enricher: Enricher) -> None:
    """The per-text counts are kept for the last text only: a featuriser that saw another
    text (or an equal one) gives what a fresh one gives."""
    from consumers.enrich.enrich import Document, _candidate_features

    assert enricher.relevance is not None
    pipeline = enricher.pipelines.default
    shared = enricher.relevance.featuriser()
    compared = 0
    for title, text in fulltext_articles(16):
        document = Document(f"{title}\n\n{text}", len(title))
        doc = enricher.nlp(document.text)
        mentions = pipeline.entities.mentions(doc)
        scored = [item for item in pipeline.matcher.score(doc, mentions, len(title))
                  if item.evidence]
        if not scored:
            continue
        again = Document("".join(list(document.text)), document.title_end)  # equal, not same
        for featuriser, used in ((shared, document), (shared, again),
                                 (enricher.relevance.featuriser(), document)):
            vectors = _candidate_features(featuriser, doc, used, mentions, scored, {})
            if featuriser is shared and used is document:
                expected = {topic: list(vector.items()) for topic, vector in vectors.items()}
            assert {topic: list(vector.items()) for topic, vector in vectors.items()} == expected
        compared += 1
    assert compared >= 3


@pytest.mark.parametrize(("pattern", "length"), [
    ([{"LOWER": "a"}], 1), ([{"LOWER": "a"}, {"OP": "{0,3}"}, {"LOWER": "b"}], 5),
    ([{"OP": "{2}"}], 2), ([{"OP": "{,5}"}], 5), ([{"OP": "?"}, {"OP": "!"}], 2),
    ([{"OP": "{2,}"}], None), ([{"LOWER": "a", "OP": "+"}], None), ([{"OP": "*"}], None),
])
def test_pattern_length_is_the_longest_match(pattern: list[dict[str, object]],
                                             length: int | None) -> None:
    assert pattern_length(pattern) == length


def test_windowed_matcher_finds_what_the_full_matcher_finds() -> None:
    """Bounded anchored patterns run only near their anchor words (`_Windows`): the same
    spans as the plain `Matcher` over the whole doc, with anchors at the doc's edges,
    windows that touch, optional tokens cut at a window's edge, and overlapping
    candidates the greedy filter chooses between; a subset with an unbounded pattern
    runs everywhere."""
    nlp = spacy.blank("en")
    patterns = {
        "seat": [[{"LOWER": {"IN": ["seat", "seats"]}}, {"OP": "{0,3}"},
                  {"LOWER": "un"}]],
        "envoy": [[{"LOWER": "the", "OP": "?"}, {"LOWER": "envoy"}, {"IS_ALPHA": True,
                                                                     "OP": "{0,2}"}]],
        "consul": [[{"IS_ALPHA": True, "OP": "{0,3}"}, {"LOWER": "consul"}]],
        "cartel": [[{"LOWER": "cartel", "OP": "+"}]],
    }
    full = Matcher(nlp.vocab, validate=True)
    for key, found in patterns.items():
        full.add(key, found, greedy="LONGEST")
    filtered = FilteredMatcher(nlp.vocab, full, patterns)
    texts = ["seat at the UN", "The envoy envoy came to the seat of a big UN body",
             "a b c d e f seat x un seat y y y un envoy", "Nothing here at all.",
             "envoy", "cartel cartel and the envoy of the UN seat seat un",
             "one two three consul", "a consul b c d e consul",
             " ".join(["filler"] * 40 + ["seat", "of", "the", "UN"] + ["filler"] * 40)]
    texts += [f"{title}\n\n{text}" for title, text in fulltext_articles(24)]
    for text in texts:
        doc = nlp(text)
        words = doc_forms(doc)
        expected = sorted((span.label_, span.start, span.end)
                          for span in full(doc, as_spans=True))
        got = sorted((span.label_, span.start, span.end)
                     for span in filtered(doc, Forms.of(words), words))
        assert got == expected, text


# --- ninth session ----------------------------------------------------------------------

IS_SENTENCES = (
    "Unlike ISIS, the group holds no territory. Analysts compared it to the Islamic "
    "State in its early years.",
    "The Islamic State of Iraq claimed the attack. The Islamic State group denied it.",
    "The list excluding, for now, the Islamic State was published. The sanctions do not "
    "include Daesh or its affiliates in the region, officials said.",
    "ISIS fighters attacked the town. A temple of ISIS stands nearby. An Islamic State "
    "was declared.",
)


@pytest.fixture(scope="module")
def analysed(enricher: Enricher) -> list[tuple[Doc, list[Mention], str, int]]:
    """Full-text articles and sentences made to hit the exclusions, with NER and their
    mentions (which set ``token._.canonical``): (doc, mentions, text, title end)."""
    pipeline = enricher.pipelines.default
    texts = [(f"{title}\n\n{text}", len(title)) for title, text in fulltext_articles(40)]
    texts += [(f"Islamic State news\n\n{text}", 18) for text in IS_SENTENCES]
    out = []
    for (text, title_end), doc in zip(texts, enricher.nlp.pipe(t for t, _ in texts),
                                      strict=True):
        out.append((doc, pipeline.entities.mentions(doc), text, title_end))
    return out


def test_exclusions_on_marks_find_what_the_extension_patterns_find(
        enricher: Enricher, analysed: list[tuple[Doc, list[Mention], str, int]]) -> None:
    """Every sentence of every doc: the exclusions rewritten to test ``ENT_ID`` marks
    (the whole matcher and the subset its words allow) find the spans the shipped
    patterns on ``token._.canonical`` find; afterwards every token has its own
    ``ENT_ID`` back and the names are untouched."""
    matcher = enricher.pipelines.default.matcher
    assert matcher._marked == {"is_threat"}
    found = 0
    for doc, mentions, _, _ in analysed:
        before = [(token.ent_id, token._.get(CANONICAL)) for token in doc]
        words = doc_forms(doc)
        for topic in sorted(matcher._marked):
            shipped = matcher._exclusion_patterns[topic]
            marked = matcher._exclusion_filtered[topic]
            for sentence in doc.sents:
                expected = sorted((span.label_, span.start, span.end)
                                  for span in shipped(sentence, as_spans=True))
                marks = CanonicalMarks(doc, mentions)
                try:
                    marks.apply()
                    whole = sorted((span.label_, span.start, span.end)
                                   for span in marked._full(sentence, as_spans=True))
                    subset = sorted((span.label_, span.start, span.end) for span in marked(
                        sentence, Forms.of(words[sentence.start:sentence.end])))
                finally:
                    marks.restore()
                assert whole == expected, sentence.text
                assert subset == expected, sentence.text
                found += len(expected)
        assert [(token.ent_id, token._.get(CANONICAL)) for token in doc] == before
    assert found >= 6  # the made sentences hit each kind of exclusion


@pytest.mark.parametrize(("spec", "rewritten"), [
    ({"_": {"canonical": "Islamic State"}, "OP": "+"},
     {"OP": "+", "ENT_ID": MARK + "Islamic State"}),
    ({"LOWER": "of", "_": {"canonical": {"NOT_IN": ["Islamic State"]}}},
     {"LOWER": "of", "ENT_ID": {"NOT_IN": [MARK + "Islamic State"]}}),
    ({"_": {"canonical": {"IN": ["Taliban", "Hamas"]}}},
     {"ENT_ID": {"IN": [MARK + "Taliban", MARK + "Hamas"]}}),
    ({"LOWER": "x"}, {"LOWER": "x"}),
    ({"_": {"canonical": ""}}, None),  # every token without a name has the empty one
    ({"_": {"canonical": {"REGEX": "^Isl"}}}, None),
    ({"_": {"other": "x"}}, None),
    ({"_": {"canonical": "X"}, "ENT_ID": "y"}, None),
])
def test_marked_pattern_rewrites_only_what_it_can_keep_exact(
        spec: dict[str, object], rewritten: dict[str, object] | None) -> None:
    marked = marked_pattern([spec])
    assert (marked[0][0] if marked is not None else None) == rewritten


def test_score_from_the_documents_text_equals_reading_doc_text(
        enricher: Enricher, analysed: list[tuple[Doc, list[Mention], str, int]]) -> None:
    """`TopicMatcher.score` with the text the doc was made from gives what reading
    ``doc.text`` gives: scores, hits and evidence (phrases, offsets, sentences)."""
    matcher = enricher.pipelines.default.matcher
    with_evidence = 0
    for doc, mentions, text, title_end in analysed:
        assert text == doc.text
        expected = matcher.score(doc, mentions, title_end)
        assert matcher.score(doc, mentions, title_end, text) == expected
        with_evidence += sum(1 for item in expected if item.evidence)
    assert with_evidence >= 20


def test_offsets_from_arrays_equal_reading_tokens(
        analysed: list[tuple[Doc, list[Mention], str, int]]) -> None:
    """Sentence starts and mention character spans as `_candidate_features` computed them
    before: from ``doc.sents``-style flags read token by token and ``Token.idx``."""
    for doc, mentions, _, _ in analysed:
        starts, entities = sentence_and_entity_offsets(doc, mentions)
        assert starts == [doc[i].idx for i in range(len(doc)) if doc[i].is_sent_start] or [0]
        assert entities == [
            EntitySpan(mention.name, mention.label, doc[mention.start].idx,
                       doc[mention.end - 1].idx + len(doc[mention.end - 1].text))
            for mention in mentions]
        assert starts == [sentence.start_char for sentence in doc.sents]


def test_filter_spans_of_one_span_is_that_span(
        analysed: list[tuple[Doc, list[Mention], str, int]]) -> None:
    """`TopicMatcher._find` skips `filter_spans` for a key with one span."""
    for doc, _, _, _ in analysed[:8]:
        for start in range(len(doc)):
            for end in (start, start + 1, min(len(doc), start + 3)):
                assert filter_spans([doc[start:end]]) == [doc[start:end]]
