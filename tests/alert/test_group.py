"""Group, throttle, spike episodes and digests, decided without a database or a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.alert.group import (
    DIGEST_KEY,
    ArticleRef,
    GroupState,
    Trigger,
    decide,
    dedup_key,
)
from consumers.alert.rules import parse_rules
from schemas.rules_file import Rule

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _rule(extra: str = "") -> Rule:
    text = ("channels: {f: {type: terminal}}\nrules:\n  - name: r\n"
            "    match: {topics: [t]}\n    group_by: [rule, topic]\n    channels: [f]\n" + extra)
    return parse_rules(text).rules[0]


def _trigger(*ids: str, key: str = "topic=t", holds: bool = True) -> Trigger:
    labels = {"rule": "r", "topic": key.split("=")[1]}
    return Trigger("r", key, labels, holds, "because", tuple(
        ArticleRef(i, T0, key, labels) for i in ids))


class Groups:
    """Group states kept between calls, as the SQL store keeps them between ticks."""

    def __init__(self, rule: Rule) -> None:
        self.rules = {rule.name: rule}
        self.states: dict[tuple[str, str], GroupState] = {}

    def tick(self, at: datetime, *triggers: Trigger) -> list[list[str]]:
        out = decide(at, self.rules, list(triggers), self.states)
        return [[ref.article_id for ref in fire.articles] for fire in out.fires]


def test_without_throttle_every_match_fires_at_once() -> None:
    groups = Groups(_rule())
    assert groups.tick(T0, _trigger("a")) == [["a"]]
    assert groups.tick(T0, _trigger("b")) == [["b"]]


def test_a_throttled_group_sends_once_per_interval_and_repeats_only_when_it_grew() -> None:
    groups = Groups(_rule("    throttle: 1h\n"))
    assert groups.tick(T0, _trigger("a")) == [["a"]]
    assert groups.tick(T0 + timedelta(minutes=10), _trigger("b")) == []
    assert groups.tick(T0 + timedelta(minutes=20), _trigger("c")) == []
    assert groups.tick(T0 + timedelta(minutes=59)) == []
    assert groups.tick(T0 + timedelta(minutes=60)) == [["b", "c"]]
    assert groups.tick(T0 + timedelta(hours=3)) == []  # nothing new: no repeat
    assert groups.tick(T0 + timedelta(hours=3), _trigger("d")) == [["d"]]


def test_throttle_is_per_group() -> None:
    groups = Groups(_rule("    throttle: 1h\n"))
    assert groups.tick(T0, _trigger("a", key="topic=t")) == [["a"]]
    assert groups.tick(T0, _trigger("b", key="topic=u")) == [["b"]]


def test_the_repeat_says_why() -> None:
    rule = _rule("    throttle: 1h\n")
    states: dict[tuple[str, str], GroupState] = {}
    decide(T0, {"r": rule}, [_trigger("a")], states)
    decide(T0 + timedelta(minutes=5), {"r": rule}, [_trigger("b")], states)
    fire = decide(T0 + timedelta(hours=1), {"r": rule}, [], states).fires[0]
    assert fire.reason.startswith("1 new article(s) in the group since the last alert at "
                                  "2024-05-01 12:00 UTC (throttle 1h); because")


def test_a_condition_that_does_not_hold_fires_nothing() -> None:
    groups = Groups(_rule("    count: {at_least: 3, within: 6h}\n"))
    assert groups.tick(T0, _trigger("a", holds=False)) == []
    assert groups.tick(T0, _trigger("a", "b", "c")) == [["a", "b", "c"]]


def test_a_spike_fires_once_per_episode() -> None:
    groups = Groups(_rule("    spike: {within: 1h, baseline: 1d, ratio: 3}\n"))
    assert groups.tick(T0, _trigger("a", "b", "c")) == [["a", "b", "c"]]
    assert groups.tick(T0 + timedelta(minutes=30), _trigger("d")) == []
    assert groups.tick(T0 + timedelta(minutes=80), _trigger("e")) == []  # still going
    assert groups.tick(T0 + timedelta(minutes=80), _trigger("f", holds=False)) == []
    assert groups.tick(T0 + timedelta(hours=5), _trigger("g", "h", "i")) == [["g", "h", "i"]]


def test_a_digest_collects_groups_into_one_alert_per_interval() -> None:
    rule = _rule("    digest: 1h\n")
    states: dict[tuple[str, str], GroupState] = {}
    out = decide(T0, {"r": rule}, [_trigger("a", key="topic=t"),
                                   _trigger("b", key="topic=u")], states)
    assert out.fires == []
    assert sorted(ids for _, ids in out.to_digest) == [("a",), ("b",)]
    out = decide(T0 + timedelta(minutes=30), {"r": rule}, [_trigger("c")], states)
    assert out.fires == []
    out = decide(T0 + timedelta(hours=1), {"r": rule}, [], states)
    assert len(out.fires) == 1
    digest = out.fires[0]
    assert digest.kind == "digest"
    assert digest.group_key == DIGEST_KEY
    assert sorted(ref.article_id for ref in digest.articles) == ["a", "b", "c"]
    assert "3 article(s) in 2 group(s) over 1h" in digest.reason
    assert decide(T0 + timedelta(hours=3), {"r": rule}, [], states).fires == []


def test_dedup_keys_depend_on_rule_group_and_articles_only() -> None:
    assert dedup_key("r", "g", ["a", "b"]) == dedup_key("r", "g", ["b", "a"])
    assert dedup_key("r", "g", ["a"]) != dedup_key("r", "h", ["a"])
    assert dedup_key("r", "g", ["a"]) != dedup_key("s", "g", ["a"])
    assert len(dedup_key("r" * 64, "g", ["a"])) <= 255
