"""Feed dates to UTC: feedparser's parsed times, loose dates in other languages, and
whether a date is plausible at all.

Dates feedparser cannot read (Portuguese, Spanish, French, German, Italian month names)
are read by `parse_loose_date`; a date before 1995 or more than a day after the fetch is
not plausible (`plausible`), and the caller estimates it instead.
"""

from __future__ import annotations

import calendar
import re
import time
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)  # before the first web feeds
FUTURE_TOLERANCE = timedelta(days=1)


_MONTHS = {
    "jan": 1, "ene": 1, "gen": 1, "fev": 2, "feb": 2, "fevr": 2, "mar": 3, "mrz": 3,
    "abr": 4, "apr": 4, "avr": 4, "mai": 5, "may": 5, "mag": 5, "jun": 6, "giu": 6,
    "jui": 6, "jul": 7, "lug": 7, "ago": 8, "aug": 8, "aou": 8, "set": 9, "sep": 9,
    "out": 10, "oct": 10, "okt": 10, "ott": 10, "nov": 11, "dez": 12, "dec": 12, "dic": 12,
}
_LOOSE_DATE = re.compile(
    r"(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{2,4}),?\s*(?:T|\s)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|[A-Za-z]{1,5})?"
)
_ZONES = {"GMT": 0, "UT": 0, "UTC": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
          "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2, "BRT": -3,
          "WET": 0, "WEST": 1, "MSK": 3}


def _month(name: str) -> int | None:
    folded = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
    if folded.startswith("juil"):
        return 7
    return _MONTHS.get(folded[:4]) or _MONTHS.get(folded[:3])


def parse_loose_date(value: str) -> datetime | None:
    """A day-month-year date with a time, in several languages; None when unreadable."""
    match = _LOOSE_DATE.search(value)
    if not match:
        return None
    day, month_name, year, hour, minute, second, zone = match.groups()
    month = _month(month_name)
    if month is None:
        return None
    full_year = int(year) + (2000 if len(year) == 2 and int(year) < 70 else
                             1900 if len(year) == 2 else 0)
    offset = timedelta(0)
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    elif zone:
        offset = timedelta(hours=_ZONES.get(zone.upper(), 0))
    try:
        local = datetime(full_year, month, int(day), int(hour), int(minute), int(second or 0),
                         tzinfo=timezone(offset))
        # A date at the edge of the calendar ("31 Dec 9999 23:59 -1200") has no UTC twin:
        # astimezone overflows. Unreadable, like any other absurd date, not a feed failure.
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def struct_to_utc(value: Any) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def plausible(value: datetime | None, fetched_at: datetime) -> datetime | None:
    """``value`` when a feed could mean it: after 1995, at most a day after the fetch."""
    if value is None or value < EARLIEST_PLAUSIBLE or value > fetched_at + FUTURE_TOLERANCE:
        return None
    return value
