"""The request-level aggregation of the identifiers stage as plain SQL.

Requests are the one table that grows without bound (tens of millions of rows);
everything the identifiers stage needs from them is a scan, a ``GROUP BY`` and
a few joins.  This module states that aggregation as SQL that both DuckDB and
Spark SQL accept, so it can run embedded (DuckDB, :func:`aggregate_requests_duckdb`)
or on an existing cluster (``spark.sql(...)``, see docs/SCALING.md) instead of
in pandas (:func:`linkage.identifiers.extract`).

Views and queries (run in this order; each output query reads ``requests_clean``):

1. ``requests_source``: the raw requests (a registered frame, ``read_parquet(...)``
   or a Spark temp view) with the contract's columns ``account_id, ts, ip,
   device_fingerprint, model, response_tokens``;
2. ``requests_clean`` (:data:`CLEAN_REQUESTS_SQL_DUCKDB` / :data:`CLEAN_REQUESTS_SQL_SPARK`):
   timestamps as naive UTC ``TIMESTAMP`` (ISO text with ``Z``, any offset or none,
   or a native timestamp column), plain string normalisation (trim; device
   fingerprints lower-cased; empty → ``NULL``), negative token counts → ``NULL``,
   rows without an account or a parseable time dropped.  The only
   dialect-specific text is the timestamp cast;
3. outputs, identical text for both engines:

   - :data:`REQUEST_PAIRS_SQL` → ``request_pairs``: ``account_id, kind, value, n,
     first_ts, last_ts`` for the request-derived kinds ``ip``, ``device`` and
     ``model`` (the request half of the ``ip``/``device`` edges; ``model`` pairs
     give the per-account first use of each model for the pivot lag);
   - :data:`ACCOUNT_ACTIVITY_SQL` → ``account_activity``: one row per account with
     requests: ``n_requests, active_days, active_hours, first_ts, last_ts,
     mean_response_tokens, n_ips, n_ip_rows, n_devices, n_device_rows, h00..h23``;
   - :data:`MODEL_FIRST_SEEN_SQL` → ``model_first_seen``: ``model, first_ts,
     n_requests`` (the release-detection input).

Both engines must run with the session time zone set to UTC (DuckDB
``SET TimeZone = 'UTC'``, Spark ``spark.sql.session.timeZone=UTC``): ``CAST(ts AS
DATE)``, ``EXTRACT(HOUR FROM ts)`` and the text-to-timestamp cast of naive
strings depend on it.

What stays outside SQL (not plain string work, or needs all the outputs):
canonical IP text and subnets (``ipaddress``; ingest already writes canonical
IPs), templates, prompt signals, and the per-account finishing arithmetic in
:func:`features_from_aggregates` (hour entropy from ``h00..h23``, churn ratios,
release cut-off and pivot lag).

Known differences from the pandas path: timestamps are microseconds in both
engines (pandas keeps nanoseconds); SQL ``TRIM`` removes spaces only (ingest has
already stripped every other whitespace); ``active_hours`` counts distinct UTC
clock hours, while :func:`linkage.identifiers.timing.timing_features` buckets
hours from the dataset's first request, so ``req_per_active_hour`` can differ
when that request is not on the hour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from linkage.identifiers.timing import RELEASE_WARMUP

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ACCOUNT_ACTIVITY_SQL",
    "CLEAN_REQUESTS_SQL_DUCKDB",
    "CLEAN_REQUESTS_SQL_SPARK",
    "HOUR_COLUMNS",
    "MODEL_FIRST_SEEN_SQL",
    "OUTPUT_SQL",
    "REQUEST_COLUMNS",
    "REQUEST_PAIRS_SQL",
    "aggregate_requests_duckdb",
    "features_from_aggregates",
]

#: Columns of ``requests_source`` the queries read (a missing one is read as all NULL).
REQUEST_COLUMNS: tuple[str, ...] = (
    "account_id",
    "ts",
    "ip",
    "device_fingerprint",
    "model",
    "response_tokens",
)

#: Per-hour-of-day request counts in ``account_activity``.
HOUR_COLUMNS: tuple[str, ...] = tuple(f"h{h:02d}" for h in range(24))

_CLEAN_TEMPLATE = """
SELECT
    account_id,
    {ts} AS ts,
    NULLIF(TRIM(ip), '') AS ip,
    NULLIF(LOWER(TRIM(device_fingerprint)), '') AS device,
    NULLIF(TRIM(model), '') AS model,
    CASE WHEN response_tokens >= 0 THEN response_tokens END AS response_tokens
