"""Ingest: read a dataset directory, validate it against the contract, quarantine.

Public API::

    load_dataset(path, *, settings=None, quarantine_dir=None, progress=None) -> Dataset
    validate_signups(frame) -> (kept frame, problems)
    summarize(report) -> str

and the vectorised cell parsers (``parse_timestamps``, ``parse_ips``, ``parse_ints``,
``parse_flags``, ``clean_strings``) that the API and other stages may reuse.
String columns come out as pandas' default ``"str"`` dtype (:data:`STRING_DTYPE`,
Arrow storage, missing = NaN, test with ``.isna()``); timestamps as
``datetime64[ns, UTC]``.
"""

from linkage.ingest.loader import load_dataset
from linkage.ingest.parse import (
    STRING_DTYPE,
    TS_DTYPE,
    clean_strings,
    parse_flags,
    parse_ints,
    parse_ips,
    parse_timestamps,
)
from linkage.ingest.summary import summarize
from linkage.ingest.validate import validate_signups

__all__ = [
    "STRING_DTYPE",
    "TS_DTYPE",
    "clean_strings",
    "load_dataset",
    "parse_flags",
    "parse_ints",
    "parse_ips",
    "parse_timestamps",
    "summarize",
    "validate_signups",
]
