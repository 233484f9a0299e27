"""The slow, tolerant readers: used only where the fast (Arrow) reader fails.

Real exports have ragged lines, a stray byte that is not UTF-8, an unbalanced
quote, NUL bytes, a last line cut short or a gzip stream that ends early.  The
Arrow readers refuse the whole file for one such line.  These readers go through
the file record by record (in Python), keep every record that parses, and return
the others as :class:`BadLine` s with the **1-based line number an editor shows**
(the header is line 1) and the reason, so the rest of the file is still used.

A byte that is not UTF-8 (a latin-1 ``é`` in an e-mail) does not cost the record:
the value is kept with each such byte written as the escape ``\\xNN`` (the same
bytes always give the same text, so an account id still matches across files) and
reported as an :class:`EscapedValue` with its line and column.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

#: A quoted value may span at most this many lines before the opening quote is
#: taken for a stray one (keeps one stray quote from swallowing the file).
MAX_RECORD_LINES = 10_000
_RAW_CHARS = 2_000  # raw text kept per bad line in the quarantine file
_CHUNK_ROWS = 500_000  # Python lists are turned into Arrow every this many rows
_UNBALANCED = 'unbalanced quote: a `"` opens a value that never closes'


@dataclass(frozen=True, slots=True)
class BadLine:
    """One input record that could not be read: where, why, and its raw text."""

    line: int  # 1-based line number of the record's first line (header = line 1)
    reason: str  # "kind (detail)": the part before " (" is what problems are counted by
    raw: str

    @property
    def kind(self) -> str:
        return self.reason.split(" (", 1)[0]


@dataclass(frozen=True, slots=True)
class EscapedValue:
    """A value kept although its bytes were not UTF-8: each bad byte is ``\\xNN``."""

    line: int  # 1-based line of the record (header = line 1)
    column: str
    value: str  # the kept value, bad bytes escaped
    byte: int  # the first bad byte
    position: int  # 1-based character of the first bad byte in the value

    @property
    def detail(self) -> str:
        return f"byte 0x{self.byte:02x} at character {self.position}"


#: Problem message of an :class:`EscapedValue` (a warning: the row is kept).
ESCAPED_MESSAGE = "not valid UTF-8: value kept with the bad bytes escaped as \\xNN"


#: Escaped values kept in detail per file (all are counted: :class:`Escapes`).
MAX_ESCAPED_LISTED = 1_000


@dataclass
class Escapes:
    """Values kept with bad bytes escaped: the first ones in detail, all counted."""

    listed: list[EscapedValue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # column -> values
    first: dict[str, int] = field(default_factory=dict)  # column -> first line

    def add(self, value: EscapedValue) -> None:
        col = value.column
        self.counts[col] = self.counts.get(col, 0) + 1
        self.first.setdefault(col, value.line)
        if len(self.listed) < MAX_ESCAPED_LISTED:
            self.listed.append(value)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class TolerantRead:
    table: pa.Table
    lines: np.ndarray  # int64, the 1-based first line of every row of ``table``
    bad: list[BadLine]
    notes: list[str]  # file-level remarks (e.g. gzip stream cut short)
    header_lines: int = 1
    escaped: Escapes = field(default_factory=Escapes)


def _raw_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return text if len(text) <= _RAW_CHARS else text[:_RAW_CHARS] + "…"


def _physical_lines(path: Path, notes: list[str]) -> Iterator[bytes]:
    """The file's lines as bytes (line ends kept); a gzip stream that ends early
    yields what could be decompressed and adds a note."""
    gz = path.name.endswith(".gz")
    opener = gzip.open if gz else open
    with opener(path, "rb") as fh:
        try:
            yield from fh
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            if not gz:
                raise
            notes.append(
                f"gzip stream ends early ({type(exc).__name__}: {exc}): the file was cut short; "
                "every complete line before the cut is used"
            )


_SURROGATE = re.compile("[\udc80-\udcff]")


def _decode(data: bytes) -> tuple[str, bool]:
    """``data`` as text, and whether it held bytes that are not UTF-8 (those come out
    as lone surrogates, ``surrogateescape``; :func:`_escape` turns them into ``\\xNN``)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), True


