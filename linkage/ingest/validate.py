"""Column and row validation of one table against the data contract (vectorised)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.contract import ROW_COLUMN, TABLES, Table
from linkage.dataset import TableReport
from linkage.errors import Problem, SchemaError
from linkage.ingest import parse
from linkage.ingest.problems import ProblemLog

PROBLEM_COLUMN = "_problem"
#: Columns holding IP addresses (validated with :func:`~linkage.ingest.parse.parse_ips`).
IP_COLUMNS = frozenset({"signup_ip", "ip"})
#: String columns kept verbatim (not stripped): only blank cells become unknown.
VERBATIM_COLUMNS = frozenset({("requests", "prompt")})


# --------------------------------------------------------------------------- header


def _hint(missing: str, found: Sequence[str]) -> str:
    """A 'did you mean' hint for a missing column (case / spacing near-misses)."""
    norm = missing.lower().replace("_", "")
    for f in found:
        if f.strip().lower().replace("_", "").replace(" ", "").replace("-", "") == norm:
            return f" (did you mean {f!r}? names are case-sensitive)"
    close = difflib.get_close_matches(missing, [f.strip() for f in found], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _other_separator(header: Sequence[str], table: Table) -> str | None:
    """The separator (`;`, tab, `|`) a one-column header is really split by, if any."""
    if len(header) != 1:
        return None
    names = set(table.column_names)
    for sep in (";", "\t", "|"):
        if len(names.intersection(h.strip() for h in header[0].split(sep))) >= 2:
            return sep
    return None


def header_problems(table: Table, file: str, header: Sequence[str]) -> list[Problem]:
    """Problems of a header: required columns missing (with found columns and hints),
    and duplicate names after stripping whitespace."""
    stripped = [h.strip() for h in header]
    found = ", ".join(repr(h) for h in stripped) or "none"
    sep = _other_separator(stripped, table)
    if sep is not None:
        shown = {"\t": "tab", ";": ";", "|": "|"}[sep]
        return [
            Problem(
                table.name,
                file,
                None,
                None,
                f"looks like `{shown}`-separated: the header is one column {found}; "
                "the contract wants comma-separated values (re-export with `,`)",
            )
        ]
    problems = [
        Problem(
            table.name,
            file,
            None,
            col.name,
            f"required column missing{_hint(col.name, header)}; columns found: {found}",
        )
        for col in table.columns
        if col.required and col.name not in stripped
    ]
    dupes = sorted({h for h in stripped if stripped.count(h) > 1})
    problems += [
        Problem(table.name, file, None, d, "column name appears more than once") for d in dupes
    ]
    return problems


# --------------------------------------------------------------------------- rows


@dataclass
class TableResult:
    """One validated table: kept rows, quarantined rows (original columns plus
    ``_row`` and ``_problem``), and the counts."""

    kept: pd.DataFrame
    quarantined: pd.DataFrame
    report: TableReport


def prepare_columns(frame: pd.DataFrame, table: Table, file: str, log: ProblemLog) -> pd.DataFrame:
    """Strip column names, clean every string column, add absent optional columns
    (all unknown, with a warning) and ``_row`` if missing.  Works in place where it can."""
    frame.columns = [str(c).strip() for c in frame.columns]
    contract = {c.name: c for c in table.columns}
    for name in list(frame.columns):
        col = contract.get(name)
        if name == ROW_COLUMN:
            continue
        if col is not None and col.type == "string":
            frame[name] = parse.clean_strings(
                frame[name], strip=(table.name, name) not in VERBATIM_COLUMNS
            )
        elif col is None and isinstance(frame[name].dtype, pd.StringDtype):
            frame[name] = parse.clean_strings(frame[name])  # extra text columns: same hygiene
    missing = [c for c in table.columns if c.name not in frame.columns]
    for col in missing:
        if col.required:
            raise SchemaError(
                f"{file}: required column {col.name!r} missing",
                header_problems(table, file, list(frame.columns)),
            )
        dtype = {"timestamp": parse.TS_DTYPE, "int": "Int64", "flag": "Int8"}.get(
            col.type, parse.STRING_DTYPE
        )
        frame[col.name] = pd.Series(
            pd.NA if dtype != parse.STRING_DTYPE else np.nan, index=frame.index, dtype=dtype
        )
        log.add(
            Problem(
                table.name, file, None, col.name, "column absent, added as unknown", None, "warning"
            )
        )
    if ROW_COLUMN not in frame.columns:
        frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    order = [c.name for c in table.columns]
    extras = [c for c in frame.columns if c not in order and c != ROW_COLUMN]
    return frame[[*order, *extras, ROW_COLUMN]]


def _label(column: str | None, message: str) -> str:
    return f"{column}: {message}" if column else message


def _isin(values: pd.Series, known: pd.Index) -> np.ndarray:
    """``values.isin(known)`` as a bool array; for text by Arrow's hash lookup directly
    (pandas turns an Arrow-backed ``known`` into a Python list first: ~0.5 s per call
    for 51k ids at scale 1). Missing values are never in ``known``."""
    arr = getattr(values.array, "_pa_array", None)
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            ref = pa.array(known, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            ref = None
        if ref is not None and (pa.types.is_string(ref.type) or pa.types.is_large_string(ref.type)):
            ref = ref.drop_null().cast(arr.type)
            hit = pc.fill_null(pc.is_in(arr, value_set=ref), False)
            return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(values.isin(known).to_numpy(), dtype=bool) & values.notna().to_numpy()


@dataclass
class _Recorder:
    """Records one kind of row problem of a table in the log and keeps its ``(label,
    mask)`` for the quarantine file's ``_problem`` texts (only when a row is hit)."""

    frame: pd.DataFrame
    table: Table
    file: str
    log: ProblemLog
    rows: np.ndarray
    notes: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def __call__(self, column: str | None, message: str, mask: np.ndarray, severity: str) -> int:
        """Log ``message`` for the rows in ``mask``; returns how many there were."""
        values = self.frame[column] if column else None
        k = self.log.add_mask(
            table=self.table.name,
            file=self.file,
            column=column,
            message=message,
            mask=mask,
            rows=self.rows,
            values=values,
            severity=severity,
        )
        if k:
            self.notes.append((_label(column, message), mask))
        return k


