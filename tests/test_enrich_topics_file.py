"""topics.yaml and the alias table: strict validation, errors that say where, versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import spacy

from consumers.enrich.topics import DEFAULT_TOPICS_PATH, TopicMatcher
from newswatch.errors import ConfigError
from schemas.topics_file import load_topics

ALIASES = """\
entities:
  - name: Islamic State
    label: ORG
    aliases: [ISIS, Daesh]
    exact: [IS]
"""

VALID = """\
aliases: aliases.yaml
topics:
  is_threat:
    description: The Islamic State threat.
    constraints:
      actor:
        entities: [Islamic State]
    rules:
      - name: attacks
        weight: 0.6
        phrases: [attack]
        requires: [actor]
"""


def write(tmp_path: Path, topics: str, aliases: str = ALIASES) -> Path:
    (tmp_path / "aliases.yaml").write_text(aliases, encoding="utf-8")
    path = tmp_path / "topics.yaml"
    path.write_text(topics, encoding="utf-8")
    return path


def error_for(tmp_path: Path, topics: str, aliases: str = ALIASES) -> str:
    with pytest.raises(ConfigError) as caught:
        load_topics(write(tmp_path, topics, aliases))
    return str(caught.value)


def test_shipped_topics_file_loads() -> None:
    loaded = load_topics(DEFAULT_TOPICS_PATH)
    assert set(loaded.topics.topics) == {"is_threat", "drug_trafficking", "recognition"}
    assert "Islamic State" in loaded.aliases.names()
    assert len(loaded.version) == 16


def test_a_valid_user_file_loads(tmp_path: Path) -> None:
    loaded = load_topics(write(tmp_path, VALID))
    rule = loaded.topics.topics["is_threat"].rules[0]
    assert (rule.name, rule.weight, rule.requires) == ("attacks", 0.6, ("actor",))


def test_version_is_a_hash_of_both_files(tmp_path: Path) -> None:
    first = load_topics(write(tmp_path, VALID)).version
    assert load_topics(write(tmp_path, VALID)).version == first
    assert load_topics(write(tmp_path, VALID + "    # a comment\n")).version != first
    other_aliases = ALIASES.replace("[ISIS, Daesh]", "[ISIS, Daesh, ISIL]")
    assert load_topics(write(tmp_path, VALID, other_aliases)).version != first


@pytest.mark.parametrize(("change", "field", "line"), [
    (("weight: 0.6", "weight: 1.5"), "rules[0].weight", 10),
    (("weight: 0.6", "wieght: 0.6"), "rules[0].wieght", 10),
    (("requires: [actor]", "requires: [victim]"), "rules[0].requires[0]", 12),
    (("phrases: [attack]", "phrases: []"), "rules[0]", 9),
    (("    description: The Islamic State threat.\n", ""), "description", 4),
    (("entities: [Islamic State]", "entities: [Al Qaeda]"), "constraints.actor.entities[0]", 7),
    (("entities: [Islamic State]", "labels: [COUNTRY]"), "constraints.actor", 7),
])
def test_errors_name_file_line_topic_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, line: int
) -> None:
    message = error_for(tmp_path, VALID.replace(*change))
    assert "topics.yaml" in message
    assert "topic 'is_threat'" in message
    assert f"field '{field}" in message
    assert f"topics.yaml:{line}: " in message


def test_bad_topic_name_is_reported(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("is_threat:", "Is Threat:"))
    assert "Is Threat" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("weight: 0.6", "weight: [0.6"))
    assert re.search(r"topics\.yaml:\d+: not valid YAML", message)


def test_missing_alias_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("aliases.yaml", "nowhere.yaml"))
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read"):
        load_topics(path)


def test_alias_owned_by_two_entities_is_reported(tmp_path: Path) -> None:
    aliases = ALIASES + "  - name: Other\n    label: ORG\n    aliases: [Daesh]\n"
    message = error_for(tmp_path, VALID, aliases)
    assert "aliases.yaml" in message
    assert "'Daesh' belongs to both 'Islamic State' and 'Other'" in message


def test_bad_token_pattern_is_reported_when_compiled(tmp_path: Path) -> None:
    broken = VALID.replace("phrases: [attack]", 'patterns: [[{LOWER: {IN: [to, "on"]}}, '
                                                "{NOT_AN_ATTR: 1}]]")
    loaded = load_topics(write(tmp_path, broken))
    with pytest.raises(ConfigError) as caught:
        TopicMatcher(spacy.blank("en"), loaded)
    message = str(caught.value)
    assert "topic 'is_threat', field 'rules[0].patterns[0]'" in message
    assert "topics.yaml:11: " in message
    assert "NOT_AN_ATTR" in message


LEAD_EXCLUSION = """\
    exclusions:
      - name: another_groups_story
        scope: lead
        unless: [actor]
        phrases: [taliban]
"""


def test_a_lead_exclusion_names_constraints_that_exist(tmp_path: Path) -> None:
    loaded = load_topics(write(tmp_path, VALID + LEAD_EXCLUSION))
    exclusion = loaded.topics.topics["is_threat"].exclusions[0]
    assert (exclusion.scope, exclusion.unless) == ("lead", ("actor",))
    message = error_for(tmp_path, VALID + LEAD_EXCLUSION.replace("[actor]", "[victim]"))
    assert "field 'exclusions[0].unless[0]'" in message
    assert "unknown constraint 'victim'" in message
    message = error_for(tmp_path, VALID + LEAD_EXCLUSION.replace("scope: lead",
                                                                 "scope: sentence"))
    assert "unless is for an exclusion with scope lead" in message
