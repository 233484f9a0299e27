"""Device fingerprints and user agents.

Fingerprints are opaque tokens: only surrounding whitespace and letter case are
normalised (hex digests arrive in either case).  A user agent is reduced to its
*family*: the browser, SDK or HTTP client plus its major version
(``chrome/124``, ``python-sdk/1``, ``curl/8``).  Full UA strings are too
specific (patch versions, OS builds) to link accounts robustly and too easy to
randomise; the family is what a scripted farm keeps constant.
"""

from __future__ import annotations

import pandas as pd

from linkage.identifiers._codes import as_string_series

__all__ = ["UA_OTHER", "normalize_fingerprint", "user_agent_family"]

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


def normalize_fingerprint(fingerprints: pd.Series) -> pd.Series:
    """Stripped, lower-cased fingerprints (string dtype); blank → ``<NA>``."""
    s = as_string_series(fingerprints)
    out = s.str.strip().str.lower()
    return out.mask(out == "")


def _families(ua: pd.Series) -> pd.Series:
    """Family of each (unique, non-NA) lower-cased UA."""
    result = pd.Series(pd.NA, index=ua.index, dtype="string")
    for pattern, family in _RULES:
        todo = result.isna()
        if not todo.any():
            break
        sub = ua[todo]
        m = sub.str.extract(pattern, expand=True)
        if family is None:
            found = m[0].notna() & m[1].notna()
            text = m[0] + "/" + m[1]
        else:
            found = m[0].notna()
            text = family + "/" + m[0]
        hit = found[found].index
        result.loc[hit] = text.loc[hit]
    return result.fillna(UA_OTHER)


def user_agent_family(user_agents: pd.Series) -> pd.Series:
    """Browser/SDK/client family plus major version of each UA (``other`` if unrecognised).

    Unknown or blank user agents stay ``<NA>``.  Vectorised over unique values.
    """
    s = as_string_series(user_agents)
    codes, uniques = pd.factorize(s.str.strip().str.lower(), use_na_sentinel=True)
    u = pd.Series(uniques, dtype="string")
    u = u.mask(u == "")
    fam = _families(u[u.notna()].reset_index(drop=True)) if u.notna().any() else None
    values = pd.Series(pd.NA, index=u.index, dtype="string")
    if fam is not None:
        values[u.notna().to_numpy()] = fam.to_numpy()
    out = values.array.take(codes, allow_fill=True)
    return pd.Series(out, index=s.index, name=s.name)
