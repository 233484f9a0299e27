"""The FRAUDAR peer's account × identifier incidence, aggregated by DuckDB straight
from the dataset's files (CSV, CSV.gz, Parquet or JSONL; see docs/DATA_CONTRACT.md).

This is how a FRAUDAR user would feed it, and what makes the side-by-side timing
with the engine fair: no ingest, no identifiers stage, one ``GROUP BY`` per
identifier column, out of core.  Identifiers are plain strings, trimmed of spaces
(SQL ``TRIM``) and lower-cased, empty = unknown: the peer does not get the engine's
normalisation (canonical IPs, e-mail aliases, subnets, templates).

Kinds (an identifier is a ``(kind, value)`` pair): the declared kinds marked ``peer``
(:mod:`linkage.identifiers.kinds`), each from its raw columns (today ``ip``:
``requests.ip`` and ``accounts.signup_ip``; ``device``: ``requests.device_fingerprint``
and ``accounts.device_fingerprint``; ``payment``: ``accounts.payment_fingerprint``;
``email``: ``accounts.email``), and ``x:<kind>`` from the optional ``identifiers`` table.

A column the file does not have is skipped (real data is often partial).
Accounts are those of the ``accounts`` table; a row of another table whose
account is not there is ignored.

Numbering follows :func:`linkage.baselines._common.build_incidence`: accounts by
sorted ``account_id`` and identifiers by sorted ``(kind, value)`` (DuckDB compares
strings byte-wise, which for UTF-8 is Python's code-point order), edges sorted by
``(account, identifier)``, so the result does not depend on the order of rows.
Only identifiers seen with two or more accounts are returned (the others link
nothing and FRAUDAR drops them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from linkage.errors import DatasetError, LinkageError
from linkage.identifiers.kinds import EXTRA_PREFIX, peer_columns

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from linkage.ingest.readers import TableFile

# (table, column, kind): the identifier columns the peer reads verbatim (``Kind.peer``)
IDENTIFIER_COLUMNS: tuple[tuple[str, str, str], ...] = peer_columns()


@dataclass(frozen=True)
class FileIncidence:
    """Linking part of the account × identifier incidence read from files.

    ``rows[e]``/``cols[e]``: account position (into ``accounts``) and linking
    identifier position of edge ``e``, each pair once, sorted by ``(row, col)``;
    ``degree[c]`` (≥ 2) is identifier ``c``'s number of distinct accounts.
    """

    accounts: np.ndarray  # sorted account ids (object array of str)
    rows: np.ndarray  # int64
    cols: np.ndarray  # int64
    degree: np.ndarray  # int64, one per linking identifier
    n_requests: int
    n_pairs: int  # distinct (account, identifier) pairs, non-linking ones included

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source(table: str, files: Mapping[str, TableFile]) -> str | None:
    """DuckDB table function reading ``table``'s file(s), or None if absent."""
    tf = files.get(table)
    if tf is None:
        return None
    parts = ", ".join(_quote(str(p)) for p in tf.parts)
    fmt = tf.fmt
    if fmt == "parquet":
        return f"read_parquet([{parts}])"
    if fmt == "csv":
        return f"read_csv([{parts}], header = true, all_varchar = true)"
    return f"read_json([{parts}], format = 'newline_delimited')"


def incidence_from_files(dataset: str | Path, *, threads: int | None = None) -> FileIncidence:
    """Aggregate the linking account × identifier pairs of ``dataset`` with DuckDB.

    ``threads`` caps DuckDB's worker threads (default: DuckDB's own, one per core).
    Raises :class:`linkage.errors.DatasetError` if the directory has no accounts
    table, a table lacks ``account_id`` or a file cannot be read (the peer has no
    quarantine: a malformed CSV line stops it, where ingest would set it aside).
    """
    try:
        import duckdb
    except ImportError:  # an optional dependency (extras "duckdb" and "dev")
        raise LinkageError(
            "the stand-alone FRAUDAR peer reads the files with DuckDB: "
            "pip install 'linkage[duckdb]'"
        ) from None

    from linkage.ingest.readers import discover

    files = discover(Path(dataset))
    if "accounts" not in files:
        raise DatasetError(
            f"{dataset}: no accounts table (expected accounts.csv/.csv.gz/.parquet/.jsonl)"
        )
    con = duckdb.connect(config={} if threads is None else {"threads": int(threads)})
    try:
        con.execute("SET enable_progress_bar = false")
        sources, columns = _table_sources(con, files)
        _aggregate(con, sources, _union(sources, columns))
        return _fetch(con, sources)
    except duckdb.Error as exc:  # a file DuckDB cannot read: say which dataset, keep its reason
        raise DatasetError(f"{dataset}: DuckDB could not read the tables: {exc}") from None
    finally:
        con.close()


