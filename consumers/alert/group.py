"""Group, throttle and digest: from matches to alert decisions. Pure: no SQL, no clock.

Per rule, each matching article falls in one group (`payload.group_of`). For each group:

- dedup: an article is held or alerted at most once per rule (the caller drops the pairs
  it has seen, held ones included, before it makes triggers);
- throttle: the first alert of a group goes out at once; later articles are *held* and
  go out together when ``throttle`` has passed since the last alert, so a group sends at
  most one alert per interval, and a repeat only when the group grew;
- spike: fires once per episode; an episode lasts while the spike condition keeps
  holding, with gaps no longer than the spike's window;
- digest: instead of one alert per group, released articles wait in the rule's digest
  group (key ``*``) and go out as one alert when ``digest`` has passed since the first.

`decide` mutates the `GroupState` objects it is given and returns what to write; the
caller writes it in the same transaction as the watermark (the outbox).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from schemas.duration import format_duration
from schemas.rules_file import Rule

DIGEST_KEY = "*"


class ArticleRef(NamedTuple):
    """An article in a rule's group (a tuple: one is made per match, ~83,000 in an
    evaluation of 1,000 hits with 10,000 rules, and a frozen dataclass cost three times
    as much to build)."""

    article_id: str
    published: datetime
    group_key: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Trigger:
    """What matching found for one group in this evaluation.

    ``holds`` says whether the rule's count or spike condition holds (always True for a
    rule without one); ``articles`` are the group's matching articles neither held nor
    alerted yet (the caller's seen check: `evaluate.StateStore.seen`), each once.
    """

    rule: str
    group_key: str
    labels: Mapping[str, str]
    holds: bool
    reason: str
    articles: tuple[ArticleRef, ...]


@dataclass
class GroupState:
    """A group's memory between evaluations (one row of ``alert_groups``)."""

    rule: str
    key: str
    labels: dict[str, str]
    sequence: int = 0
    last_alert_at: datetime | None = None
    release_at: datetime | None = None
    last_true_at: datetime | None = None
    last_reason: str = ""
    held: list[ArticleRef] = field(default_factory=list)
    # The ledger id up to which the group sent (`ledger`): set by the store on release.
    released_through: int = 0


@dataclass(frozen=True)
class Fire:
    """A decided alert: written to ``alerts`` with one outbox row per channel."""

    rule: str
    group_key: str
    labels: Mapping[str, str]
    kind: str
    sequence: int
    dedup_key: str
    reason: str
    articles: tuple[ArticleRef, ...]


@dataclass
class Decisions:
    """Everything one evaluation decided, to be written in one transaction."""

    # What the rules took, by group: (rule, the group's articles), in decision order (a
    # tuple per group, not per article: 83,000 pairs in 8,000 groups an evaluation with
    # 10,000 rules).
    taken: list[tuple[str, tuple[ArticleRef, ...]]] = field(default_factory=list)
    to_digest: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    fires: list[Fire] = field(default_factory=list)
    changed: dict[tuple[str, str], GroupState] = field(default_factory=dict)
    released: list[GroupState] = field(default_factory=list)  # sent or moved to a digest
    digests_sent: list[str] = field(default_factory=list)  # rules whose digest went out
    # Each state's stored columns before `decide` changed it (None: a new group).
    before: dict[tuple[str, str], tuple[object, ...] | None] = field(default_factory=dict)

    @property
    def holds(self) -> list[tuple[str, ArticleRef]]:
        """Every (rule, article) pair taken, in decision order (`taken`, flattened)."""
        return [(rule, ref) for rule, refs in self.taken for ref in refs]

    def touch(self, state: GroupState) -> None:
        self.changed[(state.rule, state.key)] = state

    def remember(self, state: GroupState, new: bool = False) -> None:
        """Note ``state``'s stored columns before it is changed (once per evaluation)."""
        key = (state.rule, state.key)
        if key not in self.before:
            self.before[key] = None if new else stored(state)

    def to_write(self) -> list[GroupState]:
        """The changed states whose stored columns differ from before (a throttled
        group's trigger often leaves its row as it was: 8,800 rows rewritten per
        evaluation with 10,000 rules, most of them the same)."""
        before = self.before
        return [state for key, state in self.changed.items()
                if key not in before or before[key] is None or before[key] != stored(state)]


def stored(state: GroupState) -> tuple[object, ...]:
    """The columns of ``alert_groups`` that `decide` and the store change (labels are
    fixed by the group key)."""
    return (state.sequence, state.last_alert_at, state.release_at, state.last_true_at,
            state.last_reason, state.released_through)


def dedup_key(rule: str, group_key: str, article_ids: Iterable[str]) -> str:
    """``rule:<hash of group and articles>``: the same alert always gets the same key.

    An article goes into at most one alert per rule, so two different alerts of a rule
    never share a key, and replaying a decision can only hit the unique constraint.
    """
    digest = hashlib.sha256(
        "\n".join([group_key, *sorted(article_ids)]).encode("utf-8")
    ).hexdigest()[:40]
    return f"{rule}:{digest}"


def decide(now: datetime, rules: Mapping[str, Rule], triggers: Sequence[Trigger],
           states: dict[tuple[str, str], GroupState]) -> Decisions:
    """Apply triggers to group states at time ``now``, then release what is due.

    ``states`` must hold the state of every triggered group, of every group whose
    ``release_at`` is due, and of the digest group of each rule with a digest, when they
    exist; missing ones are created.
    """
    out = Decisions()
    for trigger in triggers:
        rule = rules.get(trigger.rule)
        if rule is None or not trigger.holds:
            continue
        state = _state(states, trigger.rule, trigger.group_key, trigger.labels, out)
        if rule.spike is not None:
            in_episode = (state.last_true_at is not None
                          and state.last_true_at > now - rule.spike.within)
            state.last_true_at = now
            out.touch(state)
            if in_episode:
                continue
        # No dedup against ``state.held`` here: a trigger's articles are not held or
        # alerted (the store's seen check, below), so building the set of a group's held
        # articles on every touch was O(held) per group and evaluation for nothing.
        if trigger.articles:
            state.held.extend(trigger.articles)
            out.taken.append((rule.name, trigger.articles))
        if not state.held:
            continue
        state.last_reason = trigger.reason
        out.touch(state)
        if state.last_alert_at is None or now >= state.last_alert_at + rule.throttle:
            _release(now, rule, state, states, out)
        elif state.release_at is None:
            state.release_at = state.last_alert_at + rule.throttle

    # Digests last: a group released into its digest at this moment goes out with it
    # (the ledger's marks say a digest sent everything its groups had released).
    for state in sorted(states.values(), key=lambda state: state.key == DIGEST_KEY):
        rule = rules.get(state.rule)
        if rule is None or state.release_at is None or state.release_at > now:
            continue
        out.remember(state)
        if state.key == DIGEST_KEY:
            _fire_digest(now, rule, state, out)
        elif state.held:
            _release(now, rule, state, states, out)
        else:
            state.release_at = None
            out.touch(state)
    return out


def _state(states: dict[tuple[str, str], GroupState], rule: str, key: str,
           labels: Mapping[str, str], out: Decisions) -> GroupState:
    """The group's state (made when missing), remembered in ``out`` before it changes."""
    state = states.get((rule, key))
    if state is None:
        state = GroupState(rule=rule, key=key, labels=dict(labels))
        states[(rule, key)] = state
        out.remember(state, new=True)
    else:
        out.remember(state)
    return state


def _release(now: datetime, rule: Rule, state: GroupState,
             states: dict[tuple[str, str], GroupState], out: Decisions) -> None:
    """The group's held articles go out now: as an alert, or into the rule's digest."""
    articles = tuple(state.held)
    repeat = state.last_alert_at is not None
    reason = state.last_reason
    if repeat and state.last_alert_at is not None:
        reason = (f"{len(articles)} new article(s) in the group since the last alert at "
                  f"{state.last_alert_at:%Y-%m-%d %H:%M} UTC "
                  f"(throttle {format_duration(rule.throttle)}); {reason}")
    state.held = []
    state.last_alert_at = now
    state.release_at = None
    state.sequence += 1
    out.touch(state)
    out.released.append(state)
    if rule.digest is not None:
        digest = _state(states, rule.name, DIGEST_KEY, {"rule": rule.name}, out)
        digest.held.extend(articles)
        if digest.release_at is None:
            digest.release_at = now + rule.digest
        out.to_digest.append((rule.name, tuple(ref.article_id for ref in articles)))
        out.touch(digest)
        return
    out.fires.append(Fire(
        rule=rule.name, group_key=state.key, labels=dict(state.labels), kind="alert",
        sequence=state.sequence, reason=reason, articles=articles,
        dedup_key=dedup_key(rule.name, state.key, (ref.article_id for ref in articles)),
    ))


def _fire_digest(now: datetime, rule: Rule, state: GroupState, out: Decisions) -> None:
    articles = tuple(state.held)
    state.held = []
    state.release_at = None
    out.touch(state)
    if not articles:
        return
    out.digests_sent.append(rule.name)
    state.sequence += 1
    state.last_alert_at = now
    groups = len({ref.group_key for ref in articles})
    period = format_duration(rule.digest) if rule.digest is not None else "?"
    out.fires.append(Fire(
        rule=rule.name, group_key=DIGEST_KEY, labels=dict(state.labels), kind="digest",
        sequence=state.sequence, articles=articles,
        reason=f"digest of {len(articles)} article(s) in {groups} group(s) over {period}",
        dedup_key=dedup_key(rule.name, DIGEST_KEY, (ref.article_id for ref in articles)),
    ))
