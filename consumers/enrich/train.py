"""Training and cross-validating the relevance layer from labelled items.

    examples = featurise(enricher, items, spec)          # spaCy once per item
    model, reports = train(examples, topics, spec, folds=5, seed=0)

For each topic, the examples are the items where the rules found evidence for it (the
candidates); the label says whether the item is about the topic. The model is an
L2-regularised logistic regression, fitted exactly by Newton's method in its dual form
(the weights are a sum of the training vectors, so a fit needs only the n x n Gram
matrix: fast and deterministic for the few thousand examples labels come in), then
calibrated by Platt scaling on decision values that each come from a model not fitted on
that item (inner k-fold). Cross-validation repeats the whole procedure, inner folds and
calibration included, on every outer fold.

Folds are grouped (items with the same normalised title or URL are one group, so a story
copied into two files is never scored by a model fitted on its twin) and stratified by
label. Nothing is random: fold assignment hashes the group key with the seed, so the same
data and seed give the same model bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from consumers.enrich.enrich import (
    Candidate,
    Document,
    Enricher,
    document_text,
    floor_headline,
    named_outright,
    outright_rules,
)
from consumers.enrich.relevance import (
    FeatureSpec,
    Featuriser,
    RelevanceModel,
    TopicModel,
    sigmoid,
)
from newswatch.errors import ConfigError
from schemas.messages import EvidenceSpan
from schemas.topics_file import Topic

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
DEFAULT_REGULARISATION = 1.0
MIN_RECALL = 0.95  # the threshold chosen in training keeps at least this recall
# The rule score that keeps a topic whatever the model says: one match of a topic's
# strongest rules ("drug trafficking", "diplomatic recognition": weight 0.8) or several
# strong ones. The layer vetoes weak and moderate evidence, never the rules' strongest.
# A topic without a rule that heavy, one that names the topic outright, has the floor only
# for evidence that reaches the title (`topic_floor`): is_threat's rules reach 0.8 only by
# adding up moderate words ("Islamic State" beside "attack"), which a long piece on other
# things that names the group does too; its headline does not name the group.
FLOOR = 0.8
# The threshold is read off out-of-fold probabilities of inner folds. With one inner split
# and the exact best-F1 cut it moved with the fold seed (recognition 0.32-0.60 over 30
# fits, fifth session): F1 is flat over a wide range at this size, and the exact best
# sat where two or three probabilities happened to fall. Two things steady it: the
# decisions of `INNER_SPLITS` inner splits are pooled (every item counted once per split),
# and the cut is the one with the best F1 averaged over a window of +-`SMOOTHING` around
# it (a plateau, not a spike). Over 30 fits the spread (standard deviation) fell from
# 0.077 to 0.052 (recognition), 0.089 to 0.058 (drug_trafficking), 0.099 to 0.094
# (is_threat); cross-validated F1 did not change beyond its noise.
INNER_SPLITS = 5
SMOOTHING = 0.1
MIN_EACH_CLASS = 3  # positives and negatives among a topic's candidates to fit a model
NEWTON_STEPS = 30
_NON_WORD = re.compile(r"\W+")


@dataclass(frozen=True)
class LabelledItem:
    """One labelled document. ``judged`` names the topics its labels speak for (None: all
    of them, as in a labelled file; an analyst's verdict judges only its topic)."""

    id: Any
    title: str
    text: str
    labels: frozenset[str]
    judged: frozenset[str] | None = None
    url: str = ""
    weight: float = 1.0  # how much the item counts in fitting (the labelled file's "weight")

    def document(self) -> Document:
        return document_text(self.title, content=self.text)

    def judges(self, topic: str) -> bool:
        return self.judged is None or topic in self.judged

    @property
    def group(self) -> str:
        """Items with the same group key are the same story."""
        title = _NON_WORD.sub(" ", self.title.lower()).strip()
        return title or self.url or f"id:{self.id}"


@dataclass(frozen=True)
class Example:
    """A labelled item after the rules and the featuriser have read it."""

    item: LabelledItem
    candidates: dict[str, Candidate]
    scores: dict[str, float]
    language: str = "en"  # the pipeline that read it (`Analysis.analysed_as`)


@dataclass
class TopicReport:
    """Cross-validated outcome for one topic: per item, the out-of-fold probability
    (None: not a candidate, so never a hit), with the confusion at the threshold."""

    topic: str
    threshold: float
    fitted: bool
    why_not: str = ""
    floor: float | None = None  # the rule score that keeps a hit whatever the model says
    floor_needs_title: bool = False  # ... only with evidence in the title
    floor_needs_named: bool = False  # ... only with the topic named outright (names_topic)
    examples: int = 0
    positives: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int]:
        tp = sum(1 for o in self.outcomes if o.predicted and o.expected)
        fp = sum(1 for o in self.outcomes if o.predicted and not o.expected)
        fn = sum(1 for o in self.outcomes if not o.predicted and o.expected)
        return tp, fp, fn


