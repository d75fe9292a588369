"""feeds.yaml: the demo file loads; every mistake names the file, the line and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from newswatch.errors import ConfigError
from newswatch.settings import Settings
from schemas.feeds_file import load_feeds_file, parse_feeds_yaml


def test_demo_feeds_file_loads_and_points_at_bundled_files() -> None:
    path = Settings().feeds_path()
    config = load_feeds_file(path)
    assert len(config.feeds) == len(list((path.parent / "feeds").glob("*.xml")))
    for feed in config.feeds:
        assert feed.is_local
        assert Path(feed.url.removeprefix("file://")).is_file(), feed.url


def test_full_entry() -> None:
    config = parse_feeds_yaml("""
feeds:
  - key: world-news
    url: https://news.example.org/rss
    name: World News
    poll_interval: 1h30m
    tags: [world, " world ", politics]
    language: en-GB
    enabled: false
    full_text: true
    base_url: https://news.example.org/
    encoding: Windows-1251
  - id: local
    url: feeds/local.xml
""", folder=Path("/srv/newswatch"))
    first, second = config.feeds
    assert first.id == "world-news"
    assert first.poll_interval == timedelta(hours=1, minutes=30)
    assert first.tags == ("world", "politics")
    assert (first.enabled, first.full_text, first.encoding) == (False, True, "cp1251")
    assert second.url == "file:///srv/newswatch/feeds/local.xml"
    assert (second.enabled, second.full_text, second.poll_interval) == (True, False, None)
    assert config.enabled() == (second,)


@pytest.mark.parametrize(("value", "seconds"), [(90, 90), ("90s", 90), ("15m", 900),
                                                 ("2h", 7200), ("1h30m", 5400)])
def test_poll_interval_forms(value: object, seconds: int) -> None:
    config = parse_feeds_yaml(f"feeds:\n  - id: a\n    url: http://a.example/\n"
                              f"    poll_interval: {value}\n")
    assert config.feeds[0].poll_interval == timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "expected"), [
    # Missing url, reported on the line of the item.
    ("feeds:\n  - id: a\n    url: http://a.example/\n  - id: b\n    name: B\n",
     "feeds.yaml:4: feeds[1].url: Field required"),
    # A bad value, on the line of its key.
    ("feeds:\n  - id: a\n    url: http://a.example/\n    poll_interval: soon\n",
     "feeds.yaml:4: feeds[0].poll_interval:"),
    ("feeds:\n  - id: a\n    url: ftp://a.example/feed\n",
     "feeds.yaml:3: feeds[0].url: unsupported scheme 'ftp'"),
    ("feeds:\n  - id: 'bad id!'\n    url: http://a.example/\n",
     "feeds.yaml:2: feeds[0].id: String should match pattern"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n    colour: red\n",
     "feeds.yaml:4: feeds[0].colour: Extra inputs are not permitted"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n    encoding: klingon\n",
     "feeds.yaml:4: feeds[0].encoding: unknown encoding 'klingon'"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n    language: english!\n",
     "feeds.yaml:4: feeds[0].language:"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n    enabled: maybe\n",
     "feeds.yaml:4: feeds[0].enabled:"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n  - id: a\n    url: http://b.example/\n",
     "feeds.yaml:4: feeds[1].id: feed id 'a' is already used on line 2"),
    ("feeds:\n  - id: a\n    url: http://a.example/\n    url: http://b.example/\n",
     "feeds.yaml:4: key 'url' appears twice"),
    ("feeds:\n  - id: a\n    url: [unclosed\n", "feeds.yaml:4: not valid YAML"),
    ("- just a list\n", "feeds.yaml:1: the file must be a mapping"),
    ("feeds: 3\n", "feeds.yaml:1: feeds:"),
])
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_feeds_yaml(text, source="feeds.yaml")
    assert expected in str(caught.value)


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_feeds_yaml("feeds:\n  - id: a\n  - url: http://b.example/\n")
    message = str(caught.value)
    assert "feeds[0].url" in message
    assert "feeds[1].id" in message


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feeds file not found"):
        load_feeds_file(tmp_path / "nope.yaml")


def test_empty_file_has_no_feeds() -> None:
    assert parse_feeds_yaml("").feeds == ()
