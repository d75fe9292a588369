"""rules.yaml: the shipped demo file loads; wrong files fail naming the rule and the field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from consumers.alert.compile import compile_rules
from consumers.alert.rules import default_rules_path, load_rules, parse_rules
from newswatch.cli import main
from newswatch.errors import ConfigError
from schemas.duration import format_duration, parse_duration

GOOD_CHANNELS = """channels:
  file: {type: jsonl, path: alerts.jsonl}
  hook: {type: webhook, url: "http://127.0.0.1:9/x", secret_env: HOOK_SECRET}
"""

# Only the top-level ``topics`` names matter to `rules check`.
TOPICS_WITH_FLOODS = """topics:
  local_floods:
    description: Floods in the region.
"""


def _rule(body: str) -> str:
    return GOOD_CHANNELS + "rules:\n  - name: r1\n" + body


def test_the_demo_rules_load_one_rule_per_default_topic() -> None:
    rules = load_rules(default_rules_path())
    topics = [sorted(rule.match.topics.names()) for rule in rules.rules if rule.match.topics]
    assert topics == [["is_threat"], ["drug_trafficking"], ["recognition"],
                      ["drug_trafficking", "is_threat", "recognition"]]
    # The fourth: any default topic in an article in another language.
    assert "de" in rules.rules[3].match.languages
    assert "en" not in rules.rules[3].match.languages
    assert {c.type for c in rules.channels.values()} == {"jsonl", "terminal"}
    assert all(rule.channels == ["alerts-file", "terminal"] for rule in rules.rules)
    assert len(compile_rules(rules.rules, "sqlite")) == 4


def test_a_full_rule_parses() -> None:
    rules = parse_rules(_rule("""    match:
      topics: {all: [is_threat, recognition]}
      min_score: 0.6
      entities: {any: ["Islamic State", {name: Afghanistan, label: GPE}]}
      feeds: [bbc]
      tags: [world]
      title_keywords: [Taliban]
      languages: [en]
    count: {at_least: 3, within: 6h, distinct_feeds: 2}
    group_by: [rule, topic, "entity:GPE", feed]
    throttle: 1h
    digest: 1d
    channels: [file, hook]