def _parse_cells(
    frame: pd.DataFrame, table: Table, record: _Recorder
) -> tuple[np.ndarray, dict[str, pd.Series], int]:
    """Parse every typed column of the contract: (rows to quarantine, parsed columns,
    fields set unknown).  Bad optional cells become unknown (warning); an empty or
    unparseable required timestamp, a bad flag or an empty required string rejects
    the row (error)."""
    errors = np.zeros(len(frame), dtype=bool)
    parsed: dict[str, pd.Series] = {}
    nulled = 0
    for col in table.columns:
        name = col.name
        values = frame[name]
        if col.type == "timestamp":
            ts, bad = parse.parse_timestamps(values)
            parsed[name] = ts
            if col.nullable:
                nulled += record(name, "unparseable timestamp, set unknown", bad, "warning")
            else:
                record(name, "unparseable timestamp", bad, "error")
                empty = ts.isna().to_numpy() & ~bad
                record(name, f"empty {name}", empty, "error")
                errors |= bad | empty
        elif col.type == "int":
            ints, bad = parse.parse_ints(values)
            parsed[name] = ints
            nulled += record(name, "not an integer >= 0, set unknown", bad, "warning")
        elif col.type == "flag":
            flags, bad = parse.parse_flags(values)
            parsed[name] = flags
            record(name, f"{name} not 0/1", bad, "error")
            errors |= bad
        elif name in IP_COLUMNS:
            ips, bad = parse.parse_ips(values)
            parsed[name] = ips
            nulled += record(name, "not a valid IPv4/IPv6 address, set unknown", bad, "warning")
        elif not col.nullable:
            empty = values.isna().to_numpy()
            record(name, f"empty {name}", empty, "error")
            errors |= empty
    return errors, parsed, nulled


def _check_ids(
    ids: pd.Series,
    table: Table,
    errors: np.ndarray,
    record: _Recorder,
    *,
    known_ids: pd.Index | None,
    known_label: str,
    warn_ids: pd.Index | None,
    warn_label: str,
) -> np.ndarray:
    """``errors`` plus the rows whose key repeats an earlier valid row's or whose
    ``account_id`` is not in ``known_ids``; warns (row kept) for ids in ``warn_ids``."""
    if table.key is not None:
        candidates = ~errors
        dup = np.zeros(len(ids), dtype=bool)
        keyed = ids if candidates.all() else ids[candidates]
        dup[candidates] = keyed.duplicated(keep="first").to_numpy()
        record(table.key, f"duplicate {table.key} (first occurrence kept)", dup, "error")
        errors |= dup
    if known_ids is not None:
        orphan = ~_isin(ids, known_ids) & ids.notna().to_numpy()
        record("account_id", f"account_id not in {known_label}", orphan, "error")
        errors |= orphan
    if warn_ids is not None and len(warn_ids):
        also = _isin(ids, warn_ids) & ~errors
        record("account_id", f"account_id also in {warn_label}", also, "warning")
    return errors


