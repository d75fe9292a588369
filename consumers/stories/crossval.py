"""Story-disjoint cross-validation of the clusterer's knobs.

The labelled stories are dealt into ``folds`` groups by a hash of the story id, so each
story's articles all fall in one fold. For each fold the knobs are chosen by grid search
on the other folds' articles (clustered together, in their order), then scored on the
held-out fold two ways:

- ``alone``: the held-out articles clustered by themselves;
- ``in context``: clustered together with all the other articles (more stories open at
  once, so more chances to merge wrongly), scored on the held-out articles only.

The held-out figures are what a clusterer tuned this way does on stories it never saw.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from consumers.stories.bcubed import Scores, bcubed
from consumers.stories.cluster import ClusterConfig, StoryClusterer
from consumers.stories.jsonl import LabelledInput

GRID = {
    "threshold": (0.10, 0.12, 0.15, 0.18),
    "spread_power": (0.0, 0.5, 1.0),
    "prevalence_power": (0.3, 0.5, 0.7),
}


@dataclass(frozen=True)
class FoldResult:
    fold: int
    stories: int
    articles: int
    chosen: ClusterConfig
    train: Scores
    alone: Scores
    in_context: Scores


def fold_of(story: str, folds: int) -> int:
    return int(hashlib.sha256(story.encode()).hexdigest(), 16) % folds


def _score(items: Sequence[LabelledInput], config: ClusterConfig,
           scored: set[str] | None = None) -> Scores:
    clusterer = StoryClusterer(config)
    predicted = {item.article.id: clusterer.place(item.article).story for item in items}
    gold = {item.article.id: item.story for item in items
            if item.story is not None and (scored is None or item.article.id in scored)}
    return bcubed(predicted, gold)


def configs(base: ClusterConfig) -> Iterator[ClusterConfig]:
    for threshold, spread_power, power in itertools.product(
            GRID["threshold"], GRID["spread_power"], GRID["prevalence_power"]):
        yield replace(base, threshold=threshold, spread_power=spread_power,
                      prevalence_power=power)


def cross_validate(items: Sequence[LabelledInput], folds: int = 5,
                   base: ClusterConfig | None = None) -> list[FoldResult]:
    base = base or ClusterConfig()
    labelled = [item for item in items if item.story is not None]
    results = []
    for fold in range(folds):
        held = [item for item in labelled if fold_of(str(item.story), folds) == fold]
        train = [item for item in labelled if fold_of(str(item.story), folds) != fold]
        if not held or not train:
            continue
        best_config, best = base, None
        for config in configs(base):
            scores = _score(train, config)
            if best is None or scores.f1 > best.f1:
                best_config, best = config, scores
        assert best is not None
        held_ids = {item.article.id for item in held}
        results.append(FoldResult(
            fold=fold, stories=len({item.story for item in held}), articles=len(held),
            chosen=best_config, train=best, alone=_score(held, best_config),
            in_context=_score(labelled, best_config, held_ids)))
    return results
