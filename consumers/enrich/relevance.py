"""The relevance layer: is the article *about* the topic, or does it only mention it?

The rules of `consumers.enrich.topics` find candidate evidence with high recall; for each
topic that has a model, this module turns the document and that evidence into features
and a calibrated probability. The hit keeps the rules' evidence and score; the topic's
hit is kept when the probability reaches the threshold that training chose for the topic
(on out-of-fold probabilities, best F1 with recall >= 0.95; the topics file's
``threshold`` for a model file that has none), or when the rule score reaches the floor
(the rules' strongest evidence, kept even when the model doubts it; for a topic whose
rules never name it outright, only when some of that evidence is in the title).

Features, one sparse vector per (document, topic), of four kinds:

* aboutness, from the evidence: the rule score, how many matches, of how many rules and
  phrases, whether the title and the lead hold some, where the first one stands, how much
  of the text (sentences) it covers, how much of it is inside quotation marks, the length
  of the document, one count per rule that matched, and the entities (canonical names and
  labels) in the title and in the evidence sentences;
* words: hashed word unigrams and bigrams of the title and the lead (its first
  ``lead_chars`` characters), and of the evidence sentences;
* windows: per rule, the few words just before and after each match and the labels of
  the entities that start there (what is recognised, who is attacked);
* characters: hashed character 3-5-grams within words of the title and the lead, which
  work in any script and language (no tokenizer, no stemmer).

Hashing uses CRC-32 (stable across processes and machines, unlike ``hash``) into
``2**hash_bits`` slots; the first `len(ABOUTNESS)` slots hold the named features.

A model file is JSON, never a pickle: loading an untrusted file runs no code. It carries
a format name and version, the feature settings, and per topic the weights (little-endian
float32, base64, with their SHA-256) and the Platt scaling that calibrates them. Anything
wrong with it is one `ConfigError` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import operator
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consumers.enrich.frames import DEFAULT_FRAMES, frames_of
from newswatch.errors import ConfigError

FORMAT = "newswatch-relevance"
FORMAT_VERSION = 1
MAX_MODEL_BYTES = 64 * 1024 * 1024  # a model of 2**20 slots and 16 topics is ~90 MB of JSON

# Named features, in slot order. Values are scaled to about [0, 1].
ABOUTNESS = (
    "bias", "score", "matches", "rules", "phrases", "in_title", "title_matches", "in_lead",
    "first_position", "coverage", "quoted", "density", "length", "short", "strongest",
    "strong_matches",
)
STRONG = 0.5  # a match of a rule at least this heavy is strong evidence on its own
_WORD = re.compile(r"\w+")
_QUOTED = re.compile(r"[\"“”«»„‘’]")
LEAD_SENTENCES = 2  # sentences after the title that count as the lead
SLOT_CACHE = 200_000  # n-grams whose slot is remembered (~25 MB at most)


class FeatureSpec(BaseModel):
    """How text becomes features; stored in the model file, so that training and use agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash_bits: int = Field(default=14, ge=8, le=20)
    char_ngrams: tuple[int, int] = (3, 5)
    word_ngrams: int = Field(default=2, ge=1, le=3)
    lead_chars: int = Field(default=1200, ge=0, le=100_000,
                            description="Characters of the body after the title read as text")
    aboutness_weight: float = Field(default=1.0, gt=0.0)
    word_weight: float = Field(default=1.0, ge=0.0)
    char_weight: float = Field(default=1.0, ge=0.0)
    named_weight: float = Field(default=0.5, ge=0.0,
                                description="Weight of rule and entity indicators")
    context_weight: float = Field(default=3.0, ge=0.0,
                                  description="Weight of the words of evidence sentences")
    # Files written before it existed read as 0 (`ModelFile`): a model reads the features
    # it was trained on.
    window_weight: float = Field(default=2.0, ge=0.0,
                                 description="Weight of the words and entity labels right "
                                             "beside each match (what is recognised, "
                                             "trafficked, attacked)")
    window_words: int = Field(default=3, ge=1, le=10)
    # Files written before them have none (`ModelFile`), as with the windows.
    frames: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_FRAMES),
        description="Word families (stems) that say what kind of story it is "
                    "(consumers.enrich.frames): counted in the title, the lead and the "
                    "evidence sentences")
    frame_weight: float = Field(default=1.0, ge=0.0)

    @property
    def size(self) -> int:
        return 1 << self.hash_bits


