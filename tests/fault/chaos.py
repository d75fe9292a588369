"""The figures of a fault run, for the README's chaos table (``bench/chaos_report.py``).

Each fault test that has figures calls `report` once, after its assertions: one JSON line
appended to the file named by ``NEWSWATCH_CHAOS_REPORT`` (the report script sets it), and
printed (seen with ``pytest -s``). Nothing is written when the variable is unset.
"""

from __future__ import annotations

import json
import os

ENV = "NEWSWATCH_CHAOS_REPORT"


def report(run: str, *, faults: str, volume: str, lost: int, duplicated: int | str,
           repeated: int | str = "-", recovery: str = "-") -> None:
    """Record one fault run: what was injected, how much went through, what went wrong."""
    line = json.dumps({"run": run, "faults": faults, "volume": volume, "lost": lost,
                       "duplicated": duplicated, "repeated": repeated,
                       "recovery": recovery})
    print("chaos:", line)
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
