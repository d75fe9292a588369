"""The format of ``feeds.yaml``: which feeds the producer polls, and how.

```yaml
feeds:
  - id: guardian-us            # the feed's key: letters, digits, '.', '_', '-'
    url: https://www.theguardian.com/us/rss   # http(s)://, file:// or a local path
    name: The Guardian (US)
    poll_interval: 10m         # seconds, or 90s / 15m / 2h / 1h30m; default from settings
    tags: [world, us]          # added to every article of the feed
    language: en               # BCP 47; overrides what the feed says
    enabled: true
    full_text: false           # fetch each article page and extract its text
    base_url: https://www.theguardian.com/   # resolve relative links (local copies)
    encoding: windows-1251     # only for feeds that neither declare nor use UTF-8
```

Local paths are relative to the folder of the feeds file and become ``file://`` URLs when
loaded. `load_feeds_file` raises `ConfigError` naming the file, the line and the field of
every problem, so an operator can fix the file without reading a traceback.
"""

from __future__ import annotations

import codecs
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.duration import Duration
from schemas.errors import ConfigError
from schemas.messages import FEED_ID_LENGTH
from schemas.yaml_load import YamlDocument, field_path, load_document

# At most FEED_ID_LENGTH characters: the column that keeps it (schemas.messages).
FEED_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{FEED_ID_LENGTH - 1}}}$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"


class FeedConfig(BaseModel):
    """One feed of ``feeds.yaml``. Frozen: a reload builds new objects."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "key"), pattern=FEED_ID_PATTERN)
    url: str = Field(min_length=1)
    name: str = ""
    poll_interval: Duration | None = Field(default=None, ge=timedelta(seconds=10),
                                           le=timedelta(days=7))
    tags: tuple[str, ...] = ()
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)
    enabled: bool = True
    full_text: bool = False
    base_url: str | None = None
    encoding: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        scheme = urlsplit(value).scheme.lower()
        if scheme in ("http", "https"):
            if not urlsplit(value).hostname:
                raise ValueError("an http(s) URL needs a host")
        elif scheme not in ("", "file") and len(scheme) > 1:  # len 1: a Windows drive
            raise ValueError(f"unsupported scheme {scheme!r}: use http, https, file or a path")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("base_url must be an absolute http(s) URL")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(tag.strip() for tag in value if tag.strip()))
        return cleaned

    @property
    def is_local(self) -> bool:
        """True for ``file://`` URLs (what local paths become when the file is loaded)."""
        return urlsplit(self.url).scheme.lower() == "file"

    @property
    def display_name(self) -> str:
        return self.name or self.id


class FeedsFile(BaseModel):
    """The whole file: a list of feeds with unique ids."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feeds: tuple[FeedConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> FeedsFile:
        seen: set[str] = set()
        for feed in self.feeds:
            if feed.id in seen:
                raise ValueError(f"feed id {feed.id!r} is used twice")
            seen.add(feed.id)
        return self

    def enabled(self) -> tuple[FeedConfig, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)

    def get(self, feed_id: str) -> FeedConfig | None:
        return next((feed for feed in self.feeds if feed.id == feed_id), None)


def _resolve_url(feed: FeedConfig, folder: Path) -> FeedConfig:
    parts = urlsplit(feed.url)
    if parts.scheme.lower() in ("http", "https", "file"):
        return feed
    path = Path(feed.url).expanduser()
    if not path.is_absolute():
        path = folder / path
    return feed.model_copy(update={"url": path.resolve().as_uri()})


def _check_unique_ids(document: YamlDocument, data: dict[Any, Any]) -> None:
    first_line: dict[str, int | None] = {}
    items = data.get("feeds")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        key = "id" if "id" in item else "key"
        feed_id = item.get(key)
        if not isinstance(feed_id, str):
            continue
        loc = ("feeds", index, key)
        if feed_id in first_line:
            raise ConfigError(document.problem(
                loc, f"feed id {feed_id!r} is already used on line {first_line[feed_id]}"))
        first_line[feed_id] = document.line_of(loc)


def parse_feeds_yaml(text: str, source: str = "feeds.yaml", folder: Path | None = None
                     ) -> FeedsFile:
    """Validate feeds.yaml ``text``; relative local paths are resolved against ``folder``.

    Raises `ConfigError` listing every problem as ``source:line: field: message``.
    """
    document = load_document(text, source)
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping with a 'feeds' list")
    _check_unique_ids(document, data)
    try:
        parsed = FeedsFile.model_validate(data)
    except ValidationError as exc:
        problems = [document.problem(tuple(error["loc"]), error["msg"],
                                     field_path(tuple(error["loc"])) or "(file)")
                    for error in exc.errors()]
        raise ConfigError("invalid feeds file:\n  " + "\n  ".join(problems)) from None
    folder = folder or Path.cwd()
    return parsed.model_copy(
        update={"feeds": tuple(_resolve_url(feed, folder) for feed in parsed.feeds)}
    )


def load_feeds_file(path: Path) -> FeedsFile:
    """Read and validate ``path``; `ConfigError` names the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: feeds file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the feeds file: {exc}") from None
    return parse_feeds_yaml(text, source=str(path), folder=path.resolve().parent)
