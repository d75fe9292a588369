"""Reuse of analysis for exact duplicate texts: news repeats itself (syndicated wire copy,
re-posts under another link), and NER is the cost.

    cache = AnalysisCache(capacity=10_000)
    analyses = cache.analyse_many(documents, analyse)   # analyse: the uncached path

An article whose `Document` (the normalised text enrichment analyses, where its title
ends, and any other field of it) is equal to one analysed recently gets that `Analysis`
back instead of running spaCy again: the same entities, topic hits, scores and evidence
offsets, since the analysis is a function of the document alone for one pipeline and
topics file. The key is a SHA-256 of the document's fields, so the cache holds no text.
Copies within one batch are analysed once too.

Bounded: at most ``capacity`` analyses, least recently used dropped first (an analysis
is a few KB: entities and evidence sentences). One cache per `Enricher`, so a reload of
the topics file, which builds a new enricher, starts empty. Near-duplicates (edits,
re-wrapped paragraphs that normalise differently) are not reused: their evidence offsets
would not hold.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple
from typing import TYPE_CHECKING

from newswatch import metrics

if TYPE_CHECKING:
    from consumers.enrich.enrich import Analysis, Document

DEFAULT_CAPACITY = 10_000


def document_key(document: Document) -> bytes:
    """SHA-256 of every field of ``document``, separated so no two documents collide."""
    digest = hashlib.sha256()
    for value in astuple(document):
        part = repr(value).encode("utf-8", "surrogatepass")
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


class AnalysisCache:
    """A bounded LRU of analyses by document key, with hit and miss counts."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, Analysis] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Analysis | None:
        analysis = self._entries.get(key)
        if analysis is not None:
            self._entries.move_to_end(key)
        return analysis

    def put(self, key: bytes, analysis: Analysis) -> None:
        self._entries[key] = analysis
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def analyse_many(self, documents: Iterable[Document],
                     analyse: Callable[[Sequence[Document]], list[Analysis]]
                     ) -> list[Analysis]:
        """The analyses of ``documents`` in order: cached ones reused, the others (each
        distinct one once) computed by ``analyse`` and cached."""
        documents = list(documents)
        keys = [document_key(document) for document in documents]
        found: dict[bytes, Analysis] = {}
        fresh: dict[bytes, Document] = {}
        for key, document in zip(keys, documents, strict=True):
            cached = self.get(key)
            if cached is not None:
                found[key] = cached
            elif key not in fresh:
                fresh[key] = document
        if fresh:
            for key, analysis in zip(fresh, analyse(list(fresh.values())), strict=True):
                found[key] = analysis
                self.put(key, analysis)
        reused = len(documents) - len(fresh)
        self.hits += reused
        self.misses += len(fresh)
        if reused:
            metrics.ANALYSES_REUSED.inc(reused)
        return [found[key] for key in keys]