def _quarantine_frame(
    frame: pd.DataFrame, qpos: np.ndarray, record: _Recorder, *, renumber: bool
) -> pd.DataFrame:
    """The rows at ``qpos`` (original cells) with ``_problem``: every problem that hit
    the row, joined by "; ".  ``renumber``: ``_row`` becomes the reported line."""
    # (an empty positional take still costs a pass over Arrow chunks: slice instead)
    quarantined = frame.iloc[qpos].copy() if len(qpos) else frame.iloc[:0].copy()
    reasons = np.full(len(qpos), "", dtype=object)
    for text, mask in record.notes:
        hit = mask[qpos]
        if hit.any():
            reasons[hit] = np.where(reasons[hit] == "", text, reasons[hit] + "; " + text)
    quarantined[PROBLEM_COLUMN] = pd.array(reasons, dtype=parse.STRING_DTYPE)
    if renumber:
        quarantined[ROW_COLUMN] = record.rows[qpos]
    return quarantined


def validate_rows(
    frame: pd.DataFrame,
    table: Table,
    file: str,
    log: ProblemLog,
    *,
    known_ids: pd.Index | None = None,
    known_label: str = "accounts",
    warn_ids: pd.Index | None = None,
    warn_label: str = "",
    lines: np.ndarray | None = None,
    row_errors: Sequence[tuple[str, np.ndarray]] = (),
) -> TableResult:
    """Validate the rows of a prepared frame (see :func:`prepare_columns`).

    Unparseable optional fields are set unknown (warning); rows with an empty key,
    an unparseable required timestamp, a bad flag, a duplicate key (after the first)
    or an ``account_id`` not in ``known_ids`` are quarantined (error).  ``warn_ids``
    adds a warning (row kept) for account ids found there.

    ``lines`` (one per row: the 1-based line an editor shows, or the 1-based row of
    a Parquet file) is what problems and the quarantine's ``_row`` report; without
    it they report ``_row``.  ``row_errors`` are ``(message, mask)`` pairs found by
    the reader (e.g. a NUL byte): those rows are quarantined too.
    """
    n = len(frame)
    rows = frame[ROW_COLUMN].to_numpy() if lines is None else np.asarray(lines)
    record = _Recorder(frame, table, file, log, rows)
    errors, parsed, nulled = _parse_cells(frame, table, record)
    for message, mask in row_errors:
        record(None, message, mask, "error")
        errors |= mask
    errors = _check_ids(
        frame["account_id"],
        table,
        errors,
        record,
        known_ids=known_ids,
        known_label=known_label,
        warn_ids=warn_ids,
        warn_label=warn_label,
    )
    qpos = np.flatnonzero(errors)
    quarantined = _quarantine_frame(frame, qpos, record, renumber=lines is not None)
    for name, series in parsed.items():
        frame[name] = series
    kept = frame.loc[~errors] if len(qpos) else frame
    kept = kept.reset_index(drop=True) if len(qpos) else kept
    report = TableReport(table.name, file, n, len(kept), len(quarantined), nulled)
    check_accounting(report)
    return TableResult(kept, quarantined, report)


def check_accounting(report: TableReport) -> None:
    """Internal invariant: nothing is silently lost."""
    if report.rows_read != report.rows_kept + report.rows_quarantined:
        raise AssertionError(
            f"ingest lost rows in {report.table}: read {report.rows_read}, kept "
            f"{report.rows_kept}, quarantined {report.rows_quarantined}"
        )


def validate_signups(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Apply the accounts rules to an in-memory signups frame (e.g. one API signup).

    Returns the kept rows (typed like ``Dataset.signups``) and every problem found
    (warnings for fields set unknown, errors for rejected rows).  Raises
    :class:`SchemaError` if a required column is missing.
    """
    table = TABLES["signups"]
    problems = header_problems(table, "<signups>", [str(c) for c in frame.columns])
    if problems:
        raise SchemaError("signups: required columns missing", problems)
    log = ProblemLog(max_listed=len(frame) * (len(table.columns) + 2) + 16)
    prepared = prepare_columns(frame.copy(), table, "<signups>", log)
    result = validate_rows(prepared, table, "<signups>", log)
    return result.kept, list(log.problems)
