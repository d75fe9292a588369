"""Section 1, producer: new items per second through the daemon's own pass, on a local
feed server in a child process (`bench.bench_producer`'s rig)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import bench_producer
from bench.run_all.section import Figures, Row, Run, Section, number


def measure(run: Run) -> Figures:
    feeds, items = run.sizes.producer_feeds, run.sizes.producer_items
    server = bench_producer.start_server(feeds, items)
    try:
        rig = bench_producer.build_rig(run.bootstrap, server.base, feeds,
                                       run.folder("producer"), prefix=run.prefix("producer"))
        try:
            published, seconds = bench_producer.new_items_pass(rig)
        finally:
            rig.close()
    finally:
        server.close()
    if published != feeds * items:
        raise RuntimeError(f"published {published} of {feeds * items} items")
    return {"feeds": feeds, "items": published, "seconds": round(seconds, 2),
            "items_per_s": round(published / seconds, 1)}


def rows(p: Figures, _results: dict[str, Any]) -> Sequence[Row]:
    return [("Producer: new items", f"{number(p['items_per_s'])} items/s", "",
             f"{p['feeds']} feeds x {p['items'] // p['feeds']} new items on a local HTTP "
             "server: fetch, parse, normalise, publish (acks=all), record")]


SECTION = Section("producer", "Producer: new items", measure, rows)