Sparse = dict[int, float]


@dataclass(frozen=True)
class Evidence:
    """What the featuriser needs of one piece of rule evidence."""

    start: int
    end: int
    rule: str
    phrase: str
    weight: float = 0.0  # the rule's weight (before the title's multiplier)
    sentence: str = ""


@dataclass(frozen=True)
class EntitySpan:
    """An entity mention by characters: canonical name, label, [start, end)."""

    name: str
    label: str
    start: int
    end: int


class Featuriser:
    """Feature vectors of documents for topics, per a `FeatureSpec`.

    ``text_features`` is computed once per document and shared by its topics;
    ``features`` adds what depends on a topic's evidence. Both are pure functions.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._mask = spec.size - 1
        self._first_hashed = len(ABOUTNESS)
        self._slots: dict[str, int] = {}  # n-grams recur across documents: hash each once
        self._grams: dict[str, tuple[int, ...]] = {}  # word -> its character n-gram slots
        self._frames: dict[str, tuple[tuple[str, str], ...]] = {}  # word -> its families
        self._last_text: tuple[str, int, list[tuple[int, int]]] | None = None

    def _slot(self, key: str) -> int:
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= SLOT_CACHE:  # bounded: a stream of new words cannot grow it
                self._slots.clear()
            slot = zlib.crc32(key.encode("utf-8")) & self._mask
            # Hashed features never land on a named slot: fold them into the hashed range.
            slot = slot if slot >= self._first_hashed else self._first_hashed + slot
            self._slots[key] = slot
        return slot

    def _char_grams(self, token: str) -> tuple[int, ...]:
        """The slots of a word's character n-grams (remembered: words recur)."""
        grams = self._grams.get(token)
        if grams is None:
            if len(self._grams) >= SLOT_CACHE:
                self._grams.clear()
            low, high = self.spec.char_ngrams
            padded = f" {token} "
            grams = tuple(self._slot(f"c:{padded[i:i + n]}") for n in range(low, high + 1)
                          for i in range(len(padded) - n + 1))
            self._grams[token] = grams
        return grams

    def _frames_of(self, tokens: Sequence[str]) -> dict[str, set[str]]:
        """Per family, the distinct stems of it among ``tokens``."""
        found: dict[str, set[str]] = {}
        if not self.spec.frames:
            return found
        for token in tokens:
            pairs = self._frames.get(token)
            if pairs is None:
                if len(self._frames) >= SLOT_CACHE:
                    self._frames.clear()
                pairs = self._frames[token] = frames_of(token, self.spec.frames)
            for name, stem in pairs:
                found.setdefault(name, set()).add(stem)
        return found

    def _add_frames(self, out: Sparse, prefix: str, tokens: Sequence[str], full: int
                    ) -> None:
        """One feature per family found: how many of its stems, up to ``full``."""
        for name, stems in self._frames_of(tokens).items():
            slot = self._slot(f"{prefix}:{name}")
            out[slot] = out.get(slot, 0.0) + self.spec.frame_weight * min(1.0, len(stems)
                                                                          / full)

    def text_features(self, text: str, title_end: int) -> Sparse:
        """Word and character n-grams of the title and the lead, each kind L2-normalised."""
        title = text[:title_end].lower()
        lead = text[title_end:title_end + self.spec.lead_chars].lower()
        # The slots in the order they are counted (each gram's "w:", then for the title its
        # "tw:"), counted at once: a Counter keeps first occurrences in that order, so the
        # vector is the same, key order included, as counting them one by one.
        word_slots: list[int] = []
        char_slots: list[int] = []
        known = self._slots  # the slot cache read inline: one method call per new gram only
        for prefix, part in (("t", title), ("b", lead)):
            tokens = _WORD.findall(part)
            for n in range(1, self.spec.word_ngrams + 1):
                grams = tokens if n == 1 else [" ".join(tokens[i:i + n])
                                               for i in range(len(tokens) - n + 1)]
                for gram in grams:
                    key = "w:" + gram
                    word_slots.append(known.get(key) or self._slot(key))
                    if prefix == "t":
                        key = "tw:" + gram
                        word_slots.append(known.get(key) or self._slot(key))
            grams_of = self._grams
            for token in tokens:
                char_slots += grams_of.get(token) or self._char_grams(token)
        out: Sparse = {}
        _add_normalised(out, Counter(word_slots), self.spec.word_weight)
        _add_normalised(out, Counter(char_slots), self.spec.char_weight)
        if self.spec.frame_weight:
            title_tokens = _WORD.findall(title)
            self._add_frames(out, "ft", title_tokens, 2)
            self._add_frames(out, "fd", title_tokens + _WORD.findall(lead), 4)
        return out

    def features(self, *, text: str, title_end: int, sentence_starts: Sequence[int],
                 score: float, evidence: Sequence[Evidence], entities: Sequence[EntitySpan],
                 text_features: Sparse) -> Sparse:
        """The whole vector of one document for one topic.

        ``sentence_starts`` are the character offsets where sentences begin (sorted);
        ``evidence`` is the rules' evidence for the topic (all of it, not only what the
        hit reports), ``entities`` the document's entity mentions.
        """
        length = max(1, len(text))
        words, quotes = self._text_counts(text)
        sentence_of = _sentence_finder(sentence_starts)
        lead_first = sentence_of(title_end - 1) + 1 if title_end else 0
        lead = range(lead_first, lead_first + LEAD_SENTENCES)
        spans = sorted(evidence, key=lambda item: item.start)
        sentences_hit = {sentence_of(item.start) for item in spans}
        in_title = [item for item in spans if item.start < title_end]
        quoted = [item for item in spans if _inside(item.start, quotes)]
        named: dict[str, float] = {
            "bias": 1.0,
            "score": score,
            "matches": min(1.0, math.log1p(len(spans)) / math.log1p(20)),
            "rules": min(1.0, len({item.rule for item in spans}) / 4),
            "phrases": min(1.0, len({item.phrase.lower() for item in spans}) / 6),
            "in_title": 1.0 if in_title else 0.0,
            "title_matches": min(1.0, len(in_title) / 3),
            "in_lead": 1.0 if any(sentence_of(item.start) in lead for item in spans) else 0.0,
            "first_position": spans[0].start / length if spans else 1.0,
            "coverage": len(sentences_hit) / max(1, len(sentence_starts)),
            "quoted": len(quoted) / len(spans) if spans else 0.0,
            "density": min(1.0, 100 * len(spans) / words / 5),
            "length": min(1.0, math.log1p(words) / math.log1p(5000)),
            "short": 1.0 if words < 80 else 0.0,
            "strongest": max((item.weight for item in spans), default=0.0),
            "strong_matches": min(1.0, sum(1 for item in spans if item.weight >= STRONG) / 3),
        }
        out: Sparse = dict(text_features)
        weight = self.spec.aboutness_weight
        for slot, name in enumerate(ABOUTNESS):
            if named[name]:
                out[slot] = named[name] * weight
        indicators: Counter[str] = Counter()
        for item in spans:
            indicators[f"r:{item.rule}"] += 1
        for entity in entities:
            if entity.start < title_end:
                indicators[f"et:{entity.name}"] += 1
            if sentence_of(entity.start) in sentences_hit:
                indicators[f"ee:{entity.name}"] += 1
                indicators[f"el:{entity.label}"] += 1
        context_slots: list[int] = []  # in counting order (see `text_features`)
        evidence_tokens: list[str] = []
        for sentence in dict.fromkeys(item.sentence.lower() for item in spans):
            tokens = _WORD.findall(sentence)
            evidence_tokens += tokens
            for i, token in enumerate(tokens):
                context_slots.append(self._slot("s:" + token))
                if i + 1 < len(tokens):
                    context_slots.append(self._slot(f"s:{token} {tokens[i + 1]}"))
        _add_normalised(out, Counter(context_slots), self.spec.context_weight)
        if self.spec.frame_weight:
            self._add_frames(out, "fe", evidence_tokens, 3)
        if self.spec.window_weight:
            _add_normalised(out, self._window(text, spans, entities),
                            self.spec.window_weight)
        for key, count in indicators.items():
            slot = self._slot(key)
            out[slot] = out.get(slot, 0.0) + self.spec.named_weight * min(1.0, math.log1p(count)
                                                                          / math.log1p(8))
        return out

    def _text_counts(self, text: str) -> tuple[int, list[tuple[int, int]]]:
        """The words of ``text`` (at least 1) and its quoted ranges: the same for every
        topic of a document, so computed for the last text seen only."""
        last = self._last_text
        if last is None or last[0] is not text:
            last = self._last_text = (text, max(1, len(_WORD.findall(text))),
                                      _quoted_ranges(text))
        return last[1], last[2]

    def _window(self, text: str, spans: Sequence[Evidence],
                entities: Sequence[EntitySpan]) -> Counter[int]:
        """Per rule, the words just before and after each of its matches and the labels of
        the entities that start there: the match's object and subject ("recognised *as
        the best*", "recognise *Palestine*/GPE"), which a sentence's bag of words blurs."""
        window: Counter[int] = Counter()
        reach = 12 * self.spec.window_words  # characters: enough for that many words
        for item in spans:
            before = _WORD.findall(text[max(0, item.start - reach):item.start].lower())
            after = _WORD.findall(text[item.end:item.end + reach].lower())
            for side, words in (("<", before[-self.spec.window_words:]),
                                (">", after[:self.spec.window_words])):
                for word in words:
                    window[self._slot(f"n{side}{item.rule}:{word}")] += 1
                    window[self._slot(f"n{side}:{word}")] += 1
            for entity in entities:
                if item.end <= entity.start < item.end + reach:
                    window[self._slot(f"n>{item.rule}:{entity.label}")] += 1
                elif item.start - reach < entity.end <= item.start:
                    window[self._slot(f"n<{item.rule}:{entity.label}")] += 1
        return window

    def dense(self, rows: Sequence[Sparse]) -> NDArray[np.float32]:
        """Sparse rows as one dense matrix (training only)."""
        matrix = np.zeros((len(rows), self.spec.size), dtype=np.float32)
        for i, row in enumerate(rows):
            if row:
                matrix[i, list(row)] = list(row.values())
        return matrix


