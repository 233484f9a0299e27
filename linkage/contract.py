"""The data contract (docs/DATA_CONTRACT.md) as data.

``TABLES`` lists every table the engine reads, its columns, their logical type,
and whether the column must be present in the file header (``required``) and
whether a cell may be empty (``nullable``).  Ingest validates against this and
the fixture generator writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColType = Literal["string", "timestamp", "int", "flag"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColType
    required: bool = True  # must be in the header
    nullable: bool = True  # a cell may be empty ("unknown")


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    required: bool  # the table must exist in the dataset
    key: str | None = None  # unique key column

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_ACCOUNT_COLUMNS = (
    Column("account_id", "string", nullable=False),
    Column("created_at", "timestamp"),
    Column("email", "string"),
    Column("signup_ip", "string"),
    Column("device_fingerprint", "string", required=False),
    Column("payment_fingerprint", "string", required=False),
    Column("user_agent", "string", required=False),
)

TABLES: dict[str, Table] = {
    "accounts": Table("accounts", _ACCOUNT_COLUMNS, required=True, key="account_id"),
    "requests": Table(
        "requests",
        (
            Column("account_id", "string", nullable=False),
            Column("ts", "timestamp", nullable=False),
            Column("ip", "string"),
            Column("device_fingerprint", "string", required=False),
            Column("prompt", "string"),
            Column("response_tokens", "int"),
            Column("model", "string"),
        ),
        required=True,
    ),
    "identifiers": Table(
        "identifiers",
        (
            Column("account_id", "string", nullable=False),
            Column("kind", "string", nullable=False),
            Column("value", "string", nullable=False),
            Column("ts", "timestamp", required=False),
        ),
        required=False,
    ),
    "labels": Table(
        "labels",
        (
            Column("account_id", "string", nullable=False),
            Column("is_farm", "flag", nullable=False),
            Column("group", "string", required=False),
            Column("population", "string", required=False),
        ),
        required=False,
        key="account_id",
    ),
    "signups": Table("signups", _ACCOUNT_COLUMNS, required=False, key="account_id"),
}

FILE_SUFFIXES: tuple[str, ...] = (".csv.gz", ".csv", ".parquet", ".jsonl.gz", ".jsonl")

# Row-provenance column added by ingest to every table: 0-based data row in its file.
ROW_COLUMN = "_row"

# The identifier kinds derived from these columns are declared in
# linkage.identifiers.kinds (the optional identifiers table adds the provider's own).
