"""The formats of ``topics.yaml`` and of the entity alias table it points to.

A topics file is data that people write, so it is validated strictly (unknown keys are
errors) and a mistake is reported as one `ConfigError` naming the file, the line, the
topic and the field, e.g.::

    topics.yaml, line 14: topic 'recognition', field 'rules[1].weight':
    Input should be less than or equal to 1

Layout of a topics file::

    aliases: entity_aliases.yaml     # alias table, relative to the topics file
    relevance: relevance-model.json  # optional relevance model (consumers/enrich/relevance.py)
    topics:
      <name>:                        # lower_snake_case
        description: ...
        threshold: 0.5               # hits scoring below are not reported
        constraints:                 # named conditions that rules may require
          <name>: {entities: [...], labels: [...], phrases: [...], patterns: [...],
                   within: sentence | document | <n tokens>}
        rules:                       # what counts as evidence, and how much
          - {name: ..., weight: 0.6, phrases: [...], patterns: [...], entities: [...],
             labels: [...], requires: [<constraint>, ...]}
        exclusions:                  # what cancels evidence
          - {name: ..., phrases: [...], patterns: [...], scope: overlap | sentence | lead,
             unless: [<constraint>, ...]}
        languages:                   # phrases in other languages, by BCP 47 primary code
          de:
            rules: {<rule name>: [...]}
            constraints: {<constraint name>: [...]}
            exclusions: {<exclusion name>: [...]}

The ``phrases`` and ``patterns`` of a rule, constraint or exclusion are English. A
document in another language is matched with the phrases under ``languages.<code>``
instead (in all their inflected forms, from spaCy's lemma lookup tables where the language
has one; see `consumers.enrich.lemma_forms`), while ``entities`` and ``labels`` work in
every language. A language with no phrases for a topic can still reach the topic through
entities alone; ``newswatch topics check`` lists such gaps.

Everything that finds text shares one shape (`Finder`): ``phrases`` (matched on lower-case
text, in all their inflected forms unless ``inflect`` says otherwise), ``patterns``
(spaCy ``Matcher`` token patterns), ``entities`` (canonical names from the alias table,
found under any alias) and ``labels`` (spaCy NER labels such as GPE).

The topics version is a hash of the bytes of the topics file and of its alias table, so
any change to either gives a new version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas import yaml_load
from schemas.errors import ConfigError
from schemas.regex_safety import check_regex, regexes_in

TOPIC_NAME = r"^[a-z][a-z0-9_]*$"
NER_LABELS = frozenset({
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
    "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
})

TokenPattern = list[dict[str, Any]]
M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Finder(_Strict):
    """What to look for in a document; a span found by any of the four kinds counts."""

    phrases: tuple[str, ...] = Field(
        default=(), description="Matched on lower-case tokens, in their inflected forms"
    )
    patterns: tuple[TokenPattern, ...] = Field(
        default=(), description="spaCy Matcher token patterns, longest match wins"
    )
    entities: tuple[str, ...] = Field(
        default=(), description="Canonical names from the alias table, under any alias"
    )
    labels: tuple[str, ...] = Field(default=(), description="spaCy NER labels, e.g. GPE")
    inflect: Literal["all", "nouns", "none"] = Field(
        default="all",
        description="all: plurals, -s, -ed, -ing and -ise/-ize forms; nouns: plurals and "
        "spelling variants only; none: exactly as written",
    )

    @model_validator(mode="after")
    def _check(self) -> Finder:
        for phrase in self.phrases:
            if not phrase:
                raise ValueError("a phrase is empty")
        for pattern in self.patterns:
            if not pattern:
                raise ValueError("a pattern has no tokens")
            for regex in regexes_in(pattern):
                check_regex(regex)  # spaCy runs it without a time limit (issue 16)
        for label in self.labels:
            if label not in NER_LABELS:
                raise ValueError(f"unknown NER label {label!r} (one of {sorted(NER_LABELS)})")
        return self

    def is_empty(self) -> bool:
        return not (self.phrases or self.patterns or self.entities or self.labels)


class Constraint(Finder):
    """A condition a rule's match must meet: something found ``within`` reach of it."""

    description: str = ""
    within: str | int = Field(
        default="sentence",
        description="sentence, document, or a number of tokens either side of the match "
        "in its sentence",
    )

    @field_validator("within", mode="before")
    @classmethod
    def _check_within(cls, value: Any) -> Any:
        if value in ("sentence", "document"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
            return value
        raise ValueError("within must be 'sentence', 'document' or 1..100 tokens")

    @model_validator(mode="after")
    def _check_constraint(self) -> Constraint:
        if self.is_empty():
            raise ValueError("a constraint needs phrases, patterns, entities or labels")
        return self


class Rule(Finder):
    """One kind of evidence; each match adds ``weight`` to the topic's score."""

    name: str = Field(pattern=TOPIC_NAME)
    weight: float = Field(gt=0.0, le=1.0)
    requires: tuple[str, ...] = Field(
        default=(), description="Constraints every match of this rule must meet"
    )
    names_topic: bool = Field(
        default=False,
        description="The rule names the topic outright (\"drug trafficking\"): where a "
                    "topic has such rules, the relevance layer's rule-score floor keeps a "
                    "hit only when one of them matched other than as an item of a list")

    @model_validator(mode="after")
    def _check_rule(self) -> Rule:
        if self.is_empty():
            raise ValueError("a rule needs phrases, patterns, entities or labels")
        return self


class Exclusion(Finder):
    """Text that cancels evidence: matches it overlaps, all matches in its sentence, or
    (``lead``) when found in the title or lead, without a span of the constraints named
    by ``unless`` there, every match after the lead: the story is another's, and what
    follows names the topic in passing."""

    name: str = ""
    scope: Literal["overlap", "sentence", "lead"] = "sentence"
    unless: tuple[str, ...] = Field(
        default=(), description="With scope lead: constraints whose spans in the title or "
                                "lead keep the story the topic's (e.g. its actor named there)")

    @model_validator(mode="after")
    def _check_exclusion(self) -> Exclusion:
        if self.is_empty():
            raise ValueError("an exclusion needs phrases, patterns, entities or labels")
        if self.unless and self.scope != "lead":
            raise ValueError("unless is for an exclusion with scope lead")
        return self


LANGUAGE_CODE = r"^[a-z]{2,3}$"


class LanguagePhrases(_Strict):
    """One language's phrases for a topic, by the name of the rule, constraint or
    exclusion they stand in for (matched with that part's ``inflect`` setting)."""

    rules: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    constraints: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    exclusions: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_phrases(self) -> LanguagePhrases:
        for part in (self.rules, self.constraints, self.exclusions):
            for name, phrases in part.items():
                if any(not phrase for phrase in phrases):
                    raise ValueError(f"a phrase of {name!r} is empty")
        return self

    def is_empty(self) -> bool:
        return not any(phrases for part in (self.rules, self.constraints, self.exclusions)
                       for phrases in part.values())


class Topic(_Strict):
    """One topic: its rules, the constraints they require, exclusions and threshold."""

    description: str = Field(min_length=1)
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    title_weight: float = Field(
        default=1.25, ge=1.0, le=3.0,
        description="Multiplier for evidence found in the title (capped at 0.99)",
    )
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = Field(min_length=1)
    exclusions: tuple[Exclusion, ...] = ()
    languages: dict[str, LanguagePhrases] = Field(
        default_factory=dict, description="Phrases in other languages, by language code")

    @model_validator(mode="after")
    def _check_names(self) -> Topic:
        for name in self.constraints:
            if not re.match(TOPIC_NAME, name):
                raise ValueError(f"constraint name {name!r} must be lower_snake_case")
        for code in self.languages:
            if not re.match(LANGUAGE_CODE, code):
                raise ValueError(f"language {code!r} must be a lower-case ISO 639 code")
        return self

    def phrases_in(self, language: str, kind: str, name: str, english: tuple[str, ...]
                   ) -> tuple[str, ...]:
        """The phrases of part ``name`` of ``kind`` (rules, constraints, exclusions) for a
        document in ``language``: ``english`` for English, else the language's own."""
        if language == "en":
            return english
        phrases = self.languages.get(language)
        return getattr(phrases, kind).get(name, ()) if phrases is not None else ()

    def languages_without_phrases(self) -> list[str]:
        """Languages listed for the topic whose rules have no phrases at all."""
        return sorted(code for code, phrases in self.languages.items()
                      if not any(phrases.rules.values()))


class TopicsFile(_Strict):
    """The whole ``topics.yaml``."""

    aliases: str | None = Field(
        default=None, description="Alias table, a path relative to the topics file"
    )
    relevance: str | None = Field(
        default=None,
        description="Relevance model file (`newswatch topics train`), relative to the topics "
        "file; a topic it has a model for is hit when the model's probability reaches the "
        "topic's threshold",
    )
    topics: dict[str, Topic] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_topic_names(self) -> TopicsFile:
        for name in self.topics:
            if not re.match(TOPIC_NAME, name):
                raise ValueError(f"topic name {name!r} must be lower_snake_case")
        return self


class AliasEntity(_Strict):
    """One canonical entity and the names it goes by."""

    name: str = Field(min_length=1, description="Canonical name, e.g. 'Islamic State'")
    label: str = Field(description="NER label reported for it, e.g. ORG")
    aliases: tuple[str, ...] = Field(
        default=(), description="Other names, matched case-insensitively"
    )
    exact: tuple[str, ...] = Field(
        default=(),
        description="Names matched only exactly as written (e.g. 'IS', never the verb 'is')",
    )
    cased: bool = Field(
        default=False,
        description="Match the name and aliases too only where written with a capital "
        "(generated country names: 'Turkey', not 'turkey')",
    )
    names: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Names in other languages, by language code: matched in every "
        "language, in their inflected forms in their own, and only where the text "
        "writes them with a capital (Portuguese 'peru' is a turkey, 'Peru' a country)",
    )

    @model_validator(mode="after")
    def _check_label(self) -> AliasEntity:
        if self.label not in NER_LABELS:
            raise ValueError(f"unknown NER label {self.label!r}")
        for code in self.names:
            if not re.match(LANGUAGE_CODE, code):
                raise ValueError(f"language {code!r} must be a lower-case ISO 639 code")
        return self