def _escape(value: str) -> tuple[str, int, int] | None:
    """``(value with every bad byte as \\xNN, first bad byte, its 1-based character)``
    for a value decoded with ``surrogateescape``; None when it has no bad byte."""
    m = _SURROGATE.search(value)
    if m is None:
        return None
    try:
        data = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte (a JSON "\\ud800")
        data = value.encode("utf-8", errors="backslashreplace")
    fixed = data.decode("utf-8", errors="backslashreplace")
    return fixed, ord(m.group()) - 0xDC00, m.start() + 1


def _records(
    lines: Iterator[bytes], ncols_hint: int | None
) -> Iterator[tuple[int, bytes, list[str] | None, str | None, bool, bool]]:
    """Yield ``(line_no, raw, fields, reason, last, escaped)`` per logical CSV record.

    ``fields`` is None when the record is bad (``reason`` says why).  A quote that
    never closes, or whose multi-line record does not parse into the expected
    number of fields, is taken to be a stray quote: that one line is bad and
    reading resumes on the next line.  ``escaped``: the record held bytes that are
    not UTF-8; they are lone surrogates in ``fields`` (see :func:`_escape`).
    """
    pending: deque[tuple[int, bytes]] = deque()
    it = enumerate(lines, start=1)

    def pull() -> tuple[int, bytes] | None:
        if pending:
            return pending.popleft()
        return next(it, None)

    while True:
        first = pull()
        if first is None:
            return
        lineno, rec = first
        if lineno == 1 and rec.startswith(b"\xef\xbb\xbf"):
            rec = rec[3:]
        if not rec.strip(b"\r\n"):
            continue  # blank line
        parts = [(lineno, rec)]
        quotes = rec.count(b'"')
        while quotes % 2 and len(parts) < MAX_RECORD_LINES:
            nxt = pull()
            if nxt is None:
                break
            parts.append(nxt)
            quotes += nxt[1].count(b'"')
        multi = len(parts) > 1
        data = b"".join(p[1] for p in parts) if multi else rec
        unclosed = quotes % 2 == 1

        def stray(
            reason: str, parts: list[tuple[int, bytes]] = parts
        ) -> tuple[int, bytes, None, str, bool, bool]:
            # give the lines after the first back, mark only the first one bad
            for p in reversed(parts[1:]):
                pending.appendleft(p)
            return (parts[0][0], parts[0][1], None, reason, False, False)

        if unclosed:  # reached the end of the file (or the cap) inside quotes
            yield stray(_UNBALANCED)
            continue
        is_last = not data.endswith(b"\n")
        if b"\x00" in data:
            if multi:
                yield stray("NUL byte in line")
            else:
                yield (lineno, data, None, "NUL byte in line", is_last, False)
            continue
        text, escaped = _decode(data)
        if quotes == 0:  # no quoting: a plain split is the CSV parse
            yield (lineno, data, text.rstrip("\r\n").split(","), None, is_last, escaped)
            continue
        try:
            fields = next(csv.reader(io.StringIO(text, newline=""), strict=True))
        except (csv.Error, StopIteration) as exc:
            if multi:
                yield stray(_UNBALANCED)
            else:
                yield (lineno, data, None, f"malformed quoting ({exc})", is_last, False)
            continue
        if multi and ncols_hint is not None and len(fields) != ncols_hint:
            yield stray(_UNBALANCED)
            continue
        yield (lineno, data, fields, None, is_last, escaped)


def _strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(values, type=pa.large_string())


