"""``load_dataset``: read a dataset directory, validate it, quarantine bad rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from linkage.contract import ROW_COLUMN, TABLES
from linkage.dataset import Dataset, IngestReport, TableReport
from linkage.errors import DatasetError, Problem, SchemaError
from linkage.ingest.problems import ProblemLog
from linkage.ingest.readers import (
    ReadResult,
    TableFile,
    discover,
    header_of,
    nul_rows,
    read_csv,
    read_parquet,
)
from linkage.ingest.tolerant import ESCAPED_MESSAGE
from linkage.ingest.validate import (
    PROBLEM_COLUMN,
    TableResult,
    check_accounting,
    header_problems,
    prepare_columns,
    validate_rows,
)
from linkage.settings import IngestSettings

log = logging.getLogger(__name__)

#: Quarantine column holding the raw text of a record the reader could not read.
RAW_COLUMN = "_raw"

#: Validation order: referential checks need the kept ids of earlier tables.
_ORDER = ("accounts", "signups", "labels", "identifiers", "requests")


def _types_mapper(t: pa.DataType) -> object | None:
    # Integer columns with nulls must not become float64 (epoch ns would lose precision).
    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    return None


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas without keeping both copies alive (strings stay Arrow-backed)."""
    return table.to_pandas(types_mapper=_types_mapper, self_destruct=True, split_blocks=True)


def quarantine_reasons(quarantined: pd.DataFrame, top: int = 3) -> str:
    """'2 rows: ts: unparseable timestamp, first at line 6; …' for a quarantine frame."""
    per = pd.DataFrame(
        {
            "row": quarantined[ROW_COLUMN].to_numpy(),
            "kind": quarantined[PROBLEM_COLUMN].astype(str).str.split("; "),
        }
    ).explode("kind")
    per["kind"] = per["kind"].str.split(" (", n=1, regex=False).str[0]
    agg = per.groupby("kind")["row"].agg(["size", "min"]).reset_index()
    ranked = list(agg.sort_values(["size", "min"], ascending=[False, True]).itertuples())
    parts = [
        f"{r.size:,} row{'s' if r.size != 1 else ''}: {r.kind}, first at line {r.min}"
        for r in ranked[:top]
    ]
    if len(ranked) > top:
        parts.append(f"and {len(ranked) - top} more kinds")
    return "; ".join(parts)


def _size(path: Path) -> str:
    mb = path.stat().st_size / 1e6
    return f"{mb:,.1f} MB"


def _check_headers(
    directory: Path, files: dict[str, TableFile]
) -> tuple[dict[str, list[str]], dict[str, ReadResult]]:
    """Read every header; raise one error listing every table / column problem."""
    problems: list[Problem] = []
    headers: dict[str, list[str]] = {}
    cached: dict[str, ReadResult] = {}
    for name, tf in files.items():
        try:
            header, table = header_of(tf)
        except SchemaError as exc:
            problems.extend(exc.problems)
            continue
        headers[name] = header
        if table is not None:
            cached[name] = table
        problems += header_problems(TABLES[name], tf.name, header)
    missing = [t for t, d in TABLES.items() if d.required and t not in files]
    if not missing and not problems:
        return headers, cached
    lines = [
        f"  - required table {t!r} missing (expected {t}.csv/.csv.gz/.parquet/.jsonl)"
        for t in missing
    ]
    lines += [f"  - {p}" for p in problems]
    present = ", ".join(tf.name for tf in files.values()) or "no table files"
    text = f"dataset {directory} does not meet the data contract (found: {present}):\n" + "\n".join(
        lines
    )
    if missing:
        raise DatasetError(text)
    raise SchemaError(text.splitlines()[0], problems)


def _add_bad_lines(
    result: TableResult, read: ReadResult, tf: TableFile, problems: ProblemLog
) -> None:
    """Count the records the reader could not read as read and quarantined, add them
    to the quarantine (``_row`` = line, ``_problem`` = reason, ``_raw`` = the text);
    record the reader's file notes and the values it kept with bad bytes escaped."""
    for note in read.notes:
        problems.add(Problem(tf.table, tf.name, None, None, note, None, "warning"))
    esc = read.escaped
    for e in esc.listed:
        problems.add(
            Problem(tf.table, tf.name, e.line, e.column, ESCAPED_MESSAGE, e.value, "warning")
        )
    for col, n in esc.counts.items():
        listed = sum(1 for e in esc.listed if e.column == col)
        like = Problem(tf.table, tf.name, esc.first[col], col, ESCAPED_MESSAGE, None, "warning")
        problems.add_more(like, n - listed)
    if not read.bad:
        return
    for b in read.bad:
        problems.add(Problem(tf.table, tf.name, b.line, None, b.kind, b.raw[:120], "error"))
    bad = pd.DataFrame(
        {
            ROW_COLUMN: np.array([b.line for b in read.bad], dtype=np.int64),
            PROBLEM_COLUMN: [b.reason for b in read.bad],
            RAW_COLUMN: [b.raw for b in read.bad],
        }
    )
    q = result.quarantined
    q = pd.concat([q, bad], ignore_index=True) if len(q) else bad
    result.quarantined = q.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
    r = result.report
    r.rows_read += len(read.bad)
    r.rows_quarantined += len(read.bad)