class AliasFile(_Strict):
    """The entity alias table: ``entities: [{name, label, aliases, exact, names}, ...]``.

    ``include`` names further alias files (relative to this one, e.g. a generated table
    of countries): their entities are merged into this one's by canonical name.
    """

    include: tuple[str, ...] = ()
    entities: tuple[AliasEntity, ...] = ()

    @model_validator(mode="after")
    def _check_unique(self) -> AliasFile:
        owner: dict[str, str] = {}
        for entity in self.entities:
            for alias in (entity.name, *entity.aliases):
                key = normalise_alias(alias)
                if key in owner and owner[key] != entity.name:
                    raise ValueError(
                        f"alias {alias!r} belongs to both {owner[key]!r} and {entity.name!r}"
                    )
                owner[key] = entity.name
        return self

    def names(self) -> frozenset[str]:
        return frozenset(entity.name for entity in self.entities)

    def merged(self, other: AliasFile) -> AliasFile:
        """This table with ``other``'s entities added; an entity in both keeps this one's
        label and gains the other's names. Re-validated, so a name claimed by two
        entities is still an error."""
        by_name = {entity.name: entity for entity in self.entities}
        for entity in other.entities:
            mine = by_name.get(entity.name)
            if mine is None:
                by_name[entity.name] = entity
                continue
            names = {code: tuple(dict.fromkeys((*mine.names.get(code, ()), *extra)))
                     for code, extra in entity.names.items()}
            by_name[entity.name] = AliasEntity(
                name=mine.name, label=mine.label,
                aliases=tuple(dict.fromkeys((*mine.aliases, *entity.aliases))),
                exact=tuple(dict.fromkeys((*mine.exact, *entity.exact))),
                cased=mine.cased, names={**mine.names, **names})
        return AliasFile(entities=tuple(by_name.values()))


