"""B-cubed scoring of a clustering against labelled stories, and where it goes wrong.

B-cubed (Bagga and Baldwin, 1998) scores each item: precision is the share of the
item's predicted cluster that truly belongs with it, recall the share of its true story
that the prediction put with it; both averaged over items, F1 their harmonic mean.
Unlike pairwise scores it does not let one huge cluster dominate by its square.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    items: int
    stories: int
    clusters: int


@dataclass(frozen=True)
class Merge:
    """A predicted cluster that holds several true stories."""

    cluster: str
    size: int
    stories: tuple[tuple[str, int], ...]  # (story, articles in this cluster), largest first
    cost: float  # how much B-cubed precision mass this merge loses


@dataclass(frozen=True)
class Split:
    """A true story spread over several predicted clusters."""

    story: str
    size: int
    clusters: tuple[tuple[str, int], ...]
    cost: float  # how much B-cubed recall mass this split loses


def bcubed(predicted: Mapping[str, str], gold: Mapping[str, str]) -> Scores:
    """Score ``predicted`` (item -> cluster) against ``gold`` (item -> story) over the
    items of ``gold``; an item missing from ``predicted`` is a cluster of its own."""
    if not gold:
        raise ValueError("no labelled items to score")
    clusters: dict[str, list[str]] = defaultdict(list)
    stories: dict[str, list[str]] = defaultdict(list)
    for item, story in gold.items():
        clusters[predicted.get(item, f"\x00{item}")].append(item)
        stories[story].append(item)
    overlap: Counter[tuple[str, str]] = Counter(
        (predicted.get(item, f"\x00{item}"), story) for item, story in gold.items())
    precision = recall = 0.0
    for (cluster, story), together in overlap.items():
        precision += together * together / len(clusters[cluster])
        recall += together * together / len(stories[story])
    n = len(gold)
    precision, recall = precision / n, recall / n
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, n, len(stories), len(clusters))


def worst(predicted: Mapping[str, str], gold: Mapping[str, str], limit: int = 5
          ) -> tuple[list[Merge], list[Split]]:
    """The merges and splits that cost the most B-cubed precision and recall."""
    by_cluster: dict[str, Counter[str]] = defaultdict(Counter)
    by_story: dict[str, Counter[str]] = defaultdict(Counter)
    for item, story in gold.items():
        cluster = predicted.get(item, f"\x00{item}")
        by_cluster[cluster][story] += 1
        by_story[story][cluster] += 1
    n = len(gold)
    merges = []
    for cluster, counts in by_cluster.items():
        if len(counts) < 2:
            continue
        size = sum(counts.values())
        lost = sum(c * (size - c) / size for c in counts.values()) / n
        merges.append(Merge(cluster, size, tuple(counts.most_common()), lost))
    splits = []
    for story, counts in by_story.items():
        if len(counts) < 2:
            continue
        size = sum(counts.values())
        lost = sum(c * (size - c) / size for c in counts.values()) / n
        splits.append(Split(story, size, tuple(counts.most_common()), lost))
    merges.sort(key=lambda m: (-m.cost, m.cluster))
    splits.sort(key=lambda s: (-s.cost, s.story))
    return merges[:limit], splits[:limit]