def _add_normalised(out: Sparse, counts: Counter[int], weight: float) -> None:
    if not counts or weight == 0:
        return
    values = counts.values()
    # The same products summed in the same order as a generator would: the same norm.
    norm = math.sqrt(sum(map(operator.mul, values, values)))
    get = out.get
    for slot, value in counts.items():
        out[slot] = get(slot, 0.0) + weight * value / norm


def _sentence_finder(starts: Sequence[int]) -> Any:
    from bisect import bisect_right

    ordered = list(starts) or [0]

    def sentence_of(char: int) -> int:
        return max(0, bisect_right(ordered, char) - 1)

    return sentence_of


def _quoted_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges between pairs of quotation marks (straight or typographic)."""
    marks = [match.start() for match in _QUOTED.finditer(text)]
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def _inside(char: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(start < char < end for start, end in ranges)


# --- the model file ---------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicModelFile(_Strict):
    """One topic's calibrated logistic regression, as stored."""

    weights: str = Field(description="float32 little-endian, base64")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the decoded weight bytes")
    platt: tuple[float, float] = Field(description="p = 1 / (1 + exp(-(a * z + b)))")
    examples: int = Field(ge=0, description="Candidates it was fitted on")
    positives: int = Field(ge=0)
    regularisation: float = Field(gt=0.0)
    threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0,
        description="Probability at which the topic is hit, chosen in training on "
                    "out-of-fold probabilities (None: the topic's threshold)")
    floor: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Rule score that keeps the topic whatever the probability, chosen "
                    "with the threshold (None: no floor)")
    floor_needs_title: bool = Field(
        default=False,
        description="The floor keeps the topic only when some evidence is in the title")
    floor_needs_named: bool = Field(
        default=False,
        description="The floor keeps the topic only when a rule that names it outright "
                    "(names_topic) matched, other than as an item of a list")


