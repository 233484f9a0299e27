"""Find the table files of a dataset directory and read them into Arrow tables.

CSV files are read with every column typed as (large) string, so that nothing is
mis-typed and every bad cell can be reported by the validators.  Parquet and
JSON-lines keep their native types; the validators accept those too.  Any
library failure on a malformed file becomes a :class:`SchemaError` naming the
file (and the row, when the library reports it) - never a raw traceback.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from linkage.contract import FILE_SUFFIXES, TABLES
from linkage.errors import DatasetError, Problem, SchemaError

log = logging.getLogger(__name__)

_CSV_BLOCK = 1 << 24  # 16 MiB blocks: fewer chunks, still bounded memory per block
_ROW_RE = re.compile(r"\b(?:row|line)\s*#?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TableFile:
    """One table file of the dataset."""

    table: str
    path: Path
    fmt: str  # "csv" | "parquet" | "jsonl"

    @property
    def name(self) -> str:
        return self.path.name


def _split_name(name: str) -> tuple[str, str] | None:
    for suffix in FILE_SUFFIXES:  # longest first: ".csv.gz" before ".csv"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def _fmt(suffix: str) -> str:
    if suffix.startswith(".csv"):
        return "csv"
    if suffix.startswith(".jsonl"):
        return "jsonl"
    return "parquet"


def discover(directory: Path) -> dict[str, TableFile]:
    """Map table name → file for ``directory``; unknown files are logged and ignored.

    Raises :class:`DatasetError` if the directory is missing or if one table has
    several files (all such clashes are listed at once).
    """
    if not directory.exists():
        raise DatasetError(f"dataset directory not found: {directory}")
    if not directory.is_dir():
        raise DatasetError(f"dataset path is not a directory: {directory}")
    found: dict[str, list[TableFile]] = {}
    for p in sorted(directory.iterdir()):
        split = _split_name(p.name) if p.is_file() else None
        if split is None or split[0] not in TABLES:
            log.info("ignoring %s: not a table file of the contract", p.name)
            continue
        stem, suffix = split
        found.setdefault(stem, []).append(TableFile(stem, p, _fmt(suffix)))
    clashes = {t: fs for t, fs in found.items() if len(fs) > 1}
    if clashes:
        lines = [
            f"  - table {t!r} has {len(fs)} files: " + ", ".join(f.name for f in fs)
            for t, fs in sorted(clashes.items())
        ]
        raise DatasetError(
            f"{directory}: more than one file for the same table (keep one):\n" + "\n".join(lines)
        )
    return {t: fs[0] for t, fs in found.items()}


def _row_of(message: str) -> int | None:
    m = _ROW_RE.search(message)
    return int(m.group(1)) if m else None


def _malformed(tf: TableFile, exc: BaseException) -> SchemaError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(msg) > 300:
        msg = msg[:300] + "…"
    problem = Problem(tf.table, tf.name, _row_of(msg), None, f"malformed {tf.fmt} file: {msg}")
    return SchemaError(f"cannot read {tf.path}: {msg}", [problem])


_READ_ERRORS = (pa.ArrowException, OSError, EOFError, UnicodeDecodeError, ValueError, csv.Error)


def csv_header(tf: TableFile) -> list[str]:
    """Column names of a CSV file as written (BOM removed, not stripped)."""
    opener = gzip.open if tf.path.name.endswith(".gz") else open
    try:
        with opener(tf.path, "rb") as raw:
            data = raw.readline()
            # a quoted header name may contain a newline: read on until quotes balance
            for _ in range(100):
                if data.count(b'"') % 2 == 0:
                    break
                more = raw.readline()
                if not more:
                    break
                data += more
        text = data.decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text, newline="")), None)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    if not header:
        raise SchemaError(
            f"{tf.path} is empty (no header line)",
            [Problem(tf.table, tf.name, None, None, "empty file: no header line")],
        )
    return header


def header_of(tf: TableFile) -> tuple[list[str], pa.Table | None]:
    """Column names of a file, and the full table if getting them required reading it."""
    if tf.fmt == "csv":
        return csv_header(tf), None
    if tf.fmt == "parquet":
        try:
            return list(pq.read_schema(tf.path).names), None
        except _READ_ERRORS as exc:
            raise _malformed(tf, exc) from None
    table = read_jsonl(tf)
    return list(table.column_names), table


def read_csv(tf: TableFile, header: list[str]) -> pa.Table:
    """Read a CSV (optionally gzipped) with every column as a large string."""
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise SchemaError(
            f"{tf.path}: duplicate column names {dupes}",
            [Problem(tf.table, tf.name, None, c, "duplicate column name") for c in dupes],
        )
    try:
        return pacsv.read_csv(
            tf.path,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.large_string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None


def read_parquet(tf: TableFile) -> pa.Table:
    """Read a parquet file with its native types."""
    try:
        return pq.read_table(tf.path)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None


def read_jsonl(tf: TableFile) -> pa.Table:
    """Read JSON lines (optionally gzipped).

    pyarrow infers one type per column; when a column mixes types (a number in
    one line, a string in another) it refuses, and we fall back to pandas, which
    keeps such columns as objects (validators turn them into strings).
    """
    try:
        return pajson.read_json(tf.path, read_options=pajson.ReadOptions(block_size=_CSV_BLOCK))
    except pa.ArrowInvalid as exc:
        if "changed from" not in str(exc):
            raise _malformed(tf, exc) from None
        log.info("%s: mixed JSON types (%s); reading with pandas", tf.name, exc)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    try:
        frame = pd.read_json(tf.path, lines=True, dtype=False, convert_dates=False)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    cols = {}
    for c in frame.columns:
        col = frame[c]
        if col.dtype == object:
            col = col.astype("str")
        cols[str(c)] = pa.array(col, from_pandas=True)
    return pa.table(cols)
