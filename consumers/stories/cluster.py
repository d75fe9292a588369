"""The story clusterer: each article, in arrival order, joins an open story or starts one.

`StoryClusterer` is a deterministic, online function object: ``place(article)`` decides
once, from what was placed before, and never revisits history. Two levels:

1. near-duplicate: a copy of an article of an open story (`consumers.stories.near_dup`)
   gets ``duplicate_of`` = that article's original and joins its story;
2. story: otherwise the article is scored against the open stories that share one of
   its heaviest words, found through an inverted index (word -> open stories), so placing
   an article costs a few short posting lists, not the number of open stories.

Retrieval and scoring are two steps, so the cost per article stays flat as stories open:

- the index holds, for each article, only its ``index_words`` heaviest words (what
  names the event: "titanfall", "snowden"; a summary's thirty ordinary words are left
  out), and an article looks up only its ``query_words`` heaviest, reading at most the
  ``posting_cap`` stories that most recently got each word;
- the ``candidates`` stories that found the most of that weight are then scored exactly,
  on all the article's words against each story's full word counts.

The score of a story for an article is the share of the article's word weight that the
story covers, each shared word counted by how prevalent it is in the story:

    score = sum(w(t) * min(1, (df_story(t) / n_story) ** power)) / sum(w(t))

with w(t) = rarity(t) * spread(t) ** spread_power from `consumers.stories.salience`
(rarity in the article's language; spread over the open stories that index the word
(the inverted index), off by default: on the
dev and demo sets it cost more recall within big stories than it saved precision).
The best story at or above ``threshold`` wins, else the article starts a
story whose id is the article's own id (stable: the same stream gives the same ids).
Before a story wins, the signs that it is another event of the article's subject (a
template series naming another subject, names shared without an action word, a digest;
see ``ClusterConfig.entity_conflict``) may lower its score: checked on the best-scored
stories only, from the best down, as they can only lower a score.

A story that had no article for ``quiet`` (on the stream's clock: the latest
``published`` seen) is closed: dropped from memory, so memory follows the open stories.
Its articles keep their story id; a later article about the event starts a new story.

The same order of the same articles always gives the same answers: no randomness, no
wall clock, no iteration over hash-ordered sets.
"""

from __future__ import annotations

import heapq
import sys
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter

from consumers.stories.digest import is_digest
from consumers.stories.names import name_terms, plain_terms, template_conflict
from consumers.stories.near_dup import DuplicateIndex, Fingerprint, fingerprint
from consumers.stories.salience import RARITY_CEILING, guess_language, rarity, spread, zipf
from consumers.stories.text import leads, strip_outlet, surfaces, terms

# Near-duplicates compare the title and this many first words of the text: enough to
# tell a copy from a rewrite, and what story_articles keeps to rebuild after a restart.
COPY_WORDS = 100
# A word at least this frequent in its language (Zipf: "fire" 5.3, "union" 5.1; "Taliban"
# 3.7, "Trump" 4.9) is an ordinary word even when written as part of a name.
ORDINARY_ZIPF = 5.0
# A name at most this frequent names one thing in the news ("Escalante" 2.4, "Titanfall"
# 2.6): sharing it is evidence of one event without an action word.
SPECIFIC_NAME_ZIPF = 3.0