class ModelFile(_Strict):
    """The whole model file."""

    format: Literal["newswatch-relevance"]
    version: int
    features: FeatureSpec
    topics: dict[str, TopicModelFile]
    trained_on: dict[str, Any] = Field(default_factory=dict,
                                       description="Files, counts, seed, topics version")

    @model_validator(mode="before")
    @classmethod
    def _older_features(cls, data: Any) -> Any:
        """A file from before the window or frame features had none (weight 0 and no
        families, not the defaults)."""
        features = data.get("features") if isinstance(data, dict) else None
        if isinstance(features, dict) and "window_weight" not in features:
            features = {**features, "window_weight": 0.0}
        if isinstance(features, dict) and "frames" not in features:
            features = {**features, "frames": {}}
        if isinstance(features, dict):
            data = {**data, "features": features}
        return data

    @model_validator(mode="after")
    def _check_version(self) -> ModelFile:
        if self.version != FORMAT_VERSION:
            raise ValueError(f"model format version {self.version} is not supported "
                             f"(this code reads version {FORMAT_VERSION}); retrain it with "
                             "`newswatch topics train`")
        return self


@dataclass(frozen=True)
class TopicModel:
    """A topic's weights and calibration: ``probability(x) = sigmoid(a * w.x + b)``."""

    weights: NDArray[np.float32]
    platt: tuple[float, float]
    examples: int = 0
    positives: int = 0
    regularisation: float = 1.0
    threshold: float | None = None  # chosen in training; None: the topic file's threshold
    floor: float | None = None  # rule score that keeps the topic on its own
    floor_needs_title: bool = False  # ... and only with evidence in the title
    floor_needs_named: bool = False  # ... and only with the topic named outright

    def keeps(self, probability: float, score: float, topic_threshold: float, *,
              titled: bool = False, named: bool = False) -> bool:
        """Whether a candidate is a hit: its probability reaches the threshold chosen in
        training (else the topic file's), or its rule score reaches the floor, with
        evidence in the title (``titled``) where the floor needs it, and with the topic
        named outright outside a list (``named``, `named_outright`) where it needs that."""
        cut = topic_threshold if self.threshold is None else self.threshold
        if probability >= cut:
            return True
        return (self.floor is not None and score >= self.floor
                and (titled or not self.floor_needs_title)
                and (named or not self.floor_needs_named))

    def decision(self, features: Mapping[int, float]) -> float:
        """The uncalibrated score ``w.x``."""
        if not features:
            return 0.0
        slots = np.fromiter(features.keys(), dtype=np.int64, count=len(features))
        values = np.fromiter(features.values(), dtype=np.float64, count=len(features))
        return float(np.dot(self.weights[slots].astype(np.float64), values))

    def probability(self, features: Mapping[int, float]) -> float:
        a, b = self.platt
        return round(sigmoid(a * self.decision(features) + b), 4)