def _notices(
    tf: TableFile,
    read: ReadResult,
    r: TableReport,
    problems: ProblemLog,
    *,
    quarantined: str | None,
    reasons: str,
) -> list[str]:
    """One line per thing a user must be told about this file (see IngestReport.notices):
    the file cut short (and how many rows were read before the cut), rows quarantined
    (how many, where, why), values kept with bad bytes escaped, fields set unknown."""
    out = [
        f"{tf.name}: {note}; {r.rows_read:,} rows read before the cut, the rest is lost"
        if note.startswith("gzip stream ends early")
        else f"{tf.name}: {note}"
        for note in read.notes
    ]
    if r.rows_quarantined:
        where = f"→ {quarantined}" if quarantined else "(not written: no quarantine directory)"
        out.append(
            f"{tf.name}: {r.rows_quarantined:,} of {r.rows_read:,} rows quarantined {where} "
            f"({reasons})"
        )
    esc = read.escaped
    if esc.total:
        col, line = min(esc.first.items(), key=lambda kv: kv[1])
        more = f"; columns {', '.join(sorted(esc.counts))}" if len(esc.counts) > 1 else ""
        out.append(
            f"{tf.name}: {esc.total:,} value{'s' if esc.total != 1 else ''} not valid UTF-8, "
            f"kept with the bad bytes escaped as \\xNN (first at line {line}, column {col!r}{more})"
        )
    if r.fields_nulled:
        prefix = f"{tf.table}/"
        kinds = [
            (n, key[len(prefix) :].replace("/", ": ", 1))
            for key, n in problems.counts.items()
            if key.startswith(prefix) and key.endswith("set unknown")
        ]
        kinds.sort(key=lambda kv: (-kv[0], kv[1]))
        shown = "; ".join(f"{n:,} {k}" for n, k in kinds[:3])
        out.append(f"{tf.name}: {r.fields_nulled:,} fields set unknown ({shown})")
    return out


@dataclass(frozen=True)
class _Progress:
    """Where :func:`load_dataset` tells what it does: the caller's ``progress``
    callback when there is one, else the log."""

    callback: Callable[[str], None] | None

    def say(self, message: str) -> None:
        """A status message: to the callback, else the log at INFO."""
        if self.callback is not None:
            self.callback(message)
        else:
            log.info(message)

    def notify(self, message: str) -> None:
        """Data set aside: to the callback, else a warning in the log (the CLI repeats
        report.notices in its run summary, even with -q)."""
        if self.callback is not None:
            self.callback(message)
        else:
            log.warning(message)


def _read_table(
    tf: TableFile, cached: ReadResult | None, header: list[str], progress: _Progress
) -> ReadResult:
    """Read one table file (or take the read its header check already made), saying
    how large it is and whether the fast reader refused it."""
    if cached is not None:
        read = cached
        progress.say(f"reading {tf.name} ({read.table.num_rows:,} rows)")
    elif tf.fmt == "parquet":
        try:
            n_rows = pq.ParquetFile(tf.path).metadata.num_rows
            progress.say(f"reading {tf.name} ({n_rows:,} rows)")
        except (pa.ArrowException, OSError):
            progress.say(f"reading {tf.name}")
        read = read_parquet(tf)
    else:
        progress.say(f"reading {tf.name} ({_size(tf.path)})")
        read = read_csv(tf, header)
        progress.say(f"read {tf.name} ({read.table.num_rows:,} rows)")
    if read.tolerant:
        progress.say(
            f"{tf.name}: read line by line (the fast reader refused the file): "
            f"{read.table.num_rows:,} records read, {len(read.bad):,} unreadable lines set aside"
        )
    return read


def _reference_ids(
    name: str, results: dict[str, TableResult]
) -> tuple[pd.Index | None, str, pd.Index | None]:
    """``(known ids, their label, warn ids)`` for table ``name`` from the tables already
    validated: requests need a kept account, labels and identifiers a kept account or
    signup; a signup of an existing account is warned about."""
    known = warn = None
    known_label = "accounts"
    if name == "requests":
        known = pd.Index(results["accounts"].kept["account_id"])
    elif name in ("labels", "identifiers"):
        # identifiers of new signups are kept too: signup verification uses them
        ids = [results["accounts"].kept["account_id"]]
        if "signups" in results:
            ids.append(results["signups"].kept["account_id"])
        known = pd.Index(pd.concat(ids, ignore_index=True))
        known_label = "accounts or signups"
    elif name == "signups":
        warn = pd.Index(results["accounts"].kept["account_id"])
    return known, known_label, warn