def normalise_alias(text: str) -> str:
    """The key an alias is looked up by: lower case, no leading 'the', single spaces."""
    key = " ".join(text.replace("’", "'").split()).lower()
    key = re.sub(r"^the ", "", key)
    return re.sub(r"'s$", "", key)


@dataclass(frozen=True)
class LoadedTopics:
    """A validated topics file with its alias table, paths and version."""

    path: Path
    topics: TopicsFile
    aliases: AliasFile
    alias_path: Path | None
    version: str
    relevance_path: Path | None = None  # the model file the topics file names, if any


def load_topics(path: Path) -> LoadedTopics:
    """Read and validate a topics file and the alias table it names.

    Raises `ConfigError` naming the file, line, topic and field of the first problems. The
    version is the first 16 hex digits of SHA-256 over both files' bytes.
    """
    raw = _read(path)
    topics = _validate(TopicsFile, raw, path)
    alias_path: Path | None = None
    aliases = AliasFile()
    digest = hashlib.sha256(raw)
    if topics.aliases is not None:
        alias_path = (path.parent / topics.aliases).resolve()
        aliases = _load_aliases(alias_path, digest)
    _check_references(topics, aliases, path, raw)
    relevance_path = (None if topics.relevance is None
                      else (path.parent / topics.relevance).resolve())
    return LoadedTopics(path=path, topics=topics, aliases=aliases, alias_path=alias_path,
                        version=digest.hexdigest()[:16], relevance_path=relevance_path)


MAX_INCLUDE_DEPTH = 4


