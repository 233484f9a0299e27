"""The aggregation of the identifiers stage as SQL, generated from the kind declarations.

Requests are the one table that grows without bound; everything the identifiers
stage needs from them (and from the accounts and the optional identifiers table)
is a scan, a ``GROUP BY`` and a few joins.  :func:`aggregation_sql` states that
aggregation as SQL text both DuckDB and Spark SQL accept, generated from
:data:`linkage.identifiers.kinds.KINDS`; :func:`run_aggregation` runs it on any
:class:`linkage.engine.SqlEngine`.  The only dialect-specific text is the timestamp
parse (:data:`TS_NS_SQL`) and how an intermediate result is kept
(:data:`MATERIALIZE_SQL`).

Inputs (registered as ``requests_source``, ``accounts_source``, ``identifiers_source``;
a missing column reads as all NULL):

- requests: ``account_id``, ``ts`` (timestamp or ISO text; or ``ts_ns``, epoch
  nanoseconds, which is used as is), the kinds' raw request columns (``ip``,
  ``device_fingerprint``), ``response_tokens``, and the stage's own columns
  ``template``, ``topic`` (strings) and ``reasoning`` (boolean, NULL = no prompt);
- accounts: ``account_id``, ``created_at`` (or ``created_ns``) and the kinds' raw
  sign-up columns;
- identifiers (optional): ``account_id, kind, value, ts`` (or ``ts_ns``).

Requests of unknown accounts or without a parseable time are dropped.

Statements (in order; see :func:`aggregation_sql`):

1. views ``requests_clean``, ``accounts_clean`` (``ts_ns``/``created_ns`` as epoch ns);
2. ``raw_<column>``: per request column a kind reads, ``GROUP BY account_id, raw
   value`` (``n``, ``first_ts``, ``last_ts``): the raw value is grouped first, so
   normalisation runs on pairs, not rows;
3. ``distinct_<map>``: the distinct raw values a per-distinct-value normaliser
   (:class:`~linkage.identifiers.kinds.ValueMap`) needs; :func:`run_aggregation`
   maps them in Python and registers the result as ``map_<map>`` (``raw`` + one
   column per output);
4. ``pairs_<kind>``: the normalised request pairs of each request kind;
5. outputs (:data:`OUTPUTS`):

   - ``edges``: ``account_id, kind, value, n, first_ts, last_ts``: request pairs and
     sign-up observations (``n = 1`` at ``created_ns``) of every edge kind, plus the
     identifiers table's ``x:<kind>`` rows; times are epoch ns (NULL unknown);
   - ``account_kinds``: ``account_id, kind, n_values, top_n, n_rows`` per request
     kind: distinct values, the top value's rows, rows with a known value;
   - ``account_activity``: ``account_id, n_requests, n_tokens, sum_tokens,
     n_prompts, n_reasoning``;
   - ``account_attributes``: ``account_id`` plus the value maps' per-account
     attributes (``email_disposable, email_alias, email_freemail``).

Both engines must run with the session time zone set to UTC (naive timestamp text
is read as UTC).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from linkage.engine import SqlEngine
from linkage.errors import LinkageError
from linkage.identifiers.kinds import EXTRA_PREFIX, KINDS, VALUE_MAPS, Kind, sql_trim
from linkage.settings import IdentifierSettings

__all__ = [
    "ACCOUNT_COLUMNS",
    "DIALECTS",
    "IDENTIFIER_COLUMNS",
    "MATERIALIZE_SQL",
    "OUTPUTS",
    "REQUEST_COLUMNS",
    "TS_NS_SQL",
    "aggregation_sql",
    "run_aggregation",
]

DIALECTS: tuple[str, ...] = ("duckdb", "spark")

#: Text or timestamp column ``{x}`` → epoch nanoseconds (NULL if unparseable).  DuckDB:
#: a text→TIMESTAMP cast ignores a UTC offset, TIMESTAMPTZ honours it; Spark's
#: TIMESTAMP is zone-aware already (microseconds).
TS_NS_SQL: dict[str, str] = {
    "duckdb": "epoch_ns(TRY_CAST({x} AS TIMESTAMPTZ))",
    "spark": "unix_micros(TRY_CAST({x} AS TIMESTAMP)) * 1000",
}

#: Keep an intermediate result (scanned more than once) as a temporary relation.
MATERIALIZE_SQL: dict[str, str] = {
    "duckdb": "CREATE OR REPLACE TEMP TABLE {name} AS {sql}",
    "spark": "CREATE OR REPLACE TEMP VIEW {name} AS {sql}",
}

_RAW_REQUEST = tuple(dict.fromkeys(k.request_column for k in KINDS if k.request_column))
_RAW_ACCOUNT = tuple(dict.fromkeys(k.accounts_column for k in KINDS if k.accounts_column))

#: Columns of each source the SQL reads (besides ``ts_ns``/``created_ns``).
REQUEST_COLUMNS: tuple[str, ...] = (
    "account_id",
    "ts",
    *_RAW_REQUEST,
    "response_tokens",
    "reasoning",
)
ACCOUNT_COLUMNS: tuple[str, ...] = ("account_id", "created_at", *_RAW_ACCOUNT)
IDENTIFIER_COLUMNS: tuple[str, ...] = ("account_id", "kind", "value", "ts")

#: The queries :func:`run_aggregation` returns, in order.
OUTPUTS: tuple[str, ...] = ("edges", "account_kinds", "account_activity", "account_attributes")

_BOOL_COLUMNS = frozenset({"reasoning"})
_INT_COLUMNS = frozenset({"response_tokens"})


def _null(column: str) -> str:
    if column in _BOOL_COLUMNS:
        return f"CAST(NULL AS BOOLEAN) AS {column}"
    if column in _INT_COLUMNS:
        return f"CAST(NULL AS BIGINT) AS {column}"
    return f"CAST(NULL AS STRING) AS {column}"


def _select(columns: Sequence[str], present: Collection[str]) -> str:
    return ", ".join(c if c in present else _null(c) for c in columns)


def _time(present: Collection[str], ns_column: str, text_column: str, dialect: str) -> str:
    if ns_column in present:
        return ns_column
    if text_column in present:
        return TS_NS_SQL[dialect].format(x=text_column)
    return "CAST(NULL AS BIGINT)"


def _maps_of(kinds: Sequence[Kind]) -> dict[str, tuple[str | None, str | None]]:
    """Value map name → (request column, accounts column) it reads."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for k in kinds:
        if k.value_map is not None:
            req, acc = out.get(k.value_map, (None, None))
            out[k.value_map] = (req or k.request_column, acc or k.accounts_column)
    return out