def _validate_table(
    name: str,
    tf: TableFile,
    read: ReadResult,
    results: dict[str, TableResult],
    problems: ProblemLog,
) -> TableResult:
    """Convert a read table to pandas (dropping the Arrow copy), prepare its columns
    and validate its rows against the contract and the tables validated before it."""
    table_def = TABLES[name]
    nul = nul_rows(read.table) if tf.fmt != "parquet" else None
    lines = read.lines
    frame = _to_frame(read.table)
    read.table = None
    frame = prepare_columns(frame, table_def, tf.name, problems)
    known, known_label, warn = _reference_ids(name, results)
    return validate_rows(
        frame,
        table_def,
        tf.name,
        problems,
        known_ids=known,
        known_label=known_label,
        warn_ids=warn,
        warn_label="accounts",
        lines=lines,
        row_errors=[("NUL byte in line", nul)] if nul is not None and nul.any() else (),
    )


def _set_aside(
    name: str,
    tf: TableFile,
    read: ReadResult,
    result: TableResult,
    report: IngestReport,
    problems: ProblemLog,
    *,
    qdir: Path | None,
    progress: _Progress,
) -> None:
    """Write the table's quarantined rows to ``qdir/<table>.csv`` (if any and a directory
    is given), tell the user what was set aside (``report.notices``) and free the
    quarantine frame (the file has the rows)."""
    r = result.report
    if qdir is not None and r.rows_quarantined:
        qdir.mkdir(parents=True, exist_ok=True)
        out = qdir / f"{name}.csv"
        result.quarantined.to_csv(out, index=False)
        report.quarantine_files[name] = str(out)
    reasons = quarantine_reasons(result.quarantined) if r.rows_quarantined else ""
    for notice in _notices(
        tf,
        read,
        r,
        problems,
        quarantined=report.quarantine_files.get(name),
        reasons=reasons,
    ):
        report.notices.append(notice)
        progress.notify(notice)
    result.quarantined = result.quarantined.iloc[:0]  # free memory; the file has them


def _dataset(
    directory: Path,
    files: dict[str, TableFile],
    results: dict[str, TableResult],
    report: IngestReport,
    problems: ProblemLog,
) -> Dataset:
    """The loaded dataset: every table's kept rows and the report with every problem
    (after checking that no table lost a row)."""
    report.problems = list(problems.problems)
    report.problem_counts = dict(problems.counts.most_common())
    report.problem_first = dict(problems.first)
    for r in report.tables.values():
        check_accounting(r)

    def kept(name: str) -> pd.DataFrame | None:
        return results[name].kept if name in results else None

    return Dataset(
        accounts=results["accounts"].kept,
        requests=results["requests"].kept,
        identifiers=kept("identifiers"),
        signups=kept("signups"),
        labels=kept("labels"),
        report=report,
        source=str(directory),
        files={name: str(tf.path) for name, tf in files.items()},
    )


def load_dataset(
    path: str | Path,
    *,
    settings: IngestSettings | None = None,
    quarantine_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Dataset:
    """Read and validate the dataset directory ``path`` (see DATA_CONTRACT.md).

    Every table file (``.csv``, ``.csv.gz``, ``.parquet``, ``.jsonl``, ``.jsonl.gz``;
    the stem names the table) is read, its header checked (all header problems of
    all files are raised together as one :class:`SchemaError`; missing directory or
    required tables as one :class:`DatasetError`), its cells parsed and its rows
    validated.  Rows breaking the contract are quarantined (and written to
    ``quarantine_dir/<table>.csv`` with ``_row`` and ``_problem`` when a directory is
    given); unparseable optional fields are set unknown.  ``progress`` receives short
    status messages.  Everything is accounted in ``dataset.report``.
    """
    settings = settings or IngestSettings()
    directory = Path(path)
    tell = _Progress(progress)
    files = discover(directory)
    headers, cached = _check_headers(directory, files)
    problems = ProblemLog(settings.max_problems_listed)
    report = IngestReport()
    results: dict[str, TableResult] = {}
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None

    for name in _ORDER:
        tf = files.get(name)
        if tf is None:
            continue
        start = time.perf_counter()
        read = _read_table(tf, cached.pop(name, None), headers[name], tell)
        result = _validate_table(name, tf, read, results, problems)
        _add_bad_lines(result, read, tf, problems)
        results[name] = result
        report.tables[name] = result.report
        r = result.report
        tell.say(
            f"validated {name}: {r.rows_kept:,} kept, {r.rows_quarantined:,} quarantined, "
            f"{r.fields_nulled:,} fields set unknown ({time.perf_counter() - start:.1f}s)"
        )
        _set_aside(name, tf, read, result, report, problems, qdir=qdir, progress=tell)
    return _dataset(directory, files, results, report, problems)