@dataclass(frozen=True)
class ClusterConfig:
    """The clusterer's knobs. The defaults were chosen on the UCI dev set (checked by
    story-disjoint cross-validation) under the constraint that the demo feeds keep their
    precision; docs/stories.md has the figures."""

    threshold: float = 0.15
    # A story that only the article's own outlet has reported needs this score instead.
    # One outlet's items share its beat and house vocabulary (a tech site's "KI", a
    # series' "wellness calendar", an advert's "iX-Workshop"), which the language-wide
    # rarity table cannot know: on the demo feeds, 29 of 341 stories mixed events, nearly
    # all one outlet's items on one subject. Twice the evidence, not a ban: an outlet
    # does follow its own story (the State of the Union, election night).
    same_outlet_threshold: float = 0.30
    # The shared evidence must also weigh this much in absolute terms: one shared common
    # word ("trump") is a large share of a short headline but proves nothing.
    min_evidence: float = 0.0
    # A story that shares a single word with the article needs that word to be this rare
    # (Zipf <= ceiling - lone_word): "titanfall" alone is evidence, "gewinn" is not.
    lone_word: float = 0.0
    # ... "single" counting only words of at least this weight, and "several" meaning
    # at least ``min_shared`` of them.
    salient_weight: float = 1.5
    min_shared: int = 2
    prevalence_power: float = 0.5
    rarity_ceiling: float = RARITY_CEILING
    spread_power: float = 0.0
    text_words: int = 40
    text_weight: float = 0.5
    entity_boost: float = 1.5
    quiet: timedelta = timedelta(hours=72)
    # Retrieval (see the module docstring). Each bounds the cost per article whatever
    # the number of open stories: at most query_words * posting_cap postings read and
    # ``candidates`` stories scored. Chosen on the dev sets, where they change no
    # placement against an exhaustive search (docs/stories.md).
    index_words: int = 12
    query_words: int = 12
    posting_cap: int = 256
    candidates: int = 16
    # Against a story only the article's own outlet has reported, a shared word counts
    # as evidence 1 / (1 + outlet_damping * n) of its weight, n = how many of the
    # outlet's other open articles have it among their ``outlet_words`` heaviest: the
    # outlet's recurring words (its section, its series' frame, its beat) stop being
    # evidence between its own items. On the demo feeds: 10 predicted stories of 399
    # mixed events before, 5 of 408 after (gone: a tech site's two "KI" items, a tablet
    # review and a tablet top-ten, a county-calendar pair...); nothing changed on the
    # UCI or labelled-news sets (many outlets).
    outlet_damping: float = 1.0
    outlet_words: int = 12
    # Telling one event from one subject (`consumers.stories.names`):
    # - a story whose title shares the article's title frame but names, where the two
    #   differ, another subject than the article's ("Fairfax County wellness calendar,
    #   Aug. 16-22" and "Prince William County wellness calendar, Aug. 16-23") has its
    #   score multiplied by ``entity_conflict``;
    # - when both the article and the story have text, the shared words that are not
    #   names (the action: "recognition", "attack", "shrinks") must weigh at least
    #   ``min_event_evidence``: sharing "Taliban" and "Afghan" says who, not what
    #   happened. Bare headlines are exempt: they have too few words to repeat the
    #   action ("Titanfall review roundup" and "Buy Titanfall and save $15").
    # A digest (`consumers.stories.digest`) never joins a story nor takes one's articles
    # but as a near-duplicate: it lists several events, and would bridge them.
    entity_conflict: float = 0.0
    min_event_evidence: float = 1.0


