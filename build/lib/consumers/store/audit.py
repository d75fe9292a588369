"""The audit log: every change made through the console, the API or the CLI, with who
and when. Written in the caller's transaction, so a change and its record commit together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from schemas import tables


def record_audit(conn: Connection, *, who: str, action: str, target: str,
                 detail: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    """Append one row; ``target`` names the thing changed (``alert:12``, ``rule:x``)."""
    conn.execute(tables.audit_log.insert().values(
        at=at or datetime.now(UTC), who=who[:128], action=action[:32], target=target[:255],
        detail=detail or {},
    ))
