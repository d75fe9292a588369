"""One duration format everywhere: feeds.yaml, rules.yaml and the store's command line."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from pydantic import ValidationError

from newswatch.cli.store import parse_duration as store_cli_duration
from schemas.duration import format_duration, parse_duration
from schemas.errors import ConfigError
from schemas.feeds_file import parse_feeds_yaml
from schemas.rules_file import Count

GOOD = [("45s", 45), ("15m", 900), ("6h", 21_600), ("7d", 604_800), ("2w", 1_209_600),
        ("1h30m", 5_400), ("1d12h", 129_600), ("1.5h", 5_400), (" 10 m ", 600),
        ("2H", 7_200), ("1w2d3h4m5s", 788_645)]
BAD = ["", "90", "h", "-1h", "3y", "3 days", "30m1h", "1h1h", "1h 30", "soon"]


@pytest.mark.parametrize(("text", "seconds"), GOOD)
def test_one_form_everywhere(text: str, seconds: int, tmp_path: object) -> None:
    """The same text means the same time in a rule, a feed and a command."""
    expected = timedelta(seconds=seconds)
    assert parse_duration(text) == expected
    assert Count(at_least=1, within=text).within == expected  # type: ignore[arg-type]
    assert store_cli_duration(text) == expected
    if timedelta(seconds=10) <= expected <= timedelta(days=7):
        feeds = parse_feeds_yaml(
            f"feeds:\n  - id: a\n    url: http://a.example/\n    poll_interval: '{text}'\n")
        assert feeds.feeds[0].poll_interval == expected


@pytest.mark.parametrize("text", BAD)
def test_refused_everywhere(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
    with pytest.raises(ValidationError, match="duration"):
        Count(at_least=1, within=text)  # type: ignore[arg-type]
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        store_cli_duration(text)
    with pytest.raises(ConfigError, match=r"feeds\.yaml:4: feeds\[0\]\.poll_interval"):
        parse_feeds_yaml(
            f"feeds:\n  - id: a\n    url: http://a.example/\n    poll_interval: '{text}'\n")


@pytest.mark.parametrize(("value", "seconds"), [(90, 90), (1.5, 1.5), (0, 0)])
def test_numbers_in_files_are_seconds(value: float, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", [True, -5])
def test_booleans_and_negative_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [90, 3600, 5400, 86400 * 7, 0.5, 0])
def test_format_reads_back(seconds: float) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
