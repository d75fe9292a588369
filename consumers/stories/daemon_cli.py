"""``newswatch stories run``: placeholder replaced below."""
from __future__ import annotations

from typing import Any


def register_run(commands: Any) -> None:
    return None