def _value(k: Kind, raw: str, alias: str) -> str:
    return k.sql_value(raw, f"{alias}.{k.name}")


def _join(k: Kind, table: str, raw: str) -> str:
    if k.value_map is None:
        return table
    return f"{table} JOIN map_{k.value_map} AS m ON {raw} = m.raw"


def aggregation_sql(
    *,
    settings: IdentifierSettings,
    dialect: str,
    columns: Mapping[str, Collection[str]] | None = None,
) -> dict[str, str]:
    """The stage's SQL, statement name → text, in execution order (module docstring).

    A text starting with ``SELECT`` is a query to fetch (``distinct_<map>``: map it and
    register ``map_<map>``; an :data:`OUTPUTS` name: a result); any other text is a
    statement to execute.  ``columns``: the columns present in each source
    (``requests``, ``accounts``, ``identifiers``; default: every column the SQL reads,
    with ``ts``/``created_at`` as text, and no identifiers table).  ``settings`` is
    part of the signature because the value maps depend on it (subnet prefixes); the
    SQL text itself does not.
    """
    del settings  # the normalisation in SQL has no parameters today
    if dialect not in DIALECTS:
        raise LinkageError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    if columns is None:
        columns = {"requests": REQUEST_COLUMNS, "accounts": ACCOUNT_COLUMNS}
    req_cols = set(columns.get("requests", ()))
    acc_cols = set(columns.get("accounts", ()))
    ident_cols = columns.get("identifiers")
    mat = MATERIALIZE_SQL[dialect]
    kinds = [k for k in KINDS if (k.request_column in req_cols) or (k.accounts_column in acc_cols)]
    req_kinds = [k for k in kinds if k.request_column in req_cols]
    out: dict[str, str] = {}

    ts = _time(req_cols, "ts_ns", "ts", dialect)
    out["requests_clean"] = (
        "CREATE OR REPLACE TEMP VIEW requests_clean AS\n"
        f"SELECT {_select(REQUEST_COLUMNS[:1], req_cols)}, {ts} AS ts_ns, "
        f"{_select(REQUEST_COLUMNS[2:], req_cols)}\n"
        "FROM requests_source\n"
        f"WHERE account_id IN (SELECT account_id FROM accounts_source) AND {ts} IS NOT NULL"
    )
    created = _time(acc_cols, "created_ns", "created_at", dialect)
    out["accounts_clean"] = (
        "CREATE OR REPLACE TEMP VIEW accounts_clean AS\n"
        f"SELECT account_id, {created} AS created_ns, {_select(_RAW_ACCOUNT, acc_cols)}\n"
        "FROM accounts_source WHERE account_id IS NOT NULL"
    )
    if ident_cols is not None:
        present = set(ident_cols)
        its = _time(present, "ts_ns", "ts", dialect)
        out["identifiers_clean"] = (
            "CREATE OR REPLACE TEMP VIEW identifiers_clean AS\n"
            f"SELECT account_id, {sql_trim('kind')} AS kind, {sql_trim('value')} AS value, "
            f"{its} AS ts_ns\nFROM identifiers_source\n"
            "WHERE account_id IN (SELECT account_id FROM accounts_source)"
        )

    for col in dict.fromkeys(k.request_column for k in req_kinds):
        out[f"raw_{col}"] = mat.format(
            name=f"raw_{col}",
            sql=(
                f"SELECT account_id, {col} AS raw, COUNT(*) AS n, MIN(ts_ns) AS first_ts, "
                f"MAX(ts_ns) AS last_ts\nFROM requests_clean WHERE {col} IS NOT NULL\n"
                f"GROUP BY account_id, {col}"
            ),
        )

    for name, (req, acc) in _maps_of(kinds).items():
        parts = []
        if req in req_cols:
            parts.append(f"SELECT raw FROM raw_{req}")
        if acc in acc_cols:
            parts.append(f"SELECT {acc} AS raw FROM accounts_clean WHERE {acc} IS NOT NULL")
        out[f"distinct_{name}"] = (
            "SELECT DISTINCT raw FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) AS raw_values"
        )

    for k in req_kinds:
        value = _value(k, "r.raw", "m")
        out[f"pairs_{k.name}"] = mat.format(
            name=f"pairs_{k.name}",
            sql=(
                f"SELECT r.account_id, {value} AS value, CAST(SUM(r.n) AS BIGINT) AS n, "
                "MIN(r.first_ts) AS first_ts, MAX(r.last_ts) AS last_ts\n"
                f"FROM {_join(k, f'raw_{k.request_column} AS r', 'r.raw')}\n"
                f"WHERE {value} IS NOT NULL\nGROUP BY r.account_id, {value}"
            ),
        )

    edge_parts = []
    for k in kinds:
        if not k.edges:
            continue
        sources = []
        if k.request_column in req_cols:
            sources.append(f"SELECT account_id, value, n, first_ts, last_ts FROM pairs_{k.name}")
        if k.accounts_column in acc_cols:
            value = _value(k, f"a.{k.accounts_column}", "m")
            sources.append(
                f"SELECT a.account_id, {value} AS value, CAST(1 AS BIGINT) AS n, "
                "a.created_ns AS first_ts, a.created_ns AS last_ts\n"
                f"FROM {_join(k, 'accounts_clean AS a', f'a.{k.accounts_column}')}\n"
                f"WHERE {value} IS NOT NULL"
            )
        union = "\nUNION ALL\n".join(sources)
        edge_parts.append(
            f"SELECT account_id, '{k.name}' AS kind, value, CAST(SUM(n) AS BIGINT) AS n, "
            "MIN(first_ts) AS first_ts, MAX(last_ts) AS last_ts\n"
            f"FROM (\n{union}\n) AS obs_{k.name}\nGROUP BY account_id, value"
        )
    if ident_cols is not None:
        edge_parts.append(
            f"SELECT account_id, CONCAT('{EXTRA_PREFIX}', kind) AS kind, value, COUNT(*) AS n, "
            "MIN(ts_ns) AS first_ts, MAX(ts_ns) AS last_ts\n"
            "FROM identifiers_clean WHERE kind IS NOT NULL AND value IS NOT NULL\n"
            "GROUP BY account_id, kind, value"
        )
    out["edges"] = (
        "\nUNION ALL\n".join(edge_parts)
        if edge_parts
        else "SELECT CAST(NULL AS STRING) AS account_id, CAST(NULL AS STRING) AS kind, "
        "CAST(NULL AS STRING) AS value, CAST(NULL AS BIGINT) AS n, "
        "CAST(NULL AS BIGINT) AS first_ts, CAST(NULL AS BIGINT) AS last_ts WHERE 1 = 0"
    )
    out["account_kinds"] = (
        "\nUNION ALL\n".join(
            f"SELECT account_id, '{k.name}' AS kind, COUNT(*) AS n_values, MAX(n) AS top_n, "
            f"CAST(SUM(n) AS BIGINT) AS n_rows FROM pairs_{k.name} GROUP BY account_id"
            for k in req_kinds
        )
        if req_kinds
        else "SELECT CAST(NULL AS STRING) AS account_id, CAST(NULL AS STRING) AS kind, "
        "CAST(NULL AS BIGINT) AS n_values, CAST(NULL AS BIGINT) AS top_n, "
        "CAST(NULL AS BIGINT) AS n_rows WHERE 1 = 0"
    )
    out["account_activity"] = (
        "SELECT account_id, COUNT(*) AS n_requests,\n"
        "    COUNT(CASE WHEN response_tokens >= 0 THEN 1 END) AS n_tokens,\n"
        "    CAST(SUM(CASE WHEN response_tokens >= 0 THEN response_tokens END) AS DOUBLE)"
        " AS sum_tokens,\n"
        "    COUNT(reasoning) AS n_prompts,\n"
        "    COUNT(CASE WHEN reasoning THEN 1 END) AS n_reasoning\n"
        "FROM requests_clean GROUP BY account_id"
    )
    attrs, joins = [], []
    for name, (_, acc) in _maps_of(kinds).items():
        extra = [c for c in VALUE_MAPS[name].columns if c not in {k.name for k in KINDS}]
        if not extra or acc not in acc_cols:
            continue
        attrs += [f"m_{name}.{c}" for c in extra]
        joins.append(f"LEFT JOIN map_{name} AS m_{name} ON a.{acc} = m_{name}.raw")
    out["account_attributes"] = (
        f"SELECT {', '.join(['a.account_id', *attrs])}\nFROM accounts_clean AS a"
        + "".join(f"\n{j}" for j in joins)
    )
    return out


