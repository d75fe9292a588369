"""Article identity: canonical URLs and the stable article id derived from them.

The id is the first 32 hex digits of SHA-256 over the canonical URL (or, for an item
without a link, over ``guid:`` plus its GUID). The same story seen in two feeds, or with
different tracking parameters, gets the same id and so becomes one row.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that only track the reader and never select content.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "igshid",
    "yclid", "_hsenc", "_hsmi", "mkt_tok", "ref_src", "cmpid", "ocid", "smid", "smtyp",
    "partner", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3",
    "at_custom4", "ito", "ns_mchannel", "ns_source", "ns_campaign", "ns_linkname", "ns_fee",
    "wt_mc", "wt_zmc", "wt_cc1",
})
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None) -> str:
    """The URL with relative parts resolved, host lower-cased, fragment and trackers dropped.

    Default ports are removed and the remaining query parameters are kept in their order.
    """
    absolute = urljoin(base, url.strip()) if base else url.strip()
    parts = urlsplit(absolute)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    )
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, query, ""))


def article_id(canonical: str | None, guid: str | None = None) -> str:
    """Stable id of an article: hash of its canonical URL, else of its GUID.

    Raises ValueError when both are missing, since such an item cannot be deduplicated.
    """
    if canonical:
        key = canonical
    elif guid:
        key = "guid:" + guid.strip()
    else:
        raise ValueError("an article needs a link or a GUID to have an id")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
