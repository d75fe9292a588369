"""The README's examples stay true: its topic and rules snippets load and behave."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from consumers.alert.rules import parse_rules
from consumers.enrich.enrich import Enricher, document_text

ROOT = Path(__file__).resolve().parents[1]
ENRICH = ROOT / "consumers" / "enrich"


def _yaml_block_after(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, f"no yaml block after {heading}"
    return match.group(1)


def test_readme_topic_example_loads_and_finds_a_port_strike(tmp_path: Path) -> None:
    shipped = yaml.safe_load((ENRICH / "topics.yaml").read_text())
    example = yaml.safe_load(_yaml_block_after("## Adding topics"))
    shipped["topics"].update(example["topics"])
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(shipped, sort_keys=False))
    for name in ("entity_aliases.yaml", "country_aliases.yaml", "relevance-model.json"):
        shutil.copy(ENRICH / name, tmp_path / name)

    enricher = Enricher.from_files(tmp_path / "topics.yaml")
    strike = enricher.analyse(document_text(
        "Dockworkers strike at Rotterdam port",
        content="Thousands of dockworkers went on strike at the port of Rotterdam."))
    unrelated = enricher.analyse(document_text(
        "Options traders watch the strike price", content="The port city's bank rallied."))
    assert [hit.topic for hit in strike.hits] == ["port_strike"]
    assert strike.hits[0].evidence
    assert all(hit.topic != "port_strike" for hit in unrelated.hits)
    # Issue 18: an irregular plural is an inflection too ("longshoreman" -> "longshoremen").
    irregular = enricher.analyse(document_text(
        "Longshoremen walk out", content="Longshoremen walked out at the port of Oakland."))
    assert "port_strike" in [hit.topic for hit in irregular.hits]
    phrases = {span.phrase.lower() for hit in irregular.hits for span in hit.evidence}
    assert "longshoremen" in phrases


def test_readme_rules_example_is_a_valid_rules_file() -> None:
    rules = parse_rules(_yaml_block_after("## Adding alert rules"), "README.md")
    assert [rule.name for rule in rules.rules] == ["is-in-afghanistan"]


def test_readme_stories_example_prints_what_it_shows() -> None:
    from consumers.stories.cluster import StoryClusterer
    from consumers.stories.jsonl import placement_line, read_lines
    from newswatch.cli.stories import cluster_config
    from newswatch.settings import Settings

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Stories"):]
    match = re.search(r"```\n\$ echo '(.*?)' \| newswatch stories cluster\n(.*?)```", section,
                      re.S)
    assert match, "no stories cluster example in the README"
    clusterer = StoryClusterer(cluster_config(Settings()))
    printed = [placement_line(clusterer.place(item.article))
               for item in read_lines(match.group(1).splitlines())]
    assert printed == match.group(2).strip().splitlines()
