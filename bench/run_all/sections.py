"""Every section of the run, in the order it runs (and its rows appear in the table)."""

from __future__ import annotations

from bench.run_all import end_to_end, enrich, fulltext, producer, scaling, store
from bench.run_all.section import Section

SECTIONS: tuple[Section, ...] = (producer.SECTION, enrich.SECTION, store.SECTION,
                                 scaling.SECTION, end_to_end.SECTION, fulltext.SECTION)
NAMES = tuple(section.name for section in SECTIONS)
