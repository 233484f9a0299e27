"""Sharing farm indicators with other providers, without sharing customers.

* :mod:`~linkage.share.hashing` — the partnership key and keyed hashes (HMAC-SHA-256);
* :mod:`~linkage.share.export` — a run's confirmed / blocked clusters as a STIX 2.1 bundle;
* :mod:`~linkage.share.bundle_store` — validating and importing a partner's bundle;
* :mod:`~linkage.share.match` — partners' indicators as evidence on sign-ups and accounts;
* :mod:`~linkage.share.hook` — the signup scorer's hook.

What leaks and what does not: docs/SHARING.md.
"""

from linkage.share.bundle_store import IndicatorStore, read_bundle
from linkage.share.export import export_bundle, write_bundle
from linkage.share.hashing import PartnershipKey, ShareError, write_key
from linkage.share.match import PartnerMatcher
from linkage.share.settings import ShareSettings

__all__ = [
    "IndicatorStore",
    "PartnerMatcher",
    "PartnershipKey",
    "ShareError",
    "ShareSettings",
    "export_bundle",
    "read_bundle",
    "write_bundle",
    "write_key",
]