Source = pa.Table | str | Path | Sequence[str | Path]


def _map_table(name: str, raw: pa.Table, settings: IdentifierSettings) -> pa.Table:
    """Run value map ``name`` on a one-column table of distinct raw values."""
    values = raw.column("raw").to_pandas(types_mapper=lambda _: pd.StringDtype())
    mapped = VALUE_MAPS[name].many(values.astype("string"), settings)
    cols = {"raw": raw.column("raw").cast(pa.string())}
    for c in VALUE_MAPS[name].columns:
        col = mapped[c]
        if isinstance(col.dtype, pd.BooleanDtype):
            cols[c] = pa.array(col, type=pa.bool_(), from_pandas=True)
        else:
            cols[c] = pa.array(col.astype("string"), type=pa.string(), from_pandas=True)
    return pa.table(cols)


def run_aggregation(
    engine: SqlEngine,
    *,
    requests: Source,
    accounts: Source,
    settings: IdentifierSettings,
    identifiers: Source | None = None,
) -> dict[str, pa.Table]:
    """Run :func:`aggregation_sql` on ``engine``; returns the :data:`OUTPUTS` as Arrow
    tables (rows in no particular order).

    Inputs are Arrow tables or Parquet paths (read lazily by the engine, so data
    larger than memory streams through the aggregation); columns as in the module
    docstring.  The engine must run in UTC (every :mod:`linkage.engine` engine does).
    """
    engine.register("requests_source", requests)
    engine.register("accounts_source", accounts)
    columns = {
        "requests": engine.columns("requests_source"),
        "accounts": engine.columns("accounts_source"),
    }
    if identifiers is not None:
        engine.register("identifiers_source", identifiers)
        columns["identifiers"] = engine.columns("identifiers_source")
    for need, table in (("account_id", "requests"), ("account_id", "accounts")):
        if need not in columns[table]:
            raise LinkageError(f"the {table} input has no {need} column: {columns[table]}")
    out: dict[str, pa.Table] = {}
    for name, sql in aggregation_sql(
        settings=settings, dialect=engine.name, columns=columns
    ).items():
        if not sql.lstrip().startswith("SELECT"):
            engine.execute(sql)
        elif name.startswith("distinct_"):
            map_name = name.removeprefix("distinct_")
            engine.register(f"map_{map_name}", _map_table(map_name, engine.fetch(sql), settings))
        else:
            out[name] = engine.fetch(sql)
    return out
