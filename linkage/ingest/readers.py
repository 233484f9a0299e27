"""Find the table files of a dataset directory and read them into Arrow tables.

CSV files are read with every column typed as (large) string, so that nothing is
mis-typed and every bad cell can be reported by the validators.  Parquet and
JSON-lines keep their native types; the validators accept those too.  A CSV or
JSON-lines file the fast Arrow reader refuses is read again by the tolerant
reader (:mod:`linkage.ingest.tolerant`), which returns the records it cannot read
with their line number instead of failing the file.  A file that cannot be read
at all (not gzip, not Parquet) becomes a :class:`SchemaError` naming the file -
never a raw traceback.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from linkage.contract import FILE_SUFFIXES, TABLES
from linkage.errors import DatasetError, Problem, SchemaError
from linkage.ingest.tolerant import (
    BadLine,
    Escapes,
    read_csv_tolerant,
    read_jsonl_tolerant,
)

log = logging.getLogger(__name__)

_CSV_BLOCK = 1 << 24  # 16 MiB blocks: fewer chunks, still bounded memory per block
_ROW_RE = re.compile(r"\b(?:row|line)\s*#?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TableFile:
    """One table file of the dataset."""

    table: str
    path: Path  # the file, or a directory of Parquet parts (``requests/part-*.parquet``)
    fmt: str  # "csv" | "parquet" | "jsonl"

    @property
    def name(self) -> str:
        return self.path.name + ("/" if self.path.is_dir() else "")

    @property
    def parts(self) -> list[Path]:
        """The files to read: the file itself, or a directory's ``*.parquet`` in name order."""
        return sorted(self.path.glob("*.parquet")) if self.path.is_dir() else [self.path]


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
        if p.is_dir() and p.name in TABLES and any(p.glob("*.parquet")):
            # a directory of Parquet parts (e.g. a sharded world): one table, read in name order
            found.setdefault(p.name, []).append(TableFile(p.name, p, "parquet"))
            continue
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


@dataclass
class ReadResult:
    """A table file as read: the rows that parsed, where each starts in the file,
    and the records that could not be read (quarantined by the loader)."""

    table: pa.Table
    lines: np.ndarray  # int64: 1-based line (CSV/JSONL, header = line 1) or row (Parquet)
    bad: list[BadLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # file-level remarks
    tolerant: bool = False  # True when the slow tolerant reader had to be used
    escaped: Escapes = field(default_factory=Escapes)  # values kept, bad bytes escaped


def _header_bytes(tf: TableFile) -> bytes:
    opener = gzip.open if tf.path.name.endswith(".gz") else open
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
    return data


def csv_header(tf: TableFile) -> list[str]:
    """Column names of a CSV file as written (BOM removed, not stripped)."""
    try:
        text = _header_bytes(tf).decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text, newline="")), None)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    if not header:
        raise SchemaError(
            f"{tf.path} is empty (no header line)",
            [Problem(tf.table, tf.name, None, None, "empty file: no header line")],
        )
    return header


def header_of(tf: TableFile) -> tuple[list[str], ReadResult | None]:
    """Column names of a file, and the full table if getting them required reading it."""
    if tf.fmt == "csv":
        return csv_header(tf), None
    if tf.fmt == "parquet":
        try:
            return list(pq.read_schema(tf.parts[0]).names), None
        except _READ_ERRORS as exc:
            raise _malformed(tf, exc) from None
    res = read_jsonl(tf)
    return list(res.table.column_names), res


def _string_columns(table: pa.Table) -> list[pa.ChunkedArray]:
    return [
        col
        for col in table.columns
        if pa.types.is_large_string(col.type) or pa.types.is_string(col.type)
    ]


