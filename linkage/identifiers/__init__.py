"""Identifiers stage: normalise identifiers, build account–identifier edges and features.

``extract(dataset, *, settings, seed) -> Identifiers`` is the stage: one SQL
aggregation (:mod:`linkage.identifiers.sql`) generated from the kind declarations
(:mod:`linkage.identifiers.kinds`), which signup scoring iterates too, so a new
account's attributes are normalised exactly the way the history was.
"""

from linkage.identifiers.device import normalize_fingerprint, user_agent_family
from linkage.identifiers.emails import FREEMAIL_DOMAINS, normalize_emails
from linkage.identifiers.extract import Identifiers, extract
from linkage.identifiers.features import FEATURE_COLUMNS
from linkage.identifiers.network import ip_subnet, normalize_ip
from linkage.identifiers.timing import account_timing

__all__ = [
    "FEATURE_COLUMNS",
    "FREEMAIL_DOMAINS",
    "Identifiers",
    "account_timing",
    "extract",
    "ip_subnet",
    "normalize_emails",
    "normalize_fingerprint",
    "normalize_ip",
    "user_agent_family",
]