@dataclass(frozen=True)
class Outcome:
    """One item's verdict for one topic, as cross-validation scored it."""

    item: LabelledItem
    expected: bool
    predicted: bool
    probability: float | None
    score: float
    evidence: tuple[EvidenceSpan, ...]


def featurise(enricher: Enricher, items: Sequence[LabelledItem], spec: FeatureSpec
              ) -> list[Example]:
    """Run the rules and the featuriser over ``items`` (the spaCy pass: the slow part)."""
    analyses = enricher.analyse_many((item.document() for item in items), features=spec)
    return [Example(item, analysis.candidates, analysis.scores, analysis.analysed_as)
            for item, analysis in zip(items, analyses, strict=True)]


def assign_folds(groups: Sequence[str], strata: Sequence[str], folds: int, seed: int
                 ) -> list[int]:
    """A fold number per item: same group, same fold; each stratum spread evenly."""
    first_stratum: dict[str, str] = {}
    for group, stratum in zip(groups, strata, strict=True):
        first_stratum.setdefault(group, stratum)
    ordered = sorted(first_stratum, key=lambda group: (
        first_stratum[group], hashlib.sha256(f"{seed}\x1f{group}".encode()).hexdigest()))
    fold_of = {group: i % folds for i, group in enumerate(ordered)}
    return [fold_of[group] for group in groups]


def topic_floor(topic: Topic, floor: float | None = FLOOR) -> tuple[float | None, bool]:
    """The floor of ``topic`` (None: none) and whether it needs evidence in the title:
    it does unless one of the topic's rules weighs ``floor`` on its own (names the topic
    outright)."""
    if floor is None:
        return None, False
    return floor, max(rule.weight for rule in topic.rules) < floor


def fit_dual_logistic(gram: NDArray[np.float64], y: NDArray[np.float64],
                      regularisation: float, weights: NDArray[np.float64] | None = None
                      ) -> NDArray[np.float64]:
    """Dual coefficients ``a`` of L2-regularised logistic regression (weights X^T a).

    Minimises sum(c_i log(1 + exp(-s_i f_i))) + (lam / 2) a^T K a with f = K a, s = +-1
    and c the items' weights, by Newton steps solved in the n x n space:
    (C W K + lam I) d = c (p - y) + lam a.
    """
    n = len(y)
    c = np.ones(n) if weights is None else weights
    alpha = np.zeros(n)
    identity = np.eye(n)
    for _ in range(NEWTON_STEPS):
        margin = gram @ alpha
        p = 1.0 / (1.0 + np.exp(-np.clip(margin, -35, 35)))
        w = c * np.maximum(p * (1.0 - p), 1e-10)
        gradient = c * (p - y) + regularisation * alpha
        step = np.linalg.solve(w[:, None] * gram + regularisation * identity, gradient)
        alpha -= step
        if float(np.max(np.abs(step))) < 1e-9:
            break
    return alpha