@dataclass(frozen=True)
class StoryInput:
    """What the clusterer reads of an article."""

    id: str
    title: str
    text: str = ""
    published: datetime | None = None
    outlet: str = ""
    entities: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where an article went. ``new_story`` when it started ``story``."""

    id: str
    story: str
    duplicate_of: str | None
    new_story: bool
    score: float


@dataclass(slots=True)
class OpenStory:
    """A story still taking articles: its word counts and who is in it."""

    id: str
    title: str
    first_seen: datetime | None
    last_seen: datetime | None
    language: str = "en"
    articles: int = 0
    df: dict[str, int] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    outlets: dict[str, None] = field(default_factory=dict)
    indexed: list[str] = field(default_factory=list)  # its words in the inverted index
    # (outlet, words) of each of its articles with an outlet: what to take back from the
    # outlets' word counts when the story closes.
    outlet_counted: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    names: tuple[str, ...] = ()  # the words its articles write as names
    has_text: bool = False  # one of its articles had text, not just a title
    digest: bool = False  # started by a digest: takes near-duplicates only


@dataclass(frozen=True)
class _Features:
    weights: dict[str, float]
    total: float
    heaviest: list[str]  # its heaviest words (index_words or outlet_words), heaviest first
    print_: Fingerprint | None
    language: str
    title: tuple[str, ...]  # the title's terms, in order
    names: frozenset[str]
    plain: frozenset[str]  # the words it writes in lower case
    has_text: bool
    digest: bool


class StoryClusterer:
    """Online story clustering; see the module docstring for the contract."""

    def __init__(self, config: ClusterConfig | None = None, *, keep_closed: bool = False
                 ) -> None:
        """``keep_closed``: remember closed stories until `drain_closed` (the stage
        records them); off, they are simply forgotten (the CLI)."""
        self.config = config or ClusterConfig()
        self._keep_closed = keep_closed
        self._stories: OrderedDict[str, OpenStory] = OrderedDict()  # by last update
        # word -> the open stories that index it (it was among one of their articles'
        # ``index_words`` heaviest), in the order they got it. A list, not a set or
        # dict: most words are in one or two stories, and a one-item list costs a third
        # of a one-item dict; a story is added once (see `_add`).
        self._postings: dict[str, list[str]] = {}
        self._member_of: dict[str, str] = {}  # article id -> story, open stories only
        # outlet -> word -> how many of the outlet's articles in open stories have it
        # among their ``outlet_words`` heaviest (kept with the stories: a restart that
        # rebuilds the open stories rebuilds it too)
        self._outlet_df: dict[str, dict[str, int]] = {}
        self._original_of: dict[str, str] = {}  # article id -> original, for copies
        self._duplicates = DuplicateIndex()
        self._clock: datetime | None = None
        self._closed: list[OpenStory] = []  # closed since the last `drain_closed`

    # --- what callers ask ---------------------------------------------------------------

    @property
    def open_stories(self) -> int:
        return len(self._stories)

    def story(self, story_id: str) -> OpenStory | None:
        return self._stories.get(story_id)

    def indexed_words(self) -> set[str]:
        """The words in the inverted index (diagnostics: they are the open stories')."""
        return set(self._postings)

    def known(self, article_id: str) -> str | None:
        """The story of an article of an open story, if it was placed already."""
        return self._member_of.get(article_id)

    def place(self, article: StoryInput) -> Placement:
        """Place ``article``: the same answer again for an article already placed."""
        placed = self._replay(article.id)
        if placed is not None:
            return placed
        self._advance(article.published)
        when = article.published or self._clock
        features = self._features(article)
        original = None
        if features.print_ is not None:
            original = self._duplicates.find(features.print_)
        story_id: str | None
        if original is not None:
            story_id, score = self._member_of[original], 1.0
            original = self._original_of.get(original, original)
        else:
            story_id, score = self._best_story(article, features, when)
        new_story = story_id is None
        self._add(article, features, story_id or article.id, original, when)
        return Placement(article.id, story_id or article.id, original, new_story, score)

    def restore(self, article: StoryInput, story_id: str, duplicate_of: str | None
                ) -> Placement:
        """Put back an article whose placement was decided before (a restart rebuilding
        the open stories, or a replay): the stored answer stands, the state learns it."""
        placed = self._replay(article.id)
        if placed is not None:
            return placed
        self._advance(article.published)
        features = self._features(article)
        new_story = story_id not in self._stories
        self._add(article, features, story_id, duplicate_of, article.published or self._clock)
        return Placement(article.id, story_id, duplicate_of, new_story, 1.0)

    def drain_closed(self) -> list[OpenStory]:
        """The stories closed since the last call (the stage records them)."""
        closed, self._closed = self._closed, []
        return closed

    def requeue_closed(self, closed: list[OpenStory]) -> None:
        """Give back what `drain_closed` returned when recording it failed."""
        self._closed[:0] = closed

    def close_quiet(self) -> list[OpenStory]:
        """Close the stories quiet for longer than ``config.quiet``; return them."""
        if self._clock is None:
            return []
        cutoff = self._clock - self.config.quiet
        closed: list[OpenStory] = []
        # Stories are ordered by last update, which follows the clock for a stream in
        # time order; a late article about an old story reopens nothing.
        while self._stories:
            story = next(iter(self._stories.values()))
            # A story from before the first dated article (no time at all) is closed
            # with the first date: undated, it would otherwise never go quiet.
            if story.last_seen is not None and story.last_seen >= cutoff:
                break
            self._evict(story)
            closed.append(story)
        if self._keep_closed:
            self._closed.extend(closed)
        return closed

    # --- steps --------------------------------------------------------------------------

    def _replay(self, article_id: str) -> Placement | None:
        story_id = self._member_of.get(article_id)
        if story_id is None:
            return None
        return Placement(article_id, story_id, self._original_of.get(article_id), False, 1.0)

    def _advance(self, published: datetime | None) -> None:
        if published is not None and (self._clock is None or published > self._clock):
            self._clock = published
            self.close_quiet()

    def _features(self, article: StoryInput) -> _Features:
        config = self.config
        open_count = len(self._stories)
        entity_words = set(terms(" ".join(article.entities))) if article.entities else set()
        # The outlet's own name ("heise", "guardian") says who wrote it, not what about.
        outlet_words = set(terms(article.outlet)) if article.outlet else set()
        title = strip_outlet(article.title)
        title_words = surfaces(title)
        written, copy_lead, read_lead = leads(article.text, COPY_WORDS, config.text_words)
        lead_words = surfaces(read_lead)
        language = guess_language([*title_words.values(), *lead_words.values()][:40],
                                  article.language)
        weights: dict[str, float] = {}
        for found, factor in ((title_words, 1.0), (lead_words, config.text_weight)):
            for word, surface in found.items():
                if word in weights or word in outlet_words:
                    continue
                weight = rarity(surface, language, config.rarity_ceiling) * factor
                if config.spread_power:
                    weight *= spread(open_count, len(self._postings.get(word, ()))
                                     ) ** config.spread_power
                if word in entity_words:
                    weight *= config.entity_boost
                # Interned: every open story that holds a word, and its posting list,
                # then share one string instead of a copy per article (memory follows
                # open stories; interned strings go when the last story lets go).
                weights[sys.intern(word)] = weight
        # Stable on ties (first seen first): the same article always indexes the same words.
        heaviest = [word for word, weight in heapq.nlargest(
            max(config.index_words, config.outlet_words), weights.items(),
            key=itemgetter(1)) if weight > 0]
        copy_text = f"{article.title}\n{copy_lead}".strip()
        names = name_terms(title, read_lead, language, article.entities)
        return _Features(weights, sum(weights.values()), heaviest, fingerprint(copy_text),
                         language, tuple(title_words), names,
                         plain_terms(title, read_lead) if names else frozenset(),
                         bool(lead_words),
                         is_digest(title, written))

    def _best_story(self, article: StoryInput, features: _Features, when: datetime | None
                    ) -> tuple[str | None, float]:
        if features.total <= 0 or features.digest:
            return None, 0.0
        config = self.config
        passing: list[tuple[float, int, str, bool]] = []  # at or above their threshold
        top = 0.0
        for rank, story_id in enumerate(self._candidates(features)):
            story = self._stories[story_id]
            if (story.language != features.language or story.digest
                    or not self._in_time(story, when)):
                continue
            weights = features.weights
            own = _outlet_only(story, article.outlet)
            if own and config.outlet_damping:
                # Damped as evidence only: the share is still of the article's whole
                # weight, so the damping can only lower a score, never raise one.
                weights = self._outlet_weights(article.outlet, story, features.weights)
            total, shared, strongest = _evidence(weights, story, config.prevalence_power,
                                                 config.salient_weight)
            score = total / features.total
            if (total < config.min_evidence
                    or (shared < config.min_shared and strongest < config.lone_word)):
                continue
            top = max(top, score)
            if score >= (config.same_outlet_threshold if own else config.threshold):
                passing.append((score, rank, story_id, own))
        # Best first (ties: the story found first); a story's score can only be lowered
        # by `_event_factor`, so the search stops at a raw score below the best so far.
        best, best_score = None, 0.0
        for score, _rank, story_id, own in sorted(passing, key=lambda p: (-p[0], p[1])):
            if score <= best_score:
                break
            score *= self._event_factor(features, self._stories[story_id])
            if score > best_score and score >= (
                    config.same_outlet_threshold if own else config.threshold):
                best, best_score = story_id, score
        if best is None:
            return None, top  # the best score seen, for diagnostics
        return best, best_score

    def _event_factor(self, features: _Features, story: OpenStory) -> float:
        """What the signs that ``story`` is another event of the same subject leave of
        its score (1: none; see ``ClusterConfig.entity_conflict``)."""
        config = self.config
        if features.has_text and story.has_text and config.min_event_evidence:
            action, specific = _shared_kinds(features, story)
            if action < config.min_event_evidence and not specific:
                return 0.0
        if features.names and story.names and template_conflict(
                features.title, features.names, features.weights,
                terms(strip_outlet(story.title)), story.names, story.df):
            return config.entity_conflict
        return 1.0

    def _outlet_weights(self, outlet: str, story: OpenStory, weights: dict[str, float]
                        ) -> dict[str, float]:
        """The article's word weights for comparing it with ``story``, a story only its
        own ``outlet`` has reported (see ``ClusterConfig.outlet_damping``). The story's
        own articles are taken out of the outlet's count by the story's count of the
        word, which is at least theirs: when in doubt, less damping."""
        used = self._outlet_df.get(outlet)
        if not used:
            return weights
        df, damping = story.df, self.config.outlet_damping
        out = {}
        for word, weight in weights.items():
            others = used.get(word, 0) - df.get(word, 0)
            out[word] = weight / (1.0 + damping * others) if others > 0 else weight
        return out

    def _candidates(self, features: _Features) -> list[str]:
        """The open stories worth scoring: those that indexed the most of the weight of
        the article's heaviest words (ties: the story found first)."""
        config = self.config
        found: dict[str, float] = {}
        for word in features.heaviest[:config.query_words]:
            posting = self._postings.get(word)
            if not posting:
                continue
            weight = features.weights[word]
            # The stories that got the word most recently: a list longer than the cap
            # is a word many open stories share, and its latest stories are the live ones.
            for story_id in posting[-config.posting_cap:]:
                found[story_id] = found.get(story_id, 0.0) + weight
        if len(found) <= config.candidates:
            return list(found)
        return [story_id for story_id, _ in heapq.nlargest(
            config.candidates, found.items(), key=itemgetter(1))]

    def _in_time(self, story: OpenStory, when: datetime | None) -> bool:
        if when is None or story.last_seen is None:
            return True
        return abs(when - story.last_seen) <= self.config.quiet

    def _add(self, article: StoryInput, features: _Features, story_id: str,
             duplicate_of: str | None, when: datetime | None) -> None:
        """``when``: the article's date, or the stream's clock for an undated one (an
        undated story must still go quiet, and must not take articles from any year)."""
        story = self._stories.get(story_id)
        if story is None:
            story = OpenStory(story_id, article.title, when, when, features.language,
                              digest=features.digest)
            self._stories[story_id] = story
        else:
            self._stories.move_to_end(story_id)
            if when is not None:
                story.first_seen = min(filter(None, (story.first_seen, when)))
                story.last_seen = max(filter(None, (story.last_seen, when)))
        story.articles += 1
        story.members.append(article.id)
        if article.outlet:
            outlet = sys.intern(article.outlet)
            story.outlets.setdefault(outlet, None)
            counted = features.heaviest[:self.config.outlet_words]
            if counted:
                used = self._outlet_df.setdefault(outlet, {})
                for word in counted:
                    used[word] = used.get(word, 0) + 1
                story.outlet_counted.append((outlet, tuple(counted)))
        df = story.df
        for word in features.weights:
            df[word] = df.get(word, 0) + 1
        if features.names:
            new_names = features.names.difference(story.names)
            if new_names:
                # Sorted: the same article gives the same tuple in every process.
                story.names = (*story.names, *sorted(new_names))
        story.has_text = story.has_text or features.has_text
        indexed = story.indexed
        # A digest's story takes no article but copies (found by the duplicate index),
        # so its words stay out of the inverted index.
        for word in () if story.digest else features.heaviest[:self.config.index_words]:
            # Once per story. A list, not a set: it is short (tens of words), and a
            # story's list costs a fifth of a set's memory.
            if df[word] == 1 or word not in indexed:
                indexed.append(word)
                self._postings.setdefault(word, []).append(story_id)
        self._member_of[article.id] = story_id
        if duplicate_of is not None:
            self._original_of[article.id] = duplicate_of
        elif features.print_ is not None:
            self._duplicates.add(article.id, features.print_)

    def _evict(self, story: OpenStory) -> None:
        del self._stories[story.id]
        for word in story.indexed:
            posting = self._postings[word]
            posting.remove(story.id)  # there once, by construction (see `_add`)
            if not posting:
                del self._postings[word]
        for outlet, words in story.outlet_counted:
            used = self._outlet_df[outlet]
            for word in words:
                left = used[word] - 1
                if left:
                    used[word] = left
                else:
                    del used[word]
            if not used:
                del self._outlet_df[outlet]
        for article_id in story.members:
            self._member_of.pop(article_id, None)
            self._original_of.pop(article_id, None)
            self._duplicates.remove(article_id)


def _evidence(weights: dict[str, float], story: OpenStory, power: float, salient: float
              ) -> tuple[float, int, float]:
    """How much of the article's word weight ``story`` covers (each shared word counted
    by its prevalence in the story), how many shared words weigh at least ``salient``,
    and the heaviest shared word."""
    df, articles = story.df, story.articles
    total, shared, strongest = 0.0, 0, 0.0
    for word, weight in weights.items():
        count = df.get(word)
        if count is None:
            continue
        total += weight * min(1.0, (count / articles) ** power)
        if weight >= salient:
            shared += 1
        if weight > strongest:
            strongest = weight
    return total, shared, strongest


def _shared_kinds(features: _Features, story: OpenStory) -> tuple[float, bool]:
    """What the article shares with ``story``: the weight of the shared words that are
    not names (what happened, not who), and whether a shared name is specific (Zipf
    <= `SPECIFIC_NAME_ZIPF`: "Escalante", "Titanfall", "Jalalabad" name one place or
    thing in the news, "Taliban" or "Trump" an actor of many events).

    A word is a name here when one side writes it as one, the article does not also
    write it small, and it is not an ordinary word of the language (Zipf >=
    `ORDINARY_ZIPF`): the "Fire" of "Babylon Fire", the "Union" of "State of the Union"
    say what happened."""
    names, story_names, plain, df = features.names, story.names, features.plain, story.df
    action, specific = 0.0, False
    for word, weight in features.weights.items():
        if word not in df:
            continue
        if (word not in names and word not in story_names) or word in plain:
            action += weight
            continue
        frequency = zipf(word, features.language)
        if frequency >= ORDINARY_ZIPF:
            action += weight
        elif frequency <= SPECIFIC_NAME_ZIPF and not word.isdigit():
            specific = True
    return action, specific


def _outlet_only(story: OpenStory, outlet: str) -> bool:
    """Whether ``story`` is known only from ``outlet`` (an article without an outlet
    cannot tell, so is not held to the stricter threshold)."""
    return bool(outlet) and len(story.outlets) == 1 and outlet in story.outlets


def cluster_all(articles: Iterable[StoryInput], config: ClusterConfig | None = None
                ) -> list[Placement]:
    """Place ``articles`` in order with a fresh clusterer (the CLI and eval use this)."""
    clusterer = StoryClusterer(config)
    return [clusterer.place(article) for article in articles]