def read_csv_tolerant(path: Path, header: list[str]) -> TolerantRead:
    """Read a CSV (or CSV.gz) record by record; see the module docstring."""
    ncols = len(header)
    notes: list[str] = []
    records = _records(_physical_lines(path, notes), ncols)
    header_lines = 1
    for lineno, raw, _fields, _reason, _last, _esc in records:  # the header record
        header_lines = lineno + raw.count(b"\n") - (1 if raw.endswith(b"\n") else 0)
        break
    cols: list[list[str]] = [[] for _ in range(ncols)]
    chunks: list[pa.Table] = []
    line_nos: list[int] = []
    bad: list[BadLine] = []
    escaped = Escapes()
    n_in_cols = 0

    def flush() -> None:
        nonlocal cols, n_in_cols
        if n_in_cols:
            chunks.append(pa.table({h: _strings(c) for h, c in zip(header, cols, strict=True)}))
        cols = [[] for _ in range(ncols)]
        n_in_cols = 0

    for lineno, raw, fields, reason, last, esc in records:
        if fields is not None and len(fields) != ncols:
            reason = f"wrong number of fields ({len(fields)}, the header has {ncols})"
            fields = None
        if fields is None:
            if last:
                reason = f"{reason} (last line of the file, without a line end: cut short?)"
            bad.append(BadLine(lineno, str(reason), _raw_text(raw)))
            continue
        if esc:
            for i, v in enumerate(fields):
                hit = _escape(v)
                if hit is not None:
                    fields[i] = hit[0]
                    escaped.add(EscapedValue(lineno, header[i], *hit))
        for c, v in zip(cols, fields, strict=True):
            c.append(v)
        line_nos.append(lineno)
        n_in_cols += 1
        if n_in_cols >= _CHUNK_ROWS:
            flush()
    flush()
    table = pa.concat_tables(chunks) if chunks else pa.table({h: _strings([]) for h in header})
    lines = np.asarray(line_nos, dtype=np.int64)
    return TolerantRead(table, lines, bad, notes, header_lines, escaped)


def read_jsonl_tolerant(path: Path) -> TolerantRead:
    """Read JSON lines one by one: each line must be one JSON object.

    Lines that are not (bad JSON, not an object) are returned as bad lines with
    their line number; columns mixing types (a number in one line, a string in
    another) become strings; bytes that are not UTF-8 are kept escaped (``\\xNN``,
    reported as :class:`EscapedValue`).
    """
    notes: list[str] = []
    rows: list[dict] = []
    line_nos: list[int] = []
    bad: list[BadLine] = []
    escaped = Escapes()
    for lineno, data in enumerate(_physical_lines(path, notes), start=1):
        if lineno == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if not data.strip():
            continue
        last = not data.endswith(b"\n")
        text, esc = _decode(data)
        reason = None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON (at character {exc.colno}: {exc.msg})"
        else:
            if not isinstance(obj, dict):
                reason = f"not a JSON object (a {type(obj).__name__})"
        if reason is not None:
            if last:
                reason += " (last line of the file, without a line end: cut short?)"
            bad.append(BadLine(lineno, reason, _raw_text(data)))
            continue
        if esc:
            obj = _escape_json(lineno, obj, escaped)
        rows.append(obj)
        line_nos.append(lineno)
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    cols: dict[str, pa.Array] = {}
    for c in frame.columns:
        col = frame[c]
        if col.dtype == object:  # mixed or text: strings, missing stays missing
            cols[str(c)] = _strings(
                [None if v is None or (isinstance(v, float) and v != v) else _text(v) for v in col]
            )
        else:
            cols[str(c)] = pa.array(col, from_pandas=True)
    table = pa.table(cols) if cols else pa.table({})
    return TolerantRead(table, np.asarray(line_nos, dtype=np.int64), bad, notes, 0, escaped)


def _escape_json(line: int, obj: dict, found: Escapes) -> dict:
    """A JSON object with bad bytes escaped in every name and string inside it; one
    :class:`EscapedValue` per top-level value that had any (nested values are
    reported by their JSON text, as the column will hold it)."""

    def fix(v: object) -> object:
        if isinstance(v, str):
            hit = _escape(v)
            return v if hit is None else hit[0]
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {fix(k): fix(x) for k, x in v.items()}
        return v

    out = {}
    for key, value in obj.items():
        name = str(fix(key))
        text = value if isinstance(value, str) else None
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False)
        hit = _escape(text) if text is not None else None
        if hit is not None:
            found.add(EscapedValue(line, name, *hit))
        out[name] = fix(value)
    return out


def _text(v: object) -> str:
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)