FROM requests_source
WHERE account_id IS NOT NULL AND {ts} IS NOT NULL
"""

#: ``requests_clean`` on DuckDB: a text→TIMESTAMP cast ignores the UTC offset there,
#: so go through TIMESTAMPTZ (which honours it; naive text = session zone = UTC).
CLEAN_REQUESTS_SQL_DUCKDB = _CLEAN_TEMPLATE.format(
    ts="CAST(TRY_CAST(ts AS TIMESTAMPTZ) AS TIMESTAMP)"
)

#: ``requests_clean`` on Spark SQL (3.2+): ``TIMESTAMP`` is already zone-aware there.
CLEAN_REQUESTS_SQL_SPARK = _CLEAN_TEMPLATE.format(ts="TRY_CAST(ts AS TIMESTAMP)")

#: Account–identifier pairs from requests: one row per (account, kind, value).
REQUEST_PAIRS_SQL = """
SELECT account_id, kind, value, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts
FROM (
    SELECT account_id, 'ip' AS kind, ip AS value, ts FROM requests_clean WHERE ip IS NOT NULL
    UNION ALL
    SELECT account_id, 'device' AS kind, device AS value, ts
    FROM requests_clean WHERE device IS NOT NULL
    UNION ALL
    SELECT account_id, 'model' AS kind, model AS value, ts
    FROM requests_clean WHERE model IS NOT NULL
) AS observations
GROUP BY account_id, kind, value
"""

_HOUR_COUNTS = ",\n    ".join(
    f"SUM(CASE WHEN EXTRACT(HOUR FROM ts) = {h} THEN 1 ELSE 0 END) AS {c}"
    for h, c in enumerate(HOUR_COLUMNS)
)

#: Per-account activity: counts, span, distinct days/hours/IPs/devices, hour histogram.
ACCOUNT_ACTIVITY_SQL = f"""
SELECT
    account_id,
    COUNT(*) AS n_requests,
    COUNT(DISTINCT CAST(ts AS DATE)) AS active_days,
    COUNT(DISTINCT date_trunc('hour', ts)) AS active_hours,
    MIN(ts) AS first_ts,
    MAX(ts) AS last_ts,
    AVG(CAST(response_tokens AS DOUBLE)) AS mean_response_tokens,
    COUNT(DISTINCT ip) AS n_ips,
    COUNT(ip) AS n_ip_rows,
    COUNT(DISTINCT device) AS n_devices,
    COUNT(device) AS n_device_rows,
    {_HOUR_COUNTS}
