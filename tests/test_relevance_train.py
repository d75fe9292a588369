"""Training the relevance layer: reproducible, cross-validated, falling back to rules.

These run spaCy over real labelled items (the 195 of train.jsonl, a few seconds), then fit
the models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consumers.enrich.enrich import (
    Enricher,
    document_text,
    floor_headline,
    named_outright,
    outright_rules,
    titled,
)
from consumers.enrich.relevance import FeatureSpec, RelevanceModel, TopicModel, load_model
from consumers.enrich.train import (
    Example,
    LabelledItem,
    assign_folds,
    choose_threshold,
    featurise,
    read_labelled,
    topic_floor,
    train,
)
from newswatch.cli import main
from newswatch.errors import ConfigError
from schemas.topics_file import load_topics
from tests.enrich_fixtures import LABELLED

FILES = [LABELLED / "train.jsonl"]


@pytest.fixture(scope="module")
def examples(enricher: Enricher) -> list[Example]:
    items = [item for path in FILES for item in read_labelled(path)]
    return featurise(enricher, items, FeatureSpec())


def test_training_twice_gives_the_same_model_bytes(enricher: Enricher,
                                                   examples: list[Example]) -> None:
    topics = dict(enricher.topics.topics.topics)
    first, reports = train(examples, topics, FeatureSpec(), folds=4, seed=3)
    second, again = train(examples, topics, FeatureSpec(), folds=4, seed=3)
    assert first.to_bytes() == second.to_bytes()
    assert [o.probability for o in reports["is_threat"].outcomes] == [
        o.probability for o in again["is_threat"].outcomes]
    other_seed, _ = train(examples, topics, FeatureSpec(), folds=4, seed=4)
    assert other_seed.to_bytes() != first.to_bytes()  # the seed really moves the folds


def test_cross_validation_scores_every_candidate_out_of_fold(enricher: Enricher,
                                                             examples: list[Example]) -> None:
    topics = dict(enricher.topics.topics.topics)
    _, reports = train(examples, topics, FeatureSpec(), folds=5)
    report = reports["is_threat"]
    assert report.fitted
    assert len(report.outcomes) == len(examples)
    candidates = [o for o in report.outcomes if o.probability is not None]
    assert len(candidates) == report.examples
    tp, _fp, fn = report.counts()
    assert tp + fn == sum(1 for e in examples if "is_threat" in e.item.labels)


def test_folds_keep_a_story_together_and_spread_each_label() -> None:
    groups = ["a", "b", "a", "c", "d", "e", "f", "g"]
    strata = ["x", "y", "x", "x", "y", "x", "y", "x"]
    folds = assign_folds(groups, strata, 2, seed=0)
    assert folds[0] == folds[2]  # the same story in two files: one fold
    label_y = sorted(f for f, s in zip(folds, strata, strict=True) if s == "y")
    assert label_y in ([0, 0, 1], [0, 1, 1])  # three items of a label: not all in one fold
    assert assign_folds(groups, strata, 2, seed=0) == folds


def test_a_topic_without_examples_falls_back_to_its_rules(tmp_path: Path,
                                                          enricher: Enricher) -> None:
    from consumers.enrich.topics import DEFAULT_TOPICS_PATH

    extra_topic = (
        "\n  volcano:\n    description: Volcanic eruptions.\n    threshold: 0.5\n"
        "    rules:\n      - name: eruption\n        weight: 0.8\n"
        "        phrases: [volcanic eruption, volcano erupts]\n")
    for name in ("entity_aliases.yaml", "country_aliases.yaml"):
        (tmp_path / name).write_bytes((DEFAULT_TOPICS_PATH.parent / name).read_bytes())
    topics_path = tmp_path / "topics.yaml"
    topics_path.write_text(DEFAULT_TOPICS_PATH.read_text().replace(
        "relevance: relevance-model.json\n", "relevance: model.json\n") + extra_topic)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_bytes((LABELLED / "articles.jsonl").read_bytes())
    out = tmp_path / "model.json"

    assert main(["topics", "train", str(labelled), "--out", str(out), "--topics",
                 str(topics_path), "--folds", "3"]) == 0

    model = load_model(out)
    assert "volcano" not in model.topics
    assert model.topics  # the default topics have labelled examples there
    volcanic = Enricher(enricher.nlp, load_topics(topics_path), relevance=model)
    analysis = volcanic.analyse(document_text("Volcano erupts in Iceland, flights halted"))
    (hit,) = analysis.hits
    assert hit.topic == "volcano"
    assert hit.probability is None
    assert hit.score >= 0.5


def test_topics_train_prints_cross_validated_figures_per_topic(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.json"
    assert main(["topics", "train", *map(str, FILES), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for topic in ("is_threat", "drug_trafficking", "recognition"):
        assert f"{topic:<20} relevance" in printed
        assert f"{topic:<20} rules" in printed
    assert "5-fold cross-validation" in printed
    assert json.loads(out.read_text())["trained_on"]["items"] == 195


def test_eval_cv_prints_the_table_and_the_worst_errors(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *map(str, FILES), "--cv", "4", "--worst", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4-fold cross-validation" in printed
    assert "worst errors" in printed
    assert "recognition          relevance" in printed


def test_eval_cv_exits_1_below_min_f1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(LABELLED / "articles.jsonl"), "--cv", "3",
                 "--min-f1", "0.999"]) == 1
    assert "F1 below 0.999" in capsys.readouterr().out


@pytest.mark.parametrize(("line", "message"), [
    ('{"title": "x", "labels": "is_threat"}', "'labels' must be a list"),
    ('{"title": "x", "labels": [], "judged": 3}', "'judged' must be a list"),
    ('{"title": "x", "labels": [], "weight": -1}', "'weight' must be a number"),
    ("[1]", "expected a JSON object"),
    ("{not json", "not JSON"),
])
def test_a_bad_labelled_line_names_the_file_and_line(tmp_path: Path, line: str,
                                                     message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "fine", "labels": []}\n' + line + "\n")
    with pytest.raises(ConfigError, match=rf"bad\.jsonl, line 2: {message}"):
        read_labelled(path)


def test_a_judged_item_trains_only_the_topics_it_was_judged_on() -> None:
    item = LabelledItem(id="a", title="t", text="", labels=frozenset({"recognition"}),
                        judged=frozenset({"recognition"}))
    assert item.judges("recognition")
    assert not item.judges("is_threat")
    assert LabelledItem(id="b", title="t", text="", labels=frozenset()).judges("is_threat")



def test_the_threshold_keeps_the_recall_target_with_the_best_f1() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 1, 1, 0, 0, 0, 1], dtype=float)
    scores = np.zeros(len(y))  # no rule score reaches the floor
    # Recall >= 0.75: four of the five positives, one negative (F1 0.80), halfway to 0.4.
    assert choose_threshold(p, scores, y, min_recall=0.75, smoothing=0) == 0.45
    # Recall 1.0 needs the last positive too, whatever it costs.
    assert choose_threshold(p, scores, y, min_recall=1.0, smoothing=0) == 0.05


def test_the_threshold_leaves_to_the_floor_what_the_floor_keeps() -> None:
    # A positive the model doubts (0.1) with the rules' strongest evidence (score 0.95):
    # the floor keeps it, so the threshold need not sink to 0.1 and take a false alarm.
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.05])
    y = np.array([1, 1, 0, 1, 0], dtype=float)
    scores = np.array([0.9, 0.9, 0.5, 0.95, 0.3])
    assert choose_threshold(p, scores, y, floor=0.8, min_recall=0.95,
                            smoothing=0) == 0.75
    assert choose_threshold(p, scores, y, floor=None, min_recall=0.95,
                            smoothing=0) == 0.075


def test_the_smoothed_threshold_does_not_jump_when_two_neighbours_swap() -> None:
    # Two items 0.01 apart (0.39 and 0.38) swap labels, as a different sample might have
    # it: the exact best cut jumps from 0.385 to 0.025; the smoothed one moves 0.01.
    p = np.array([0.88, 0.79, 0.78, 0.77, 0.66, 0.58, 0.43, 0.39, 0.38, 0.32, 0.13, 0.05])
    y = np.array([1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1], dtype=float)
    swapped = y.copy()
    swapped[[7, 8]] = swapped[[8, 7]]
    scores = np.zeros(len(y))
    exact = [choose_threshold(p, scores, labels, min_recall=0.75, smoothing=0)
             for labels in (y, swapped)]
    assert exact == [0.385, 0.025]
    smoothed = [choose_threshold(p, scores, labels, min_recall=0.75) for labels in (y, swapped)]
    assert smoothed == [0.29, 0.28]
    for cut, labels in zip(smoothed, (y, swapped), strict=True):
        assert labels[p >= cut].sum() / labels.sum() >= 0.75  # the recall target holds
    # No cut reaches the recall target: the lowest cut, of the highest recall.
    assert choose_threshold(p, scores, y, min_recall=1.01) == 0.01


def test_the_smoothed_threshold_counts_what_the_floor_keeps() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.05])
    y = np.array([1, 1, 0, 1, 0], dtype=float)
    scores = np.array([0.9, 0.9, 0.5, 0.95, 0.3])
    # The floor keeps the doubted positive (0.1): the cut need not sink below 0.1.
    assert choose_threshold(p, scores, y, floor=0.8, min_recall=0.95) > 0.1
    assert choose_threshold(p, scores, y, floor=None, min_recall=0.95) <= 0.1


def test_a_topic_whose_rules_never_name_it_outright_has_a_floor_for_headlines_only(
        enricher: Enricher, examples: list[Example]) -> None:
    topics = dict(enricher.topics.topics.topics)
    # is_threat's heaviest rule weighs 0.6: 0.8 only by adding up moderate words.
    assert max(rule.weight for rule in topics["is_threat"].rules) < 0.8
    assert topic_floor(topics["is_threat"]) == (0.8, True)
    assert topic_floor(topics["drug_trafficking"]) == topic_floor(topics["recognition"]) == (
        0.8, False)
    assert topic_floor(topics["recognition"], floor=None) == (None, False)
    model, reports = train(examples, topics, FeatureSpec(), cross_validate=False)
    threat = model.topics["is_threat"]
    assert (threat.floor, threat.floor_needs_title) == (0.8, True)
    assert reports["is_threat"].floor_needs_title
    assert not model.topics["recognition"].floor_needs_title
    # A long piece on Iraq's protests whose rules reach 0.8 deep in the text, never in the
    # headline: the floor leaves it to the model, which calls it a passing mention.
    passing = next(example for example in examples if example.item.id == "t-184")
    candidate = passing.candidates["is_threat"]
    assert candidate.score >= 0.8
    assert not passing.item.labels
    assert not titled(candidate.evidence, passing.item.document().title_end)
    assert not threat.keeps(threat.probability(candidate.features), candidate.score,
                            topics["is_threat"].threshold, titled=False)
    # The same evidence in a headline is kept by the floor, however the model doubts it.
    assert threat.keeps(0.0, candidate.score, topics["is_threat"].threshold, titled=True)


def test_a_headline_that_looks_back_gives_no_headline_floor(enricher: Enricher) -> None:
    """An anniversary names the group beside a killing in its headline as a report of the
    attack does: the headline floor keeps the report, the model alone judges the memorial
    (and a model file without the retrospective family keeps the floor as it was)."""
    spec = FeatureSpec()
    doubting = TopicModel(weights=np.zeros(spec.size, dtype=np.float32), platt=(1.0, 0.0),
                          threshold=0.99, floor=0.8, floor_needs_title=True)
    judged = Enricher(enricher.nlp, enricher.topics,
                      relevance=RelevanceModel(spec, {"is_threat": doubting}, {}))
    lead = "The attack on the seafront promenade was claimed by the Islamic State group."
    report = document_text("Islamic State attack in seaside town kills 86", content=lead)
    memorial = document_text("Seaside town marks a year since Islamic State attack that "
                             "killed 86", content=lead)
    for document, kept in ((report, True), (memorial, False)):
        analysis = judged.analyse_many([document], features=spec)[0]
        candidate = analysis.candidates["is_threat"]
        assert candidate.score >= 0.8
        assert titled(candidate.evidence, document.title_end)
        assert floor_headline(candidate.evidence, document, spec.frames) is kept
        assert analysis.probabilities["is_threat"] < 0.99  # the model doubts both
        assert ("is_threat" in {hit.topic for hit in analysis.hits}) is kept
        assert floor_headline(candidate.evidence, document, frames={})


def test_the_seed_article_keeps_its_topics_with_a_model_that_never_saw_it(
        enricher: Enricher) -> None:
    """No special weight: trained without the seed article at all, the floor (the rules'
    strongest evidence keeps a topic) keeps all three of its topics."""
    from tests.enrich_fixtures import SEED_ARTICLE

    files = ("train.jsonl", "articles.jsonl", "extra.jsonl", "relevance-extra.jsonl",
             "relevance-extra-2.jsonl", "relevance-extra-3.jsonl", "heldout-2026e.jsonl",
             "relevance-extra-4.jsonl", "heldout-2026f.jsonl")
    items = [item for name in files for item in read_labelled(LABELLED / name)]
    assert not any("seed" in str(item.id) for item in items)
    topics = dict(enricher.topics.topics.topics)
    model, _ = train(featurise(enricher, items, FeatureSpec()), topics, FeatureSpec(),
                     cross_validate=False)
    judged = Enricher(enricher.nlp, enricher.topics, relevance=model)
    lines = SEED_ARTICLE.read_text().splitlines()
    document = document_text(lines[0], content="\n".join(lines[1:]))
    analysis = judged.analyse(document)
    hits = {hit.topic: hit for hit in analysis.hits}
    assert set(hits) == {"is_threat", "drug_trafficking", "recognition"}
    for hit in hits.values():
        assert hit.evidence
        assert model.topics[hit.topic].keeps(
            hit.probability or 0.0, hit.score, topics[hit.topic].threshold,
            titled=titled(hit.evidence, len(lines[0])),
            named=named_outright(hit.evidence, document.text,
                                 outright_rules(topics[hit.topic])))
