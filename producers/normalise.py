"""Where the producer's normalising lived before it was split by job; kept so that code
written against ``producers.normalise`` goes on working. New code imports the modules:

- `producers.entries`: a parsed feed's entries to `schemas.messages.Article` (the contract);
- `producers.text`: HTML and feed text to bounded plain text;
- `producers.dates`: feed dates to UTC, loose dates in other languages, plausibility.
"""

from producers.dates import EARLIEST_PLAUSIBLE, FUTURE_TOLERANCE, parse_loose_date
from producers.entries import (
    MAX_CONTENT_CHARS,
    MAX_GUID_CHARS,
    MAX_NAME_CHARS,
    MAX_NAMES,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    content_hash,
    link_base,
    normalise,
    normalise_entry,
    normalise_language,
)
from producers.text import clip, html_to_text, one_line, plain_to_text

__all__ = [
    "EARLIEST_PLAUSIBLE",
    "FUTURE_TOLERANCE",
    "MAX_CONTENT_CHARS",
    "MAX_GUID_CHARS",
    "MAX_NAMES",
    "MAX_NAME_CHARS",
    "MAX_SUMMARY_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_URL_CHARS",
    "clip",
    "content_hash",
    "html_to_text",
    "link_base",
    "normalise",
    "normalise_entry",
    "normalise_language",
    "one_line",
    "parse_loose_date",
    "plain_to_text",
]
