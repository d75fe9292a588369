"""Bounded candidate retrieval: the clusterer looks up only an article's heaviest words
and scores only the best-found stories, and that must change no answer that matters;
and the faster MinHash and the leaner duplicate index keep their contracts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.stories import near_dup
from consumers.stories.cluster import ClusterConfig, StoryClusterer, StoryInput, cluster_all
from consumers.stories.jsonl import read_lines
from consumers.stories.text import shingles

DATA = Path(__file__).resolve().parents[2] / "consumers" / "stories" / "data"
T0 = datetime(2026, 7, 13, 22, 0, tzinfo=UTC)
EXHAUSTIVE = replace(ClusterConfig(), index_words=10**6, query_words=10**6,
                     posting_cap=10**9, candidates=10**9)


@pytest.mark.parametrize("name", ["uci-dev", "demo-feeds", "bearsears-2026",
                                  "labelled-news-2016-2025"])
def test_bounded_retrieval_places_every_labelled_article_as_an_exhaustive_search(
        name: str) -> None:
    with (DATA / f"{name}.jsonl").open() as lines:
        articles = [item.article for item in read_lines(lines)]
    bounded = cluster_all(articles)
    exhaustive = cluster_all(articles, EXHAUSTIVE)
    differ = [(a.id, a.story, b.story) for a, b in zip(bounded, exhaustive, strict=True)
              if a.story != b.story]
    assert differ == []


def test_a_rare_word_finds_its_story_behind_a_long_posting_list_of_a_common_one() -> None:
    config = replace(ClusterConfig(), posting_cap=8, candidates=4)
    clusterer = StoryClusterer(config)
    clusterer.place(StoryInput("titanfall", "Titanfall launch sells out at market stalls",
                               published=T0, outlet="A"))
    # Forty later stories share "market": its posting list is five times the cap, and
    # the Titanfall story is at its old end.
    for n in range(40):
        clusterer.place(StoryInput(f"other-{n}", f"Market town{n}x fair{n}y",
                                   published=T0 + timedelta(minutes=n + 1), outlet="B"))
    assert clusterer.open_stories == 41
    placed = clusterer.place(StoryInput(
        "follow-up", "Titanfall sells out: market stalls empty", outlet="C",
        published=T0 + timedelta(hours=1)))
    assert placed.story == "titanfall"


def test_only_an_articles_heaviest_words_are_looked_up() -> None:
    # The shared word is the article's lightest: with query_words=1 it is not looked up,
    # so the story is not found; looking up all words finds it.
    first = StoryInput("a", "Zyxoria election result", published=T0, outlet="A")
    second = StoryInput("b", "Qwembly votes count election result", outlet="B",
                        published=T0 + timedelta(hours=1))
    narrow = cluster_all([first, second], replace(ClusterConfig(), query_words=1))
    wide = cluster_all([first, second], replace(ClusterConfig(), query_words=8))
    assert narrow[1].story == "b"
    assert wide[1].story == "a"


def test_closed_stories_leave_no_postings_behind() -> None:
    clusterer = StoryClusterer(ClusterConfig(quiet=timedelta(hours=1)))
    clusterer.place(StoryInput("a", "Zyxoria election result", published=T0))
    clusterer.place(StoryInput("b", "Zyxoria election recount", published=T0))
    clusterer.place(StoryInput("c", "Unrelated qwembly harvest",
                               published=T0 + timedelta(hours=3)))
    assert clusterer.open_stories == 1
    # What is left indexes only the open story's words (memory follows open stories).
    assert clusterer.indexed_words() == {"unrelated", "qwembly", "harvest"}


def _pure_minhash(features: set[str]) -> list[int]:
    """The signature's definition, as the first version computed it."""
    values = [near_dup._hash64(feature) for feature in features]
    return [min(((a * v + b) & near_dup._MASK) % near_dup._PRIME for v in values)
            for a, b in near_dup._PARAMS]


@pytest.mark.parametrize("text", [
    "The Interior Department said on Monday that the boundaries of the two monuments",
    "één twee drie vier vijf zes zeven acht negen tien elf twaalf dertien",
    "x",
])
def test_the_vectorised_minhash_gives_the_signature_of_its_definition(text: str) -> None:
    features = shingles(text)
    assert list(near_dup.minhash(features)) == _pure_minhash(features)


def test_the_duplicate_index_finds_and_forgets_articles_sharing_band_keys() -> None:
    text = ("The Interior Department said on Monday that the boundaries of the two "
            "national monuments in southern Utah would be cut by about ninety percent")
    print_ = near_dup.fingerprint(text)
    assert print_ is not None
    index = near_dup.DuplicateIndex()
    index.add("first", print_)
    index.add("second", print_)  # the same band keys: they now hold two articles
    index.add("third", print_)
    assert index.find(print_) == "first"
    index.remove("first")
    assert index.find(print_) == "second"
    index.remove("second")
    assert index.find(print_) == "third"
    index.remove("third")
    index.remove("third")  # removing twice is harmless
    assert index.find(print_) is None
    assert len(index) == 0


SERIES = ["Workshop offer: Kubernetes security hardening for admins",
          "Zyxoria council cancels workshop offer for qwembly farmers",
          "Workshop offer withdrawn as Plorvik strike halts Tandria trains",
          "Vexmoor museum workshop offer draws record Quillon crowds",
          "Workshop offer: pentesting tools"]


@pytest.mark.parametrize(("damping", "last_joins_first"), [(0.0, True), (1.0, False)])
def test_an_outlets_recurring_words_are_no_evidence_between_its_own_items(
        damping: float, last_joins_first: bool) -> None:
    # One outlet uses "workshop offer" in item after item (its series' frame); its last
    # workshop advert shares only the frame with the first, which only it has reported.
    articles = [StoryInput(f"d{i}", title, outlet="Daily", language="en",
                           published=T0 + timedelta(hours=i))
                for i, title in enumerate(SERIES)]
    placed = cluster_all(articles, replace(ClusterConfig(), outlet_damping=damping))
    assert [p.story for p in placed[:4]] == ["d0", "d1", "d2", "d3"]
    assert (placed[4].story == "d0") is last_joins_first


def test_the_same_words_from_another_outlet_are_still_evidence() -> None:
    articles = [StoryInput(f"d{i}", title, outlet="Daily", language="en",
                           published=T0 + timedelta(hours=i))
                for i, title in enumerate(SERIES[:4])]
    articles.append(StoryInput("other", "Workshop offer: Kubernetes hardening", outlet="Wire",
                               language="en", published=T0 + timedelta(hours=5)))
    assert cluster_all(articles)[-1].story == "d0"
