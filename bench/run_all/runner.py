"""The run: arguments, the broker, each section in turn (one failing costs the others
nothing), then the table writer."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import bench.run_all
from bench.harness import local_broker, progress, uptime
from bench.run_all import table
from bench.run_all.machine import machine
from bench.run_all.section import Run
from bench.run_all.sections import NAMES, SECTIONS
from bench.run_all.sizes import FULL, QUICK
from newswatch.logs import setup_logging
from tests.support.daemons import REPO

DEFAULT_JSON = REPO / "bench" / "results.json"
README = REPO / "README.md"


def measure_sections(run: Run, results: dict[str, Any],
                     wanted: set[str] | None = None) -> None:
    """Each section in ``wanted`` (all when None) into ``results[name]``: its figures, or
    ``{"error": ...}`` when it raised, with the load average it began at."""
    for section in SECTIONS:
        if wanted is not None and section.name not in wanted:
            continue
        load = round(os.getloadavg()[0], 2)
        results.setdefault("load_average_by_section", {})[section.name] = load
        progress(f"{section.name} (load average {load:.2f})")
        try:
            results[section.name] = section.measure(run)
        except Exception as exc:  # one failed section must not cost the others' figures
            results[section.name] = {"error": f"{type(exc).__name__}: {exc}"}
            progress(f"  {section.name} FAILED: {type(exc).__name__}: {exc}")


def merged(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``later``'s sections over ``earlier``'s: a run in parts. The machine line then
    tells the parts' start times, loads and seconds together."""
    out = {**earlier, **{k: v for k, v in later.items() if k not in ("load_average_by_section",
                                                                      "parts")}}
    out["load_average_by_section"] = {**earlier.get("load_average_by_section", {}),
                                      **later.get("load_average_by_section", {})}
    out["load_average_start"] = earlier["load_average_start"]
    out["uptime_start"] = earlier.get("uptime_start", later["uptime_start"])
    out["started_at"] = earlier["started_at"]
    out["total_s"] = round(earlier.get("total_s", 0) + later["total_s"], 1)
    out["parts"] = [*earlier.get("parts", [_part(earlier)]), _part(later)]
    return out


def _part(results: dict[str, Any]) -> dict[str, Any]:
    return {"started_at": results["started_at"], "total_s": results.get("total_s"),
            "sections": [name for name in NAMES if name in results],
            "uptime_start": results.get("uptime_start"), "uptime_end": results.get("uptime_end")}


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all",
                                     description=(bench.run_all.__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less work per section (~2-3 min)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                        help="where the figures go (default bench/results.json)")
    parser.add_argument("--e2e-poll-interval", type=float, default=1.0, metavar="SECONDS",
                        help="the producer's poll interval in the end-to-end run (default 1, "
                             "the least the settings allow)")
    parser.add_argument("--only", default=None, metavar="SECTIONS",
                        help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--update", action="store_true",
                        help="with --only: keep the other sections' figures of the --json file "
                             "(a run in parts, each under the benchmark lock)")
    parser.add_argument("--write-readme", action="store_true",
                        help="also replace the README's benchmark table with this run's")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = set(args.only.split(",")) if args.only else None
    if wanted is not None and not wanted <= set(NAMES):
        parser.error(f"--only: unknown section(s) {sorted(wanted - set(NAMES))}")
    setup_logging("text", "WARNING")
    # kafka-python warns about every coordinator change while groups form: expected here.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "uptime_start": uptime(),
    }
    began = time.monotonic()
    with (tempfile.TemporaryDirectory(prefix="bench-all-") as tmp,
          contextlib.ExitStack() as stack):
        progress("starting Kafka")
        broker, bootstrap = stack.enter_context(local_broker(scratch=Path(tmp)))
        progress(f"Kafka at {bootstrap} in {time.monotonic() - began:.0f}s")
        run = Run(bootstrap, Path(tmp), sizes, broker,
                  e2e_poll_interval_s=args.e2e_poll_interval)
        measure_sections(run, results, wanted)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["uptime_end"] = uptime()
    results["total_s"] = round(time.monotonic() - began, 1)
    if args.update and args.json.exists():
        results = merged(json.loads(args.json.read_text()), results)
    print(table.report(results))
    # The bench's own processes add up to ~2 to the load average (two enrich daemons);
    # more than that, or load before it began, was someone else's.
    busiest = max(results.get("load_average_by_section", {}).values(), default=0.0)
    cpus = results["machine"]["cpus"] or 1
    start_load = results["load_average_start"][0]
    if start_load > cpus / 2 or busiest > cpus:
        results["note"] = (f"other work was running (load average {start_load:.2f} at the "
                           f"start, up to {busiest:.2f} during the run, on {cpus} CPUs): "
                           "wall-clock figures are lower than on a quiet machine; run "
                           "again when `uptime` shows less load")
        print(f"\nNote: {results['note']}.")
    print(f"\nuptime at the start: {results['uptime_start']}\n"
          f"uptime at the end:   {results['uptime_end']}")
    table.write_json(results, args.json)
    print(f"\nfigures written to {args.json}")
    if args.write_readme:
        table.write_readme(results, README)
        print(f"table written to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