@dataclass(frozen=True)
class RelevanceModel:
    """Per-topic models sharing one feature spec; ``path`` is where it was read from."""

    spec: FeatureSpec
    topics: dict[str, TopicModel]
    trained_on: dict[str, Any]
    path: Path | None = None
    digest: str = ""

    def featuriser(self) -> Featuriser:
        return Featuriser(self.spec)

    @property
    def languages(self) -> frozenset[str]:
        """The pipelines' languages its training items were read in ("en" for a model
        file that does not say): elsewhere the topics' rules decide alone, since a model
        that never saw a language's words judges its articles by the wrong ones."""
        return frozenset(self.trained_on.get("languages") or ["en"])

    def to_bytes(self) -> bytes:
        """The model file's bytes: sorted keys, no timestamps, so equal models are equal
        files."""
        topics = {}
        for name, model in sorted(self.topics.items()):
            raw = model.weights.astype("<f4").tobytes()
            topics[name] = TopicModelFile(
                weights=base64.b64encode(raw).decode("ascii"),
                sha256=hashlib.sha256(raw).hexdigest(), platt=model.platt,
                examples=model.examples, positives=model.positives,
                regularisation=model.regularisation, threshold=model.threshold,
                floor=model.floor, floor_needs_title=model.floor_needs_title,
                floor_needs_named=model.floor_needs_named)
        document = ModelFile(format=FORMAT, version=FORMAT_VERSION, features=self.spec,
                             topics=topics, trained_on=self.trained_on)
        return (json.dumps(document.model_dump(mode="json"), sort_keys=True, indent=1,
                           ensure_ascii=False) + "\n").encode("utf-8")

    def save(self, path: Path) -> None:
        """Write the model file (atomically: a crash leaves the old file or the new one)."""
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_bytes(self.to_bytes())
            temporary.replace(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the relevance model: "
                              f"{exc.strerror or exc}") from exc


