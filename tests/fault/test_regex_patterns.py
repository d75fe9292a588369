"""Fault 6 (regex third) of issue 16: a REGEX token pattern with exponential backtracking.

``^(a+)+$`` on a 27-letter token took 6.5 s in spaCy's Matcher, doubling per letter, and
a topics.yaml reload could bring it in. Such shapes are refused at load, with the file,
line and topic; the safe patterns the shipped topics use still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.errors import ConfigError
from schemas.regex_safety import check_regex
from schemas.topics_file import load_topics

REFUSED = [r"^(a+)+$", r"(\w*)*x", r"^(a|aa)+$", r"(x+x+)+y", r"(a)\1", r"((ab)*c)*",
           "a" * 201]
ACCEPTED = [r"^opec", r"^(?:de)?recogni[sz]", r"^[a-z]+-?\d{1,4}$", r"^(?:isis|isil)$",
            r"(?:ab){2}", r"^\w+$"]


@pytest.mark.parametrize("pattern", REFUSED)
def test_exponential_shapes_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"exponential|over 200|backreference"):
        check_regex(pattern)


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_linear_shapes_are_accepted(pattern: str) -> None:
    check_regex(pattern)


def test_topics_file_with_a_catastrophic_regex_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(
        "topics:\n"
        "  t:\n"
        "    threshold: 0.5\n"
        "    rules:\n"
        "      - name: r\n"
        "        weight: 0.6\n"
        "        patterns:\n"
        '          - [{LOWER: {REGEX: "^(a+)+$"}}]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="nests a repeat") as caught:
        load_topics(path)
    assert "topic 't'" in str(caught.value)


def test_the_shipped_topics_still_load() -> None:
    shipped = Path(__file__).resolve().parents[2] / "consumers" / "enrich" / "topics.yaml"
    assert load_topics(shipped).topics.topics
