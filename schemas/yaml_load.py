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
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from newswatch.errors import ConfigError

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