def fit_platt(decisions: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Platt scaling: (a, b) with P = sigmoid(a z + b), fitted by Newton on smoothed
    targets (Platt 1999), so a separable fold does not give probabilities of exactly 0/1."""
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = 1.0, 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * decisions + b, -35, 35)))
        w = np.maximum(p * (1 - p), 1e-12)
        ga, gb = float(np.dot(p - target, decisions)), float(np.sum(p - target))
        haa = float(np.dot(w, decisions * decisions)) + 1e-6
        hab, hbb = float(np.dot(w, decisions)), float(np.sum(w)) + 1e-6
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-10 and abs(db) < 1e-10:
            break
    return round(a, 8), round(b, 8)


def choose_threshold(probabilities: NDArray[np.float64], scores: NDArray[np.float64],
                     y: NDArray[np.float64], floor: float | None = FLOOR,
                     min_recall: float = MIN_RECALL, smoothing: float = SMOOTHING) -> float:
    """The probability threshold with the best F1 among those whose recall reaches
    ``min_recall`` (else the highest recall), read off out-of-fold probabilities, where a
    candidate is a hit when its probability reaches the threshold or its rule score
    reaches ``floor`` (None: no floor). On equal F1 the lower one wins (the side of recall).

    ``smoothing`` 0: the exact best cut, halfway between the lowest probability it accepts
    and the highest below it. ``smoothing`` w > 0: cuts on a grid of hundredths, each
    valued by the mean F1 of the cuts within +-w of it (`SMOOTHING`), so the choice lands
    on a plateau of good F1 rather than on a spike two probabilities make."""
    positives = float(y.sum())
    if positives == 0:
        return 0.5
    kept = np.zeros(len(y), dtype=bool) if floor is None else scores >= floor
    if smoothing > 0:
        return _smoothed_threshold(probabilities, kept, y, min_recall, smoothing)
    order = np.argsort(-probabilities, kind="stable")
    ranked = probabilities[order]
    tp = float(np.sum(y[kept]))
    fp = float(np.sum(kept)) - tp
    best: tuple[bool, float, int] | None = None
    threshold = 0.5
    for k, index in enumerate(order):
        if not kept[index]:
            tp, fp = tp + y[index], fp + (1.0 - y[index])
        if k + 1 < len(order) and ranked[k + 1] == ranked[k]:
            continue  # a threshold takes all items of equal probability or none
        recall = tp / positives
        f1 = 2 * tp / (tp + fp + positives)
        key = (recall >= min_recall, f1 if recall >= min_recall else recall, k)
        if best is None or key > best:
            below = float(ranked[k + 1]) if k + 1 < len(order) else 0.0
            best, threshold = key, (float(ranked[k]) + below) / 2
    return round(min(max(threshold, 0.01), 0.99), 4)


def _smoothed_threshold(probabilities: NDArray[np.float64], kept: NDArray[np.bool_],
                        y: NDArray[np.float64], min_recall: float, width: float) -> float:
    """`choose_threshold` on the grid 0.01 ... 0.99, F1 averaged over +-``width``."""
    grid = np.round(np.arange(1, 100) / 100, 2)
    hits = kept[None, :] | (probabilities[None, :] >= grid[:, None])
    tp = hits @ y
    positives = float(y.sum())
    f1 = 2 * tp / (hits.sum(axis=1) + positives)
    recall = tp / positives
    eligible = recall >= min_recall - 1e-12
    if not eligible.any():
        return float(grid[int(np.argmax(recall))])  # the lowest cut of highest recall
    near = np.abs(grid[:, None] - grid[None, :]) <= width + 1e-9
    smoothed = (near @ f1) / near.sum(axis=1)
    smoothed[~eligible] = -1.0
    return float(grid[int(np.argmax(smoothed))])  # argmax: the first, lowest, of equals


@dataclass(frozen=True)
class _Fit:
    alpha: NDArray[np.float64]
    platt: tuple[float, float]
    threshold: float
    floor: float | None


def _fit_calibrated(gram: NDArray[np.float64], y: NDArray[np.float64],
                    groups: Sequence[str], folds: int, seed: int, regularisation: float,
                    weights: NDArray[np.float64], scores: NDArray[np.float64],
                    floor: float | None) -> _Fit:
    """Fit on all of ``gram``; calibrate, and choose the threshold (given the floor), on
    the out-of-fold decisions of `INNER_SPLITS` inner splits into folds, pooled."""
    strata = [str(int(label)) for label in y]
    decisions = np.zeros((INNER_SPLITS, len(y)))
    for split in range(INNER_SPLITS):
        # Split 0 is the single split of earlier versions (seed + 1).
        inner = assign_folds(groups, strata, folds, seed + 1 + split * 7919)
        for fold in range(folds):
            test = np.array([f == fold for f in inner])
            train_ = ~test
            if not test.any() or len(set(y[train_])) < 2:
                continue
            alpha = fit_dual_logistic(gram[np.ix_(train_, train_)], y[train_],
                                      regularisation, weights[train_])
            decisions[split, test] = gram[np.ix_(test, train_)] @ alpha
    alpha = fit_dual_logistic(gram, y, regularisation, weights)
    pooled_y, pooled_scores = np.tile(y, INNER_SPLITS), np.tile(scores, INNER_SPLITS)
    pooled = decisions.ravel()
    platt = fit_platt(pooled, pooled_y)
    a, b = platt
    calibrated = 1.0 / (1.0 + np.exp(-np.clip(a * pooled + b, -35, 35)))
    return _Fit(alpha, platt, choose_threshold(calibrated, pooled_scores, pooled_y, floor),
                floor)


def _probabilities(gram_rows: NDArray[np.float64], fit: _Fit) -> NDArray[np.float64]:
    a, b = fit.platt
    return np.array([sigmoid(a * z + b) for z in gram_rows @ fit.alpha])


def train(examples: Sequence[Example], topics: dict[str, Topic], spec: FeatureSpec, *,
          folds: int = DEFAULT_FOLDS, seed: int = 0,
          regularisation: float = DEFAULT_REGULARISATION, cross_validate: bool = True,
          trained_on: dict[str, Any] | None = None, floor: float | None = FLOOR
          ) -> tuple[RelevanceModel, dict[str, TopicReport]]:
    """A model for every topic with enough labelled candidates, and per topic the
    cross-validated report (``cross_validate=False`` skips the outer folds). Every topic's
    floor is ``floor`` (None: no floor), needing title evidence where `topic_floor` says."""
    featuriser = Featuriser(spec)
    outer = assign_folds([example.item.group for example in examples],
                         [",".join(sorted(example.item.labels)) for example in examples],
                         folds, seed)
    models: dict[str, TopicModel] = {}
    reports: dict[str, TopicReport] = {}
    for name, topic in topics.items():
        judged = [(i, example) for i, example in enumerate(examples)
                  if example.item.judges(name)]
        rows = [(i, example) for i, example in judged if name in example.candidates]
        y = np.array([1.0 if name in example.item.labels else 0.0 for _, example in rows])
        report = TopicReport(name, topic.threshold, fitted=False, examples=len(rows),
                             positives=int(y.sum()))
        reports[name] = report
        if not any(name in example.item.labels for _, example in judged):
            report.why_not = "no labelled examples: rules alone decide"
            continue
        if min(report.positives, len(rows) - report.positives) < MIN_EACH_CLASS:
            report.why_not = (f"{report.positives} relevant and {len(rows) - report.positives}"
                              f" not relevant candidates (need {MIN_EACH_CLASS} of each): "
                              "rules alone decide")
            continue
        matrix = featuriser.dense([example.candidates[name].features for _, example in rows])
        gram = (matrix @ matrix.T).astype(np.float64)
        groups = [example.item.group for _, example in rows]
        weights = np.array([example.item.weight for _, example in rows])
        kept_by_rules, needs_title = topic_floor(topic, floor)
        # The floor sees a rule score only where it may keep the candidate.
        outright = outright_rules(topic)
        scores = np.array([_floor_score(example, name, needs_title, outright, spec.frames)
                           for _, example in rows])
        fit = _fit_calibrated(gram, y, groups, folds, seed, regularisation, weights, scores,
                              kept_by_rules)
        models[name] = TopicModel(
            weights=(matrix.T.astype(np.float64) @ fit.alpha).astype(np.float32),
            platt=fit.platt, examples=len(rows), positives=report.positives,
            regularisation=regularisation, threshold=fit.threshold, floor=fit.floor,
            floor_needs_title=needs_title and fit.floor is not None,
            floor_needs_named=bool(outright) and fit.floor is not None)
        report.fitted, report.threshold, report.floor = True, fit.threshold, fit.floor
        report.floor_needs_title = models[name].floor_needs_title
        report.floor_needs_named = models[name].floor_needs_named
        if cross_validate:
            hit = _cross_validated(gram, y, groups, [outer[i] for i, _ in rows], folds, seed,
                                   regularisation, weights, scores, kept_by_rules)
            report.outcomes = _outcomes(name, judged, rows, *hit)
        log.info("relevance model fitted", extra={"topic": name, "examples": len(rows),
                                                  "positives": report.positives})
    model = RelevanceModel(spec=spec, topics=models, trained_on=trained_on or {})
    return model, reports


def _floor_score(example: Example, topic: str, needs_title: bool, outright: frozenset[str],
                 frames: dict[str, tuple[str, ...]]) -> float:
    """The candidate's rule score, or 0 when the floor would not keep it: it needs
    evidence in a headline that does not look back (`floor_headline`, with the families
    ``frames``) and the candidate lacks it, or the topic named outright (rules
    ``outright``, outside a list: `named_outright`) and the candidate does not name it so."""
    candidate = example.candidates[topic]
    document = example.item.document()
    if needs_title and not floor_headline(candidate.evidence, document, frames):
        return 0.0
    if outright and not named_outright(candidate.evidence, document.text, outright):
        return 0.0
    return candidate.score


def _cross_validated(gram: NDArray[np.float64], y: NDArray[np.float64], groups: list[str],
                     fold_of: list[int], folds: int, seed: int, regularisation: float,
                     weights: NDArray[np.float64], scores: NDArray[np.float64],
                     floor: float | None) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Out-of-fold probability of every row, and whether it is a hit by the floor or the
    threshold its fold's model chose (inside that fold's training part: the test fold
    never sets its own threshold)."""
    probability = np.full(len(y), np.nan)
    hit = np.zeros(len(y), dtype=bool)
    for fold in range(folds):
        test = np.array([f == fold for f in fold_of])
        train_ = ~test
        if not test.any():
            continue
        train_y = y[train_]
        if len(set(train_y)) < 2:
            probability[test] = float(train_y.mean()) if len(train_y) else 0.5
            hit[test] = probability[test] >= 0.5
            continue
        index = np.flatnonzero(train_)
        fit = _fit_calibrated(gram[np.ix_(train_, train_)], train_y,
                              [groups[i] for i in index], folds, seed, regularisation,
                              weights[train_], scores[train_], floor)
        probability[test] = _probabilities(gram[np.ix_(test, train_)], fit)
        hit[test] = probability[test] >= fit.threshold
        if fit.floor is not None:
            hit[test] |= scores[test] >= fit.floor
    return probability, hit


def _outcomes(name: str, judged: list[tuple[int, Example]], rows: list[tuple[int, Example]],
              probability: NDArray[np.float64], hit: NDArray[np.bool_]) -> list[Outcome]:
    by_index: dict[int, tuple[float | None, bool]] = {
        i: (float(p), bool(h)) for (i, _), p, h in zip(rows, probability, hit, strict=True)}
    outcomes = []
    for i, example in judged:
        p, predicted = by_index.get(i, (None, False))
        candidate = example.candidates.get(name)
        outcomes.append(Outcome(
            item=example.item, expected=name in example.item.labels, predicted=predicted,
            probability=None if p is None else round(p, 4),
            score=example.scores.get(name, 0.0),
            evidence=candidate.evidence if candidate is not None else ()))
    return outcomes


def rules_outcomes(examples: Iterable[Example], topics: dict[str, Topic]
                   ) -> dict[str, TopicReport]:
    """The rules alone on the same examples (score at the threshold): the 'before'."""
    reports = {name: TopicReport(name, topic.threshold, fitted=False)
               for name, topic in topics.items()}
    for example in examples:
        for name, topic in topics.items():
            if not example.item.judges(name):
                continue
            candidate = example.candidates.get(name)
            score = example.scores.get(name, 0.0)
            reports[name].outcomes.append(Outcome(
                item=example.item, expected=name in example.item.labels,
                predicted=candidate is not None and score >= topic.threshold,
                probability=None, score=score,
                evidence=candidate.evidence if candidate is not None else ()))
    return reports


def evaluate_model(model: RelevanceModel, examples: Sequence[Example],
                   topics: dict[str, Topic]) -> dict[str, TopicReport]:
    """A fitted model on examples it was not fitted on (a held-out set): what enrichment
    would report, topic by topic; topics without a model are judged by their rules."""
    reports = rules_outcomes(examples, topics)
    for name, topic in topics.items():
        topic_model = model.topics.get(name)
        if topic_model is None:
            continue
        report = TopicReport(name, topic.threshold, fitted=True)
        for example in examples:
            if not example.item.judges(name):
                continue
            candidate = example.candidates.get(name)
            p = None if candidate is None else topic_model.probability(candidate.features)
            report.outcomes.append(Outcome(
                item=example.item, expected=name in example.item.labels,
                predicted=candidate is not None and topic_model.keeps(
                    p or 0.0, candidate.score, topic.threshold,
                    titled=floor_headline(candidate.evidence, example.item.document(),
                                          model.spec.frames),
                    named=named_outright(candidate.evidence, example.item.document().text,
                                         outright_rules(topic))),
                probability=p,
                score=example.scores.get(name, 0.0),
                evidence=candidate.evidence if candidate is not None else ()))
        reports[name] = report
    return reports


def json_records(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of JSON lines with their line numbers; blank lines are skipped.

    Raises `ConfigError` naming ``source`` and the line of one that is not JSON or not an
    object."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}, line {number}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{source}, line {number}: expected a JSON object")
        yield number, record


def read_labelled(path: Path) -> list[LabelledItem]:
    """The items of a labelled JSON-lines file (``id``, ``title``, ``text``, ``labels``;
    optional ``judged``, the topics the labels speak for, as `feedback export` writes).

    Raises `ConfigError` naming the file and line of a bad record."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    for number, record in json_records(lines, str(path)):
        where = f"{path}, line {number}"
        labels, judged = record.get("labels", []), record.get("judged")
        if not _names(labels):
            raise ConfigError(f"{where}: 'labels' must be a list of topic names")
        if judged is not None and not _names(judged):
            raise ConfigError(f"{where}: 'judged' must be a list of topic names")
        title, text = record.get("title") or "", record.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise ConfigError(f"{where}: 'title' and 'text' must be strings")
        url, weight = record.get("url"), record.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                0 < weight <= 100):
            raise ConfigError(f"{where}: 'weight' must be a number in (0, 100]")
        items.append(LabelledItem(
            id=record.get("id", f"{path.name}:{number}"), title=title, text=text,
            labels=frozenset(labels), judged=None if judged is None else frozenset(judged),
            url=url if isinstance(url, str) else "", weight=float(weight)))
    return items


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)