FROM requests_clean
GROUP BY account_id
"""

#: First request time per model (a model's release, when past the warm-up).
MODEL_FIRST_SEEN_SQL = """
SELECT model, MIN(ts) AS first_ts, COUNT(*) AS n_requests
FROM requests_clean
WHERE model IS NOT NULL
GROUP BY model
"""

#: output name → (query, ORDER BY columns used by the embedded runner).
OUTPUT_SQL: dict[str, tuple[str, tuple[str, ...]]] = {
    "request_pairs": (REQUEST_PAIRS_SQL, ("account_id", "kind", "value")),
    "account_activity": (ACCOUNT_ACTIVITY_SQL, ("account_id",)),
    "model_first_seen": (MODEL_FIRST_SEEN_SQL, ("model",)),
}

_STRING_COLUMNS = ("account_id", "kind", "value", "model")
_TS_COLUMNS = ("first_ts", "last_ts")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parquet_scan(paths: str | Path | Sequence[str | Path]) -> str:
    if isinstance(paths, (str, Path)):
        return f"read_parquet({_quote(str(paths))})"
    return "read_parquet([" + ", ".join(_quote(str(p)) for p in paths) + "])"


def _relation(
    con: duckdb.DuckDBPyConnection, source: object, name: str, columns: Sequence[str]
) -> str:
    """Register ``source`` (frame or parquet path/glob/list) as view ``name``; return its name."""
    if isinstance(source, pd.DataFrame):
        raw = f"{name}_frame"
        con.register(raw, source)
    else:
        raw = f"{name}_parquet"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {_parquet_scan(source)}")
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()}
    cols = [c if c in present else f"CAST(NULL AS VARCHAR) AS {c}" for c in columns]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {', '.join(cols)} FROM {raw}")
    return name


def _fetch(con: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame:
    """Run ``query`` and convert through Arrow (much cheaper than ``.df()`` for strings)."""
    rel = con.sql(query)
    table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
    strings = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}
    frame = table.to_pandas(types_mapper=strings.get)
    for c in frame.columns:
        if c in _TS_COLUMNS:
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[ns]").dt.tz_localize("UTC")
        elif c not in _STRING_COLUMNS and c != "mean_response_tokens":
            frame[c] = frame[c].astype(np.int64)
    return frame


def aggregate_requests_duckdb(
    requests: pd.DataFrame | str | Path | Sequence[str | Path],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    accounts: pd.DataFrame | str | Path | Sequence[str | Path] | None = None,
    materialize: bool = True,
) -> dict[str, pd.DataFrame]:
    """Run the request aggregation on DuckDB; outputs ``request_pairs``,
    ``account_activity`` and ``model_first_seen`` (see the module docstring).

    ``requests`` is a frame (e.g. ``Dataset.requests``; only the columns in
    :data:`REQUEST_COLUMNS` are scanned, the prompt column is never copied) or a
    parquet path, glob or list of paths, scanned directly by DuckDB (data larger
    than memory streams through the aggregation).  ``accounts`` (frame or parquet
    with ``account_id``), when given, restricts requests to known accounts, as
    ingest does.  ``con`` is an existing connection (its time zone is set to
    UTC and temp views ``requests_*`` are created on it); default: a new in-memory
    one.  ``materialize``: ``requests_clean`` becomes a temp table, so the source is
    scanned and its timestamps parsed once instead of once per scan (~1.4x faster at
    scale 1; DuckDB spills a temp table that outgrows ``memory_limit`` to
    ``temp_directory``); ``False`` keeps it a view that every output query re-scans.  Outputs are sorted
    by their keys; timestamps are ``datetime64[ns, UTC]``.
    """
    import duckdb

    own = con is None
    if con is None:
        con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        source = _relation(con, requests, "requests_source_all", REQUEST_COLUMNS)
        if accounts is not None:
            known = _relation(con, accounts, "requests_known_accounts", ("account_id",))
            con.execute(
                "CREATE OR REPLACE TEMP VIEW requests_source AS SELECT * FROM "
                f"{source} WHERE account_id IN (SELECT account_id FROM {known})"
            )
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW requests_source AS SELECT * FROM {source}")
        what = "TABLE" if materialize else "VIEW"
        for kind in ("VIEW", "TABLE"):  # left by an earlier call on ``con``
            with contextlib.suppress(duckdb.CatalogException):  # it is the other kind
                con.execute(f"DROP {kind} IF EXISTS requests_clean")
        con.execute(f"CREATE TEMP {what} requests_clean AS {CLEAN_REQUESTS_SQL_DUCKDB}")
        out: dict[str, pd.DataFrame] = {}
        for name, (sql, keys) in OUTPUT_SQL.items():
            query = f"SELECT * FROM ({sql}) AS q ORDER BY {', '.join(keys)}"
            out[name] = _fetch(con, query)
        if materialize:
            con.execute("DROP TABLE requests_clean")
        return out
    finally:
        if own:
            con.close()


def _seconds(ts: pd.Series) -> np.ndarray:
    ns = ts.astype("datetime64[ns, UTC]").to_numpy(dtype="datetime64[ns]").view(np.int64)
    return ns / 1e9


def features_from_aggregates(
    agg: dict[str, pd.DataFrame],
    accounts: pd.Index | Sequence[str] | None = None,
    *,
    warmup: float = RELEASE_WARMUP,
) -> pd.DataFrame:
    """Finish the request-derived per-account features from the SQL outputs.

    Columns (same meaning as :data:`linkage.identifiers.features.FEATURE_COLUMNS`):
    ``n_requests, active_days, req_per_active_hour, n_ips, ip_churn, n_devices,
    device_churn, hour_entropy, mean_response_tokens, first_ts, last_ts,
    pivot_lag_hours`` (``req_per_active_hour`` over UTC clock hours).  Index
    ``account_id``: ``accounts`` when given (accounts without requests get
    ``n_requests = 0`` and NaN elsewhere), else the accounts with requests.
    """
    act = agg["account_activity"].set_index("account_id")
    n = act["n_requests"].to_numpy(np.float64)
    hours = act[list(HOUR_COLUMNS)].to_numpy(np.float64)
    p = hours / n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    n_ip_rows = act["n_ip_rows"].to_numpy(np.float64)
    n_dev_rows = act["n_device_rows"].to_numpy(np.float64)
    n_ips = np.where(n_ip_rows > 0, act["n_ips"].to_numpy(np.float64), np.nan)
    n_dev = np.where(n_dev_rows > 0, act["n_devices"].to_numpy(np.float64), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        feats = pd.DataFrame(
            {
                "n_requests": n,
                "active_days": act["active_days"].to_numpy(np.float64),
                "req_per_active_hour": n / act["active_hours"].to_numpy(np.float64),
                "n_ips": n_ips,
                "ip_churn": n_ips / n_ip_rows,
                "n_devices": n_dev,
                "device_churn": n_dev / n_dev_rows,
                "hour_entropy": np.abs(terms.sum(axis=1)),
                "mean_response_tokens": act["mean_response_tokens"].to_numpy(np.float64),
                "first_ts": _seconds(act["first_ts"]),
                "last_ts": _seconds(act["last_ts"]),
            },
            index=act.index,
        )
    feats["pivot_lag_hours"] = _pivot_lag(agg, feats, warmup)
    if accounts is not None:
        feats = feats.reindex(pd.Index(accounts, dtype="string"))
        feats["n_requests"] = feats["n_requests"].fillna(0.0)
    feats.index.name = "account_id"
    return feats


def _pivot_lag(agg: dict[str, pd.DataFrame], feats: pd.DataFrame, warmup: float) -> pd.Series:
    """Hours from the release of the newest released model an account used to its
    first request with it (rules of :func:`linkage.identifiers.timing.model_releases`)."""
    out = pd.Series(np.nan, index=feats.index)
    models = agg["model_first_seen"]
    if not len(feats) or not len(models):
        return out
    t0, t1 = feats["first_ts"].min(), feats["last_ts"].max()
    cutoff = t0 + warmup * (t1 - t0)
    release = pd.Series(_seconds(models["first_ts"]), index=models["model"].to_numpy())
    release = release[release > cutoff]
    pairs = agg["request_pairs"]
    pairs = pairs[(pairs["kind"] == "model") & pairs["value"].isin(release.index)]
    if not len(pairs):
        return out
    used = pd.DataFrame(
        {
            "a": pairs["account_id"].to_numpy(),
            "rel": release.reindex(pairs["value"].to_numpy()).to_numpy(),
            "t": _seconds(pairs["first_ts"]),
        }
    )
    last = used.sort_values(["a", "rel", "t"]).drop_duplicates("a", keep="last")
    out.loc[last["a"].to_numpy()] = (last["t"].to_numpy() - last["rel"].to_numpy()) / 3600.0
    return out
