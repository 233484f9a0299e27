"""In-memory dataset: the validated tables plus the ingest report."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from linkage.errors import Problem


@dataclass
class TableReport:
    table: str
    file: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    fields_nulled: int = 0  # cells set to unknown because unparseable (warnings)


@dataclass
class IngestReport:
    tables: dict[str, TableReport] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # capped sample, see counts
    problem_counts: dict[str, int] = field(default_factory=dict)  # "table/column/message" -> n
    problem_first: dict[str, int] = field(default_factory=dict)  # same key -> first line/row
    quarantine_files: dict[str, str] = field(default_factory=dict)  # table -> path
    #: what a user must be told on screen even with -q: rows set aside, a file cut
    #: short, values kept with bad bytes escaped, fields set unknown (one line each)
    notices: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "tables": {k: vars(v) for k, v in self.tables.items()},
            "problem_counts": dict(self.problem_counts),
            "problem_first": dict(self.problem_first),
            "problems": [p.to_dict() for p in self.problems],
            "quarantine_files": dict(self.quarantine_files),
            "notices": list(self.notices),
        }


@dataclass
class Dataset:
    """Validated tables.

    Conventions (guaranteed by ingest, relied on by every later stage):
    - string columns: pandas string dtype, empty/blank cells are ``<NA>``;
    - timestamp columns: ``datetime64[ns, UTC]`` (``NaT`` = unknown);
    - ``response_tokens``: nullable ``Int64``; ``is_farm``: ``int8``;
    - every table has ``_row`` (int64): the 0-based data row in its source file;
    - ``requests.account_id`` values all exist in ``accounts`` (others quarantined);
    - ``accounts.account_id`` is unique (duplicates after the first quarantined);
    - optional tables absent from the directory are ``None``; an identifiers table is
      ``None`` or has columns ``account_id, kind, value, ts, _row``.
    """

    accounts: pd.DataFrame
    requests: pd.DataFrame
    identifiers: pd.DataFrame | None = None
    signups: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    report: IngestReport = field(default_factory=IngestReport)
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)  # table -> path read