def load_model(path: Path) -> RelevanceModel:
    """Read and check a model file. Raises `ConfigError` naming ``path`` when it is
    missing, unreadable, too large, not JSON, of another format or version, or when a
    topic's weights are cut, altered (checksum) or not finite."""
    where = f"relevance model {path}"
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ConfigError(f"{where}: {size} bytes, more than the {MAX_MODEL_BYTES} "
                              "a model file may have")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc} (train one with "
                          "`newswatch topics train`, or remove `relevance:` from the topics "
                          "file to use rules alone)") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: not a model file (invalid JSON: {exc})") from exc
    try:
        document = ModelFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()[:3])
        raise ConfigError(f"{where}: not a valid model file: {problems}") from exc
    topics: dict[str, TopicModel] = {}
    for name, stored in document.topics.items():
        try:
            weight_bytes = base64.b64decode(stored.weights, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{where}: topic {name!r}: weights are not base64") from exc
        if hashlib.sha256(weight_bytes).hexdigest() != stored.sha256:
            raise ConfigError(f"{where}: topic {name!r}: weights do not match their "
                              "checksum (the file is damaged)")
        if len(weight_bytes) != 4 * document.features.size:
            raise ConfigError(f"{where}: topic {name!r}: {len(weight_bytes) // 4} weights, "
                              f"expected {document.features.size}")
        weights = np.frombuffer(weight_bytes, dtype="<f4").astype(np.float32)
        if not (np.all(np.isfinite(weights)) and all(map(math.isfinite, stored.platt))):
            raise ConfigError(f"{where}: topic {name!r}: weights are not finite numbers")
        topics[name] = TopicModel(weights=weights, platt=stored.platt,
                                  examples=stored.examples, positives=stored.positives,
                                  regularisation=stored.regularisation,
                                  threshold=stored.threshold, floor=stored.floor,
                                  floor_needs_title=stored.floor_needs_title,
                                  floor_needs_named=stored.floor_needs_named)
    return RelevanceModel(spec=document.features, topics=topics,
                          trained_on=document.trained_on, path=path,
                          digest=hashlib.sha256(raw).hexdigest()[:16])


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)
