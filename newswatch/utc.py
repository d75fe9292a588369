"""Times read back from the database, as aware UTC datetimes.

Every time is stored in UTC. PostgreSQL hands back aware datetimes (in the session's
zone), SQLite naive ones holding the UTC wall time; `as_utc` makes both the same aware
UTC value, so they compare, subtract and print alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def as_utc(moment: datetime) -> datetime: ...


@overload
def as_utc(moment: None) -> None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
