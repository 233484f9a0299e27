"""Device fingerprints and user agents.

Fingerprints are opaque tokens: only surrounding whitespace and ASCII letter case
are normalised (hex digests arrive in either case).  A user agent is reduced to its
*family*: the browser, SDK or HTTP client plus its major version
(``chrome/124``, ``python-sdk/1``, ``curl/8``).  Full UA strings are too
specific (patch versions, OS builds) to link accounts robustly and too easy to
randomise; the family is what a scripted farm keeps constant.
"""

from __future__ import annotations

import re

import pandas as pd

from linkage.identifiers._codes import as_string_series, map_unique

__all__ = [
    "UA_OTHER",
    "fingerprint_one",
    "normalize_fingerprint",
    "user_agent_family",
    "user_agent_family_one",
]

#: Family of a known but unrecognised user agent (not an identifier: it lumps strangers).
UA_OTHER = "other"

_V = r"v?0*([0-9]{1,6})"  # major version (leading zeros dropped)

# (pattern, family) on the lower-cased UA, first match wins.  family None: the
# first group is the product name, the second the major version.  Every family
# text re-matches its own rule first, so user_agent_family is idempotent.
_RULES: tuple[tuple[str, str | None], ...] = (
    # Provider SDKs ("OpenAI/Python 1.30.1", "Anthropic/JS 0.20", "anthropic-sdk-python/0.3")
    (r"(?:(?:openai|anthropic)/python[ /]|[\w.-]*sdk-python/|python-sdk/)" + _V, "python-sdk"),
    (
        r"(?:(?:openai|anthropic)/(?:js|node|typescript)[ /]|[\w.-]*sdk-(?:js|node|typescript)/|js-sdk/)"
        + _V,
        "js-sdk",
    ),
    # Crawlers / agents ("Googlebot/2.1", "GPTBot/1.0")
    (r"\b([a-z][a-z0-9-]*bot)/" + _V, None),
    # Browsers, most specific token first (Edge and Opera also say Chrome/Safari)
    (r"\bheadlesschrome/" + _V, "headlesschrome"),
    (r"\bedg(?:e|a|ios)?/" + _V, "edge"),
    (r"\b(?:opr|opera)/" + _V, "opera"),
    (r"\bsamsungbrowser/" + _V, "samsungbrowser"),
    (r"\byabrowser/" + _V, "yabrowser"),
    (r"\b(?:firefox|fxios)/" + _V, "firefox"),
    (r"\b(?:chrome|crios|chromium)/" + _V, "chrome"),
    (r"\bversion/" + _V + r"[^ ]* (?:mobile/\S+ )?safari/", "safari"),
    (r"\b(?:msie |trident/.*rv:)" + _V, "ie"),
    # Any other leading product token ("python-requests/2.31", "curl/8.4.0", "Go-http-client/1.1",
    # or a farm's own "harvester/3"), except the generic "Mozilla/5.0" prefix.
    (r"^(?!mozilla/)([a-z][a-z0-9._+-]{0,63})/" + _V, None),
)


_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalize_fingerprint(fingerprints: pd.Series) -> pd.Series:
    """Stripped fingerprints with ASCII letters lower-cased (string dtype); blank → ``<NA>``.

    ASCII only, as the SQL of :data:`linkage.identifiers.kinds.KINDS` does (``LOWER``
    follows a different Unicode case table in each SQL engine)."""
    s = as_string_series(fingerprints)
    out = s.str.strip().str.translate(_TO_LOWER)
    return out.mask(out == "")


def fingerprint_one(raw: str) -> str | None:
    """One fingerprint, as :func:`normalize_fingerprint` (None if blank)."""
    return raw.strip().translate(_TO_LOWER) or None


_COMPILED = tuple((re.compile(p), f) for p, f in _RULES)


def user_agent_family_one(ua: str) -> str | None:
    """Family of one user agent (None if blank): :func:`user_agent_family` for one value."""
    s = ua.strip().lower()
    if not s:
        return None
    for pattern, family in _COMPILED:
        m = pattern.search(s)
        if m is not None:
            return f"{m.group(1)}/{m.group(2)}" if family is None else f"{family}/{m.group(1)}"
    return UA_OTHER


def user_agent_family(user_agents: pd.Series) -> pd.Series:
    """Browser/SDK/client family plus major version of each UA (``other`` if unrecognised).

    Unknown or blank user agents stay ``<NA>``.  Runs once per unique value
    (a handful of compiled regexes each); never raises on arbitrary text.
    """
    return map_unique(user_agents, user_agent_family_one)