def _rows_with_byte(col: pa.ChunkedArray, byte: int) -> np.ndarray:
    """Row index of every occurrence of ``byte`` in a string column (one per
    occurrence), found by one vectorised pass over the Arrow data buffers."""
    found: list[np.ndarray] = []
    base = 0
    for chunk in col.chunks:
        n = len(chunk)
        _validity, off_buf, data_buf = chunk.buffers()
        if n and off_buf is not None and data_buf is not None:
            odt = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            offsets = np.frombuffer(off_buf, dtype=odt)[chunk.offset : chunk.offset + n + 1]
            lo, hi = int(offsets[0]), int(offsets[-1])
            data = np.frombuffer(data_buf, dtype=np.uint8)[lo:hi]
            pos = np.flatnonzero(data == byte)
            if len(pos):
                found.append(base + np.searchsorted(offsets, pos + lo, side="right") - 1)
        base += n
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def record_lines(table: pa.Table, header_lines: int) -> np.ndarray:
    """The 1-based line on which each CSV record starts: the header's lines, then
    one line per record plus the line breaks inside its quoted values."""
    n = table.num_rows
    inner = np.zeros(n, dtype=np.int64)
    for col in _string_columns(table):
        rows = _rows_with_byte(col, 0x0A)
        if len(rows):
            inner += np.bincount(rows, minlength=n)
    before = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(inner[:-1], out=before[1:])
    return header_lines + 1 + np.arange(n, dtype=np.int64) + before


def nul_rows(table: pa.Table) -> np.ndarray:
    """Rows with a NUL byte in any text value (corruption, never real data)."""
    mask = np.zeros(table.num_rows, dtype=bool)
    for col in _string_columns(table):
        mask[_rows_with_byte(col, 0x00)] = True
    return mask


def read_csv(tf: TableFile, header: list[str]) -> ReadResult:
    """Read a CSV (optionally gzipped) with every column as a large string.

    The fast multi-threaded Arrow reader is tried first; only if it refuses the
    file (a ragged line, a byte that is not UTF-8, a gzip stream cut short, …) is
    the file read again by the tolerant reader, which quarantines the records it
    cannot read with their line number and keeps the rest.
    """
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise SchemaError(
            f"{tf.path}: duplicate column names {dupes}",
            [Problem(tf.table, tf.name, None, c, "duplicate column name") for c in dupes],
        )
    try:
        table = pacsv.read_csv(
            tf.path,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.large_string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except _READ_ERRORS as exc:
        log.debug("%s: fast reader refused the file (%s); reading it line by line", tf.name, exc)
    else:
        head = _header_bytes(tf)
        header_lines = max(1, head.count(b"\n") + (0 if head.endswith(b"\n") else 1))
        return ReadResult(table, record_lines(table, header_lines))
    try:
        res = read_csv_tolerant(tf.path, header)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    return ReadResult(res.table, res.lines, res.bad, res.notes, tolerant=True, escaped=res.escaped)


def read_parquet(tf: TableFile) -> ReadResult:
    """Read a parquet file, or a directory's parts concatenated in name order, with
    their native types (``lines`` = 1-based row numbers over all parts)."""
    try:
        table = pa.concat_tables([pq.read_table(p) for p in tf.parts])
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    return ReadResult(table, np.arange(1, table.num_rows + 1, dtype=np.int64))


def read_jsonl(tf: TableFile) -> ReadResult:
    """Read JSON lines (optionally gzipped).

    The fast Arrow reader is tried first.  It refuses a file with one bad line,
    and a column that mixes types (a number in one line, a string in another);
    then the tolerant reader goes line by line: bad lines are quarantined with
    their line number, mixed columns are kept as strings.
    """
    try:
        table = pajson.read_json(tf.path, read_options=pajson.ReadOptions(block_size=_CSV_BLOCK))
    except _READ_ERRORS as exc:
        log.debug("%s: fast reader refused the file (%s); reading it line by line", tf.name, exc)
    else:
        return ReadResult(table, np.arange(1, table.num_rows + 1, dtype=np.int64))
    try:
        res = read_jsonl_tolerant(tf.path)
    except _READ_ERRORS as exc:
        raise _malformed(tf, exc) from None
    return ReadResult(res.table, res.lines, res.bad, res.notes, tolerant=True, escaped=res.escaped)