def _load_aliases(path: Path, digest: Any, depth: int = 0) -> AliasFile:
    """An alias file merged with the files it includes; every file's bytes go into the
    topics version."""
    raw = _read(path)
    digest.update(b"\0")
    digest.update(raw)
    aliases = _validate(AliasFile, raw, path)
    for name in aliases.include:
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{path}: includes nest deeper than {MAX_INCLUDE_DEPTH} files")
        included = _load_aliases((path.parent / name).resolve(), digest, depth + 1)
        try:
            aliases = aliases.merged(included)
        except ValidationError as exc:
            raise ConfigError(f"{path}: with {name}: {exc.errors()[0]['msg']}") from exc
    return aliases


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _document(raw: bytes, path: Path) -> yaml_load.YamlDocument:
    return yaml_load.load_document(raw, str(path))


def _validate(model: type[M], raw: bytes, path: Path) -> M:
    document = _document(raw, path)
    data = document.data if document.data is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error["loc"], error["msg"], document)
                    for error in exc.errors()[:5]]
        more = len(exc.errors()) - len(problems)
        if more > 0:
            problems.append(f"... and {more} more")
        raise ConfigError("\n".join(problems)) from exc


def describe_problem(path: Path, loc: tuple[int | str, ...], msg: str) -> str:
    """A problem found after loading, located like a validation error (file, line, topic,
    field), e.g. a token pattern that spaCy rejects when the topics are compiled."""
    try:
        document = _document(path.read_bytes(), path)
    except (OSError, ConfigError):
        document = yaml_load.YamlDocument(source=str(path), data=None, root=None)
    return _describe(loc, msg, document)


def _describe(loc: tuple[int | str, ...], msg: str, document: yaml_load.YamlDocument) -> str:
    """One problem as 'file:N: topic 't', field 'rules[1].weight': message'."""
    if len(loc) >= 2 and loc[0] == "topics":
        field = yaml_load.field_path(loc[2:]) or "(the topic itself)"
        return document.problem(loc, msg, f"topic {loc[1]!r}, field {field!r}")
    return document.problem(loc, msg, f"field {yaml_load.field_path(loc) or '(top level)'!r}")


def _check_references(topics: TopicsFile, aliases: AliasFile, path: Path,
                      raw: bytes) -> None:
    """What one part names must exist: constraints a rule requires, rule names unique,
    entities in the alias table. Checked after validation so errors point at the field."""
    known = aliases.names()
    problems: list[tuple[tuple[int | str, ...], str]] = []
    for topic_name, topic in topics.topics.items():
        at: tuple[int | str, ...] = ("topics", topic_name)
        seen: set[str] = set()
        for i, rule in enumerate(topic.rules):
            if rule.name in seen:
                problems.append(((*at, "rules", i, "name"),
                                 f"rule name {rule.name!r} is used twice"))
            seen.add(rule.name)
            for j, needed in enumerate(rule.requires):
                if needed not in topic.constraints:
                    problems.append(((*at, "rules", i, "requires", j),
                                     f"unknown constraint {needed!r} (defined: "
                                     f"{sorted(topic.constraints) or 'none'})"))
        for i, exclusion in enumerate(topic.exclusions):
            for j, needed in enumerate(exclusion.unless):
                if needed not in topic.constraints:
                    problems.append(((*at, "exclusions", i, "unless", j),
                                     f"unknown constraint {needed!r} (defined: "
                                     f"{sorted(topic.constraints) or 'none'})"))
        finders: list[tuple[tuple[int | str, ...], Finder]] = []
        finders += [(("rules", i), rule) for i, rule in enumerate(topic.rules)]
        finders += [(("constraints", name), c) for name, c in topic.constraints.items()]
        finders += [(("exclusions", i), e) for i, e in enumerate(topic.exclusions)]
        for loc, finder in finders:
            for j, entity in enumerate(finder.entities):
                if entity not in known:
                    problems.append(((*at, *loc, "entities", j),
                                     f"entity {entity!r} is not a canonical name in the "
                                     f"alias table (known: {sorted(known) or 'none'})"))
        parts = {"rules": {rule.name for rule in topic.rules},
                 "constraints": set(topic.constraints),
                 "exclusions": {exclusion.name for exclusion in topic.exclusions
                                if exclusion.name}}
        for code, phrases in topic.languages.items():
            for kind, names in parts.items():
                for name in getattr(phrases, kind):
                    if name not in names:
                        problems.append(((*at, "languages", code, kind, name),
                                         f"no {kind[:-1]} named {name!r} in this topic "
                                         f"(named: {sorted(names) or 'none'})"))
    if problems:
        document = _document(raw, path)
        raise ConfigError("\n".join(_describe(loc, msg, document) for loc, msg in problems[:5]))
