"""E-mail identities.

``normalize_emails`` maps every raw sign-up address to the *mailbox* that
actually receives the mail, because farms register many accounts on one
mailbox through provider aliasing:

- everything is lower-cased and stripped (mailbox local parts are case-insensitive
  at every provider that matters);
- Gmail ignores dots and ``+tag`` in the local part, and ``googlemail.com`` is
  the same mailbox as ``gmail.com``;
- Outlook/Hotmail/Live/MSN, iCloud/me/mac, Fastmail and Proton ignore ``+tag``;
- Yahoo's disposable addresses use ``-keyword`` (``base-keyword@yahoo.com``).

Other domains are left as typed (their aliasing rules are unknown).
``alias`` is true for a tagged address (``+tag``, Yahoo's ``-keyword``) at a provider
that delivers it to the base mailbox; case and Gmail's dots alone are not an alias (an
ordinary ``first.last@gmail.com``), though dot-variants still share one canonical mailbox.  ``disposable`` uses the
community-maintained ``disposable_email_domains`` blocklist (a subdomain of a
listed domain counts too); ``freemail`` uses :data:`FREEMAIL_DOMAINS`.

An invalid address gets canonical ``<NA>`` but keeps its domain when one is
recognisable (``"bad address@example.com"`` → domain ``example.com``).  All
flags are nullable booleans, ``<NA>`` when the address is unknown.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from disposable_email_domains import blocklist as _DISPOSABLE

from linkage.identifiers._codes import as_string_series

__all__ = ["FREEMAIL_DOMAINS", "email_one", "normalize_emails"]

_GMAIL = frozenset({"gmail.com", "googlemail.com"})
_PLUS_IGNORED = frozenset(
    {
        # Microsoft consumer mail
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "outlook.fr",
        "live.co.uk",
        # Apple
        "icloud.com",
        "me.com",
        "mac.com",
        # Fastmail
        "fastmail.com",
        "fastmail.fm",
        # Proton
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
    }
)
_YAHOO = frozenset(
    {"yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.fr", "yahoo.co.jp"}
)

#: Big free mailbox providers.  A shared freemail *domain* says nothing about who
#: runs an account (millions of strangers use gmail.com), so these domains never
#: become ``email_domain`` edges; the flag is still a per-account feature.
FREEMAIL_DOMAINS: frozenset[str] = frozenset(
    _GMAIL
    | _PLUS_IGNORED
    | _YAHOO
    | {
        "aol.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "naver.com",
        "hanmail.net",
        "tutanota.com",
        "tuta.io",
    }
)

# RFC 1035-ish hostname with at least one dot; Unicode letters allowed (IDN as typed).
_DOMAIN_RE = re.compile(r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$")
_LOCAL_RE = re.compile(r"^[^\s@\"(),:;<>\[\\\]]{1,64}$")


def _is_disposable(domain: str) -> bool:
    parts = domain.split(".")
    return any(".".join(parts[i:]) in _DISPOSABLE for i in range(len(parts) - 1))


def _normalize_one(raw: str) -> tuple[str | None, str | None, bool | None]:
    """(canonical, domain, alias) of one raw address."""
    s = raw.strip().lower()
    local, at, domain = s.rpartition("@")
    if not at:
        return None, None, None
    domain = domain.rstrip(".")
    if not _DOMAIN_RE.match(domain):
        return None, None, None
    if domain == "googlemail.com":
        domain = "gmail.com"
    if not _LOCAL_RE.match(local) or local.startswith(".") or local.endswith("."):
        return None, domain, None
    tagged = False
    if domain == "gmail.com":
        tagged = "+" in local
        local = local.split("+", 1)[0].replace(".", "")
    elif domain in _PLUS_IGNORED:
        tagged = "+" in local
        local = local.split("+", 1)[0]
    elif domain in _YAHOO:
        tagged = "-" in local
        local = local.split("-", 1)[0]
    if not local:  # "+tag@gmail.com", ".@gmail.com": no mailbox left
        return None, domain, None
    canonical = f"{local}@{domain}"
    # an alias is a tagged address (+tag, Yahoo -keyword): dots in a Gmail address are how
    # people write their names (first.last@gmail.com), not an alias; dot-variants of one
    # mailbox still meet through the canonical mailbox they share
    return canonical, domain, tagged


def email_one(raw: str) -> tuple[str | None, str | None, bool | None, bool | None]:
    """``(canonical, domain, alias, disposable)`` of one address: :func:`normalize_emails`
    for one value (None = unknown)."""
    canonical, domain, alias = _normalize_one(raw)
    return canonical, domain, alias, None if domain is None else _is_disposable(domain)


def normalize_emails(emails: pd.Series) -> pd.DataFrame:
    """Canonical mailbox, domain and flags of each address, aligned to ``emails.index``.

    Columns: ``canonical`` and ``domain`` (string, ``<NA>`` unknown/invalid),
    ``disposable``, ``alias``, ``freemail`` (nullable boolean).  Runs once per
    unique address; never raises on arbitrary text.
    """
    s = as_string_series(emails)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    rows = [_normalize_one(v) for v in uniques]
    canonical = np.array([r[0] for r in rows], dtype=object)
    domain = np.array([r[1] for r in rows], dtype=object)
    alias = np.array([r[2] for r in rows], dtype=object)
    disposable = np.array([None if d is None else _is_disposable(d) for d in domain], dtype=object)
    freemail = np.array(
        [None if d is None else d in FREEMAIL_DOMAINS for d in domain], dtype=object
    )

    def back(values: np.ndarray, dtype: str) -> pd.Series:
        arr = pd.array(values, dtype=dtype) if len(values) else pd.array([], dtype=dtype)
        return pd.Series(arr.take(codes, allow_fill=True), index=s.index)

    return pd.DataFrame(
        {
            "canonical": back(canonical, "string"),
            "domain": back(domain, "string"),
            "disposable": back(disposable, "boolean"),
            "alias": back(alias, "boolean"),
            "freemail": back(freemail, "boolean"),
        },
        index=s.index,
    )
