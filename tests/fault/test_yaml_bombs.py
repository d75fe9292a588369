"""Fault 6 (YAML half) of issue 16: "billion laughs" in the files people write.

A 1 KB rules file with nested aliases in a rule name, loaded on SIGHUP, made a 72 MB log
line (the error echoed the expanded name) or a MemoryError that killed the evaluator.
Every YAML file (rules, topics, feeds) now refuses alias expansion past a bound, with a
short error that names the file and never the value, and the rules in force stay.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from consumers.alert.rules import default_rules_path, parse_rules
from consumers.alert.ruleset import RulesHolder
from newswatch.errors import ConfigError
from schemas.feeds_file import parse_feeds_yaml
from schemas.topics_file import load_topics


def laughs(levels: int = 9) -> str:
    """Anchors lol1..lolN, each a list of ten aliases of the previous: 10**N strings."""
    lines = ['lol0: &lol0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BOMB_RULES = laughs() + """rules:
  - name: *lol9
    topic: is_threat
    channels: [log]
channels:
  log: {type: terminal}
"""


def test_billion_laughs_rules_file_is_refused_with_a_short_error() -> None:
    assert len(BOMB_RULES) < 1500
    with pytest.raises(ConfigError) as caught:
        parse_rules(BOMB_RULES, source="bomb.yaml")
    message = str(caught.value)
    assert "bomb.yaml" in message
    assert "aliases expand" in message
    assert len(message) < 500


def test_billion_laughs_sent_with_sighup_keeps_the_rules_in_force(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(default_rules_path().read_text(encoding="utf-8"), encoding="utf-8")
    holder = RulesHolder(path, dialect="sqlite", state_dir=tmp_path)
    before = holder.current.rules
    path.write_text(BOMB_RULES, encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert holder.reload() is False
    assert holder.current.rules == before
    assert caplog.records
    assert all(len(r.getMessage()) < 1000 for r in caplog.records)


def test_a_long_or_non_string_rule_name_is_not_echoed() -> None:
    # Three levels: within the bound, so validation runs and its error names the rule.
    text = laughs(3) + "rules:\n  - name: *lol3\n    topic: t\n    channels: [x]\n"
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, source="r.yaml")
    assert "rule #1" in str(caught.value)
    assert "['lol'" not in str(caught.value)


def test_billion_laughs_in_feeds_and_topics_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_feeds_yaml(laughs() + "feeds:\n  - {id: a, url: *lol9}\n", source="f.yaml")
    topics = tmp_path / "topics.yaml"
    topics.write_text(laughs() + "topics:\n  t: {phrases: *lol9}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="aliases expand") as caught:
        load_topics(topics)
    assert len(str(caught.value)) < 500


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"refers to itself|aliases expand"):
        parse_rules("rules: &r [*r]\n", source="r.yaml")


def rules_text(count: int) -> str:
    lines = ["channels:\n  log: {type: terminal}\nrules:\n"]
    lines += [f"  - name: rule-{i}\n    match: {{topics: [is_threat], title_keywords: [k{i}]}}\n"
              f"    group_by: [rule, feed]\n    throttle: 10m\n    channels: [log]\n"
              for i in range(count)]
    return "".join(lines)


def test_a_big_rules_file_without_aliases_loads() -> None:
    # 10,000 rules are ~300,000 nodes, all in the file itself (issue 17's target size).
    parsed = parse_rules(rules_text(10_000))
    assert len(parsed.rules) == 10_000


def test_a_bomb_hidden_in_a_big_file_is_still_refused() -> None:
    # The bound grows with the file, but a billion strings are far past 4x its nodes.
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_rules(laughs() + rules_text(10_000).replace("name: rule-0\n", "name: *lol9\n"))