"""))
    rule = rules.rules[0]
    assert rule.count is not None
    assert rule.count.within == timedelta(hours=6)
    assert rule.match.entities is not None
    assert [(e.name, e.label) for e in rule.match.entities.any] == [
        ("Islamic State", None), ("Afghanistan", "GPE")]
    assert rule.digest == timedelta(days=1)


def test_problems_name_the_line_of_the_field() -> None:
    text = _rule("    match: {topics: [x]}\n    throttle: soon\n    channels: [nope]\n")
    throttle_line = text.splitlines().index("    throttle: soon") + 1
    with pytest.raises(ConfigError) as raised:
        parse_rules(text, source="my-rules.yaml")
    assert str(raised.value).startswith(f"my-rules.yaml:{throttle_line}: rule 'r1': throttle: ")
    fixed = text.replace("throttle: soon", "throttle: 1h")
    with pytest.raises(ConfigError, match=rf"my-rules\.yaml:{throttle_line + 1}: rule 'r1': "
                                          "channels: unknown channel 'nope'"):
        parse_rules(fixed, source="my-rules.yaml")


def test_a_key_written_twice_is_refused_not_overwritten() -> None:
    text = _rule("    match: {topics: [x]}\n    channels: [file]\n    channels: [hook]\n")
    line = len(text.splitlines())
    with pytest.raises(ConfigError, match=rf"my-rules\.yaml:{line}: key 'channels' appears "
                                          "twice"):
        parse_rules(text, source="my-rules.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    (_rule("    match: {topics: [is_threat], min_score: 2}\n    channels: [file]\n"),
     "rule 'r1': match.min_score: Input should be less than or equal to 1"),
    (_rule("    match: {topics: [is_threat]}\n    channels: [nope]\n"),
     "rule 'r1': channels: unknown channel 'nope' (channels: file, hook)"),
    (_rule("    match: {topic: [is_threat]}\n    channels: [file]\n"),
     "rule 'r1': match.topic: Extra inputs are not permitted"),
    (_rule("    match: {topics: [x]}\n    throttle: soon\n    channels: [file]\n"),
     "rule 'r1': throttle: 'soon' is not a duration such as 30s, 5m, 1h30m, 6h or 7d"),
    (_rule("    match: {topics: [x]}\n    spike: {within: 1h, baseline: 7d}\n"
           "    channels: [file]\n"),
     "rule 'r1': spike: give exactly one of ratio and z_score"),
    (_rule("    match: {topics: [x]}\n    spike: {within: 1h, baseline: 1h, ratio: 3}\n"
           "    channels: [file]\n"),
     "rule 'r1': spike: baseline must be at least twice as long as within"),
    (_rule("    match: {topics: [x]}\n    count: {at_least: 0, within: 1h}\n"
           "    channels: [file]\n"),
     "rule 'r1': count.at_least: Input should be greater than or equal to 1"),
    (_rule("    match: {topics: [x]}\n    group_by: [entity:gpe]\n    channels: [file]\n"),
     "rule 'r1': group_by.0: String should match pattern"),
    (_rule("    match: {min_score: 0.5}\n    channels: [file]\n"),
     "rule 'r1': match: give at least one of topics, entities, feeds, tags or title_keywords"),
    (_rule("    match: {topics: [x]}\n    channels: [file]\n  - name: r1\n"
           "    match: {topics: [y]}\n    channels: [file]\n"),
     "rule 'r1': name: used by two rules"),
    (_rule("    match: {topics: [x]}\n    channels: []\n"),
     "rule 'r1': channels: List should have at least 1 item"),
    ("channels:\n  mail: {type: email, host: h, from: a@b.c, to: [d@e.f], "
     "username_env: U}\nrules: []\n",
     "channel 'mail': give both username_env and password_env, or neither"),
    ("channels:\n  hook: {type: webhook, url: 'http://x', url_env: HOOK}\nrules: []\n",
     "channel 'hook': give exactly one of url and url_env"),
    ("channels:\n  hook: {type: webhook, url: 'ftp://x'}\nrules: []\n",
     "channel 'hook': url: must start with http:// or https://"),
    ("channels:\n  x: {type: pager}\nrules: []\n", "channel 'x': Input tag 'pager'"),
    ("channels:\n  mail: {type: email, host: h, from: a@b.c, to: [d@e.f], port: 0}\n",
     "channel 'mail': port: Input should be greater than or equal to 1"),
    ("rules:\n  - name: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("rules:\n  - match: {topics: [x]}\n    channels: [a]\n", "rule #1: name: Field required"),
])
def test_invalid_rules_name_the_rule_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rules(text, source="my-rules.yaml")
    # Every problem names the file and, where the file has the field, its line.
    assert re.match(r"my-rules\.yaml(:\d+)?: ", str(raised.value))
    assert expected in str(raised.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("6h", 21600), ("7d", 604800), ("2w", 1209600),
    ("1.5h", 5400), (90, 90), (" 10 m ", 600),
])
def test_durations(text: str | int, seconds: int) -> None:
    value = parse_duration(text)
    assert value == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "-1h", "h", True])
def test_bad_durations(text: str | bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (90, 3600, 86400 * 7, 0.5)] == [
        "90s", "1h", "1w", "0.5s"]


def test_rules_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    good = tmp_path / "good.yaml"
    good.write_text(_rule("    match: {topics: [is_threat, is_treat]}\n"
                          "    channels: [file, hook]\n"))
    assert main(["rules", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "ok: 1 rule(s) (1 enabled), 2 channel(s)" in out
    assert "channel 'hook': HOOK_SECRET is not set" in out
    assert "topic 'is_treat' is not defined" in out
    assert "topic 'is_threat'" not in out

    bad = tmp_path / "bad.yaml"
    bad.write_text(_rule("    match: {topics: [is_threat], min_score: -1}\n"
                         "    channels: [file]\n"))
    assert main(["rules", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rule 'r1': match.min_score" in err


def test_rules_check_reads_the_topics_and_rules_files_from_the_environment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("    match: {topics: [local_floods]}\n    channels: [file]\n"))
    monkeypatch.setenv("HOOK_SECRET", "s")
    # The shipped topics do not define the operator's own topic: warned about.
    assert main(["rules", "check", str(rules)]) == 0
    assert "topic 'local_floods' is not defined" in capsys.readouterr().out
    # With NEWSWATCH_TOPICS_FILE naming a topics file that defines it, no warning.
    topics = tmp_path / "topics.yaml"
    topics.write_text(TOPICS_WITH_FLOODS)
    monkeypatch.setenv("NEWSWATCH_TOPICS_FILE", str(topics))
    assert main(["rules", "check", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "not defined" not in out
    assert f"{rules}: ok: 1 rule(s)" in out
    # The file is taken as `feeds check` takes its own: FILE, --rules FILE, or the
    # settings' NEWSWATCH_RULES_FILE.
    assert main(["rules", "check", "--rules", str(rules)]) == 0
    assert f"{rules}: ok" in capsys.readouterr().out
    monkeypatch.setenv("NEWSWATCH_RULES_FILE", str(rules))
    assert main(["rules", "check"]) == 0
    assert f"{rules}: ok" in capsys.readouterr().out