def _table_sources(
    con: DuckDBPyConnection, files: Mapping[str, TableFile]
) -> tuple[dict[str, str], dict[str, set[str]]]:
    """(table function, column names) of each table present; every one must have
    ``account_id``."""
    sources: dict[str, str] = {}
    columns: dict[str, set[str]] = {}
    for table in ("accounts", "requests", "identifiers"):
        src = _source(table, files)
        if src is None:
            continue
        cols = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        if "account_id" not in cols:
            raise DatasetError(f"{files[table].path}: no account_id column")
        sources[table], columns[table] = src, cols
    return sources, columns


def _union(sources: Mapping[str, str], columns: Mapping[str, set[str]]) -> str:
    """One ``SELECT account_id, kind, value`` over every identifier column present (the
    peer columns, then the ``identifiers`` table's ``x:<kind>`` rows), or an empty one."""
    parts = []
    for table, column, kind in IDENTIFIER_COLUMNS:
        if column in columns.get(table, ()):
            parts.append(
                f"""SELECT CAST(account_id AS VARCHAR) AS account_id, {_quote(kind)} AS kind,
                    nullif(lower(trim(CAST("{column}" AS VARCHAR))), '') AS value
                    FROM (SELECT account_id, "{column}" FROM {sources[table]}
                          GROUP BY account_id, "{column}")"""
            )
    if {"kind", "value"} <= columns.get("identifiers", set()):
        parts.append(
            f"""SELECT CAST(account_id AS VARCHAR) AS account_id,
                {_quote(EXTRA_PREFIX)} || lower(trim(CAST(kind AS VARCHAR))) AS kind,
                nullif(lower(trim(CAST(value AS VARCHAR))), '') AS value
                FROM (SELECT account_id, kind, value FROM {sources["identifiers"]}
                      GROUP BY account_id, kind, value)
                WHERE nullif(trim(CAST(kind AS VARCHAR)), '') IS NOT NULL"""
        )
    return (
        " UNION ALL ".join(parts)
        if parts
        else "SELECT NULL::VARCHAR AS account_id, NULL::VARCHAR AS kind, NULL::VARCHAR AS value"
    )


def _aggregate(con: DuckDBPyConnection, sources: Mapping[str, str], union: str) -> None:
    """Temp tables ``acc`` (account -> row ``r``), ``pairs`` (distinct account row, kind,
    value) and ``ids`` (linking identifiers: kind, value, degree ``d``, column ``c``)."""
    con.execute(
        f"""
        CREATE TEMP TABLE acc AS
        SELECT account_id, (row_number() OVER (ORDER BY account_id) - 1)::BIGINT AS r
        FROM (SELECT DISTINCT CAST(account_id AS VARCHAR) AS account_id
              FROM {sources["accounts"]})
        WHERE account_id IS NOT NULL AND account_id <> ''
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE pairs AS
        SELECT DISTINCT a.r, p.kind, p.value
        FROM ({union}) p JOIN acc a USING (account_id)
        WHERE p.value IS NOT NULL
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE ids AS
        SELECT kind, value, d, (row_number() OVER (ORDER BY kind, value) - 1)::BIGINT AS c
        FROM (SELECT kind, value, count(*) AS d FROM pairs GROUP BY kind, value)
        WHERE d >= 2
        """
    )


def _fetch(con: DuckDBPyConnection, sources: Mapping[str, str]) -> FileIncidence:
    """The incidence out of :func:`_aggregate`'s tables, and the request count."""
    edges = con.sql(
        "SELECT p.r, i.c FROM pairs p JOIN ids i USING (kind, value) ORDER BY p.r, i.c"
    ).fetchnumpy()
    degree = con.sql("SELECT d FROM ids ORDER BY c").fetchnumpy()["d"]
    accounts = con.sql("SELECT account_id FROM acc ORDER BY r").fetchnumpy()["account_id"]
    n_pairs = con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]
    n_requests = (
        con.execute(f"SELECT count(*) FROM {sources['requests']}").fetchall()[0][0]
        if "requests" in sources
        else 0
    )
    return FileIncidence(
        accounts=np.asarray(accounts, dtype=object),
        rows=np.asarray(edges["r"], dtype=np.int64),
        cols=np.asarray(edges["c"], dtype=np.int64),
        degree=np.asarray(degree, dtype=np.int64),
        n_requests=int(n_requests),
        n_pairs=int(n_pairs),
    )
