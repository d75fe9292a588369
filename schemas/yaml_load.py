"""Loading the YAML files people write (feeds, topics, rules) with alias expansion bounded.

A YAML alias repeats a node without repeating its text: nine nested levels of ten aliases
(a 1 KB "billion laughs" file) stand for a billion strings. PyYAML shares the repeated
objects, so loading is cheap, but anything that walks the value (validation, an error
message that prints it) expands it: a 72 MB log line or a MemoryError that killed the rule
evaluator (issue 16). `BoundedLoader` counts the nodes of each document with its aliases
expanded, before constructing anything, and refuses a document whose aliases expand it
beyond `MAX_EXPANDED_NODES` or `MAX_EXPANSION` times its own node count, whichever is
larger (or one whose aliases refer to themselves) with a `ConfigError` that names the
count, never the value. The bound is relative as well as absolute because a big file
without a single alias is no bomb: 10,000 rules are ~300,000 nodes, all written out in the
file (issue 17: a flat bound of 200,000 refused them).

`load_document` is the one loader of those files: it keeps the node tree, so that every
error (bad YAML, a duplicate key, a field pydantic rejects) reads ``file:line: field:
message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from schemas.errors import ConfigError

# Far above any real file (the shipped topics.yaml has ~2,000 nodes), far below harm.
MAX_EXPANDED_NODES = 200_000
# Aliases may repeat a file's nodes this many times over before it is refused.
MAX_EXPANSION = 4


# libyaml's safe loader when PyYAML has it: 3x faster on 10,000 rules, the same data.
_SAFE_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BoundedLoader(_SAFE_BASE):  # type: ignore[valid-type,misc]
    """A safe loader (libyaml's where present) that refuses documents whose aliases
    expand too far. The check hooks `get_single_node`, which both the C and the Python
    parser go through before anything is constructed."""

    def get_single_node(self) -> Node | None:
        node: Node | None = super().get_single_node()
        if node is not None:
            check_expansion(node, max(MAX_EXPANDED_NODES, MAX_EXPANSION * distinct_nodes(node)))
        return node


def distinct_nodes(root: Node) -> int:
    """How many distinct nodes ``root`` holds (an alias's target counted once)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return len(seen)


def check_expansion(root: Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes under ``root`` with aliases expanded; `ConfigError` over
    ``limit`` or on a recursive alias. Counts each shared node once per use, memoised, so
    the count itself costs one visit per distinct node."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            mark = node.start_mark
            raise ConfigError(f"line {mark.line + 1}: a YAML alias refers to itself")
        visiting.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        visiting.discard(key)
        if total > limit:
            raise ConfigError(
                f"YAML aliases expand to more than {limit} values (at line "
                f"{node.start_mark.line + 1}): refused, as a 'billion laughs' file would be")
        sizes[key] = total
        return total

    return size(root)


def safe_load(text: str) -> Any:
    """`yaml.safe_load` with alias expansion bounded (see the module docstring)."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> Node | None:
    """`yaml.compose` with the same bound."""
    return yaml.compose(text, Loader=BoundedLoader)


# --- One loader for the files people write: file, line and field in every error -------

Location = tuple[int | str, ...]


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its data, and its node tree to say where a problem is.

    ``source`` names the file in messages. `problem` is the one format every YAML file's
    errors use: ``source:line: field: message`` (``source: field: message`` when the
    location reaches no node).
    """

    source: str
    data: Any
    root: Node | None

    def line_of(self, loc: Location) -> int | None:
        """The 1-based line of the deepest node that ``loc`` (a pydantic error location:
        keys and list indexes) reaches: a key's own line, or the start of the mapping or
        list item it leads to. Parts that name no node (a union's tag) end the walk."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child: Node | None = None
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    if key.value == part or (isinstance(part, int) and key.value == str(part)):
                        child, line = value, key.start_mark.line + 1
                        break
            elif isinstance(node, SequenceNode) and isinstance(part, int) and (
                    0 <= part < len(node.value)):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                break
            if isinstance(child, MappingNode):
                line = child.start_mark.line + 1
            node = child
        return line

    def where(self, loc: Location = ()) -> str:
        """``source:line`` for ``loc``, or ``source`` when no line is known."""
        line = self.line_of(loc)
        return f"{self.source}:{line}" if line is not None else self.source

    def problem(self, loc: Location, message: str, field: str | None = None) -> str:
        """``source:line: field: message``; ``field`` defaults to the path of ``loc``."""
        field = field_path(loc) if field is None else field
        message = message.removeprefix("Value error, ")
        return ": ".join(part for part in (self.where(loc), field, message) if part)


def field_path(loc: Location) -> str:
    """A pydantic location as a reader writes it: ``feeds[0].url``, ``rules[2].within``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_document(text: str | bytes, source: str) -> YamlDocument:
    """Parse one YAML document with `BoundedLoader` and keep its node tree.

    Raises `ConfigError` for text that is not UTF-8, not YAML, a mapping with the same key
    twice (YAML would silently keep the last), or aliases that expand too far; each error
    starts ``source:line:`` like every other problem in the file. An empty file is ``None``.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8: {exc}") from None
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _reject_duplicate_keys(root, source)
        data = loader.construct_document(root) if root is not None else None
    except _DuplicateKeyError as exc:
        raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return YamlDocument(source=source, data=data, root=root)


class _DuplicateKeyError(ConfigError):
    """Already located (``source:line:``): `load_document` passes it on unchanged."""


def _reject_duplicate_keys(root: Node, source: str) -> None:
    """`ConfigError` at the second of two equal keys in one mapping. Visits each node once
    (aliases share nodes, and `check_expansion` has bounded them already)."""
    seen_nodes: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if isinstance(key.value, str):
                    if (key.tag, key.value) in keys and key.value != "<<":
                        raise _DuplicateKeyError(f"{source}:{key.start_mark.line + 1}: key "
                                                 f"{key.value!r} appears twice in one mapping")
                    keys.add((key.tag, key.value))
                pending.extend((key, value))
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)
