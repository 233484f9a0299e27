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
  nanoseconds, used as is), the kinds' raw request columns (``ip``,
  ``device_fingerprint``), ``response_tokens``, and the stage's own columns
  ``template``, ``topic`` (strings, or integer codes: see ``coded``) and
  ``reasoning`` (boolean, NULL = no prompt);
- accounts: ``account_id`` (unique), ``created_at`` (or ``created_ns``) and the kinds'
  raw sign-up columns;
- identifiers (optional): ``account_id, kind, value, ts`` (or ``ts_ns``).

Every output names an account by ``account_code``: the accounts input's own
``account_code`` column when it has one (the identifiers stage passes positions,
and then gives requests an ``account_code`` too, -1 = ignore the row), else the
account's rank by ``account_id`` (0-based, the same in every engine).  Requests of
unknown accounts or without a parseable time are dropped.

Statements (in order; see :func:`aggregation_sql`):

1. ``accounts_clean`` (kept), ``requests_clean``, ``identifiers_clean``: account
   codes, times as epoch ns (``ts_ns``, ``created_ns``), the raw columns;
2. ``raw_<column>``: per request column a kind reads, its rows and the sign-up
   column of the same kinds, ``GROUP BY account_code, raw value`` (``n_req`` request
   rows, ``n`` observations, ``first_ts``, ``last_ts``): the raw value is grouped
   first, so normalisation runs on pairs, not rows;
3. ``distinct_<map>``: the distinct raw values a per-distinct-value normaliser
   (:class:`~linkage.identifiers.kinds.ValueMap`) needs; :func:`run_aggregation`
   maps them in Python and registers the result as ``map_<map>`` (``raw`` + one
   column per output);
4. ``pairs_<kind>``: the normalised request pairs of each request kind;
5. outputs (:data:`OUTPUTS`):

   - ``edges``: ``account_code, kind, value, n, first_ts, last_ts``: request pairs and
     sign-up observations (``n = 1`` at ``created_ns``) of every edge kind, plus the
     identifiers table's ``x:<kind>`` rows; times are epoch ns (NULL unknown);
   - ``coded_edges`` (only with ``coded`` columns): the same with ``code`` for ``value``;
   - ``account_kinds``: ``account_code, kind, n_values, top_n, n_rows`` per request
     kind: distinct values, the top value's rows, rows with a known value;
   - ``account_activity``: ``account_code, n_requests, n_tokens, sum_tokens,
     n_prompts, n_reasoning`` (negative token counts are unknown);
   - ``account_attributes``: ``account_code`` plus the value maps' per-account
     attributes (``email_disposable, email_alias, email_freemail``).

Both engines must run with the session time zone set to UTC (naive timestamp text
is read as UTC).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from linkage.engine import Source, SqlEngine
from linkage.errors import LinkageError
from linkage.identifiers.kinds import EXTRA_PREFIX, KINDS, VALUE_MAPS, Kind, sql_trim
from linkage.settings import IdentifierSettings

__all__ = [
    "ACCOUNT_COLUMNS",
    "DIALECTS",
    "DUCKDB_THREADS",
    "IDENTIFIER_COLUMNS",
    "MATERIALIZE_SQL",
    "OUTPUTS",
    "REQUEST_COLUMNS",
    "TS_NS_SQL",
    "aggregation_sql",
    "aggregation_steps",
    "run_aggregation",
]

DIALECTS: tuple[str, ...] = ("duckdb", "spark")

#: DuckDB threads of the identifiers stage (the machine's cores are shared with the
#: numpy template stage's own threads).
DUCKDB_THREADS = 2

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

#: The queries :func:`run_aggregation` returns, in order (plus ``coded_edges`` when
#: columns are given as codes).
OUTPUTS: tuple[str, ...] = ("edges", "account_kinds", "account_activity", "account_attributes")

_BOOL_COLUMNS = frozenset({"reasoning"})
_INT_COLUMNS = frozenset({"response_tokens"})


def _null(column: str) -> str:
    if column in _BOOL_COLUMNS:
        return f"CAST(NULL AS BOOLEAN) AS {column}"
    if column in _INT_COLUMNS:
        return f"CAST(NULL AS BIGINT) AS {column}"
    return f"CAST(NULL AS STRING) AS {column}"


#: An account's code when the accounts input has none: its rank by id (the same in every
#: engine: both order strings by code point).
_ACCOUNT_RANK = "ROW_NUMBER() OVER (ORDER BY account_id) - 1"


def _select(columns: Sequence[str], present: Collection[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{c} AS {c}" if c in present else _null(c) for c in columns)


def _time(
    present: Collection[str], ns_column: str, text_column: str, dialect: str, prefix: str = ""
) -> str:
    if ns_column in present:
        return f"{prefix}{ns_column}"
    if text_column in present:
        return TS_NS_SQL[dialect].format(x=f"{prefix}{text_column}")
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
    coded: Collection[str] = (),
) -> dict[str, str]:
    """The stage's SQL, statement name → text, in execution order (module docstring).

    A text starting with ``SELECT`` is a query to fetch (``distinct_<map>``: map it and
    register ``map_<map>``; an :data:`OUTPUTS` name: a result); any other text is a
    statement to execute.  ``columns``: the columns present in each source
    (``requests``, ``accounts``, ``identifiers``; default: every column the SQL reads,
    with ``ts``/``created_at`` as text, and no identifiers table).  ``coded``: request
    columns of already-normalised kinds (``template``, ``topic``) given as integer codes
    (their edges: output ``coded_edges``, with ``code`` for ``value``).  ``settings`` is
    part of the signature because the value maps depend on it (subnet prefixes); the
    SQL text itself does not.
    """
    del settings  # the normalisation in SQL has no parameters today
    if dialect not in DIALECTS:
        raise LinkageError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    if columns is None:
        columns = {"requests": REQUEST_COLUMNS, "accounts": ACCOUNT_COLUMNS}
    src = _Sources(
        set(columns.get("requests", ())),
        set(columns.get("accounts", ())),
        columns.get("identifiers"),
        set(coded),
        dialect,
    )
    kinds = [k for k in KINDS if (k.request_column in src.req) or (k.accounts_column in src.acc)]
    req_kinds = [k for k in kinds if k.request_column in src.req]
    return {
        **_clean_steps(src),
        **_raw_steps(src, req_kinds),
        **_distinct_steps(src, kinds),
        **_pair_steps(src, req_kinds),
        **_edge_steps(src, kinds),
        **_account_steps(src, kinds, req_kinds),
    }


@dataclass(frozen=True)
class _Sources:
    """The columns each source has, the coded request columns and the SQL dialect."""

    req: set[str]
    acc: set[str]
    ident: Collection[str] | None
    coded: set[str]
    dialect: str

    @property
    def mat(self) -> str:
        return MATERIALIZE_SQL[self.dialect]


def _clean_steps(src: _Sources) -> dict[str, str]:
    """``accounts_clean`` (dense account codes, sign-up time in ns), ``requests_clean``
    (requests of known accounts) and ``identifiers_clean`` (when the table exists)."""
    out: dict[str, str] = {}
    req_cols, acc_cols, dialect, mat = src.req, src.acc, src.dialect, src.mat
    created = _time(acc_cols, "created_ns", "created_at", dialect)
    code = "account_code" if "account_code" in acc_cols else _ACCOUNT_RANK
    out["accounts_clean"] = mat.format(
        name="accounts_clean",
        sql=(
            f"SELECT account_id, {code} AS account_code, {created} AS created_ns, "
            f"{_select(_RAW_ACCOUNT, acc_cols)}\n"
            "FROM accounts_source WHERE account_id IS NOT NULL"
        ),
    )
    ts = _time(req_cols, "ts_ns", "ts", dialect, "r.")
    rest = _select(REQUEST_COLUMNS[2:], req_cols, "r.")
    if "account_code" in req_cols and "account_code" in acc_cols:  # the caller's codes
        out["requests_clean"] = (
            "CREATE OR REPLACE TEMP VIEW requests_clean AS\n"
            f"SELECT r.account_code AS account_code, {ts} AS ts_ns, {rest}\n"
            f"FROM requests_source AS r\nWHERE r.account_code >= 0 AND {ts} IS NOT NULL"
        )
    else:  # requests of unknown accounts drop out of the join; scanned once, kept
        out["requests_clean"] = mat.format(
            name="requests_clean",
            sql=(
                f"SELECT c.account_code AS account_code, {ts} AS ts_ns, {rest}\n"
                "FROM requests_source AS r JOIN accounts_clean AS c "
                "ON r.account_id = c.account_id\n"
                f"WHERE {ts} IS NOT NULL"
            ),
        )
    if src.ident is not None:
        its = _time(set(src.ident), "ts_ns", "ts", dialect, "i.")
        out["identifiers_clean"] = (
            "CREATE OR REPLACE TEMP VIEW identifiers_clean AS\n"
            f"SELECT c.account_code AS account_code, {sql_trim('i.kind')} AS kind, "
            f"{sql_trim('i.value')} AS value, {its} AS ts_ns\n"
            "FROM identifiers_source AS i JOIN accounts_clean AS c "
            "ON i.account_id = c.account_id"
        )
    return out


def _raw_steps(src: _Sources, req_kinds: Sequence[Kind]) -> dict[str, str]:
    """``raw_<column>``: per request column, its rows and the sign-up column of the same
    kinds grouped by account and raw value."""
    # raw pairs: the request rows and the sign-up attribute of the same kinds together
    # (a sign-up is one observation at created_ns), so an edge needs one grouping only;
    # n_req keeps the request rows apart for the per-account request statistics
    out: dict[str, str] = {}
    signup_of: dict[str, str | None] = {}
    for k in req_kinds:
        acc = k.accounts_column if k.accounts_column in src.acc else None
        if signup_of.setdefault(str(k.request_column), acc) != acc:
            raise LinkageError(f"kinds reading {k.request_column} disagree on the sign-up column")
    for col, acc in signup_of.items():
        if col in src.coded and acc is not None:
            raise LinkageError(f"the {col} column cannot be given as codes")
        obs = (
            f"SELECT account_code, {col} AS raw, 1 AS n_req, ts_ns AS ts "
            f"FROM requests_clean WHERE {col} IS NOT NULL"
        )
        if acc is not None:
            obs += (
                f"\nUNION ALL\nSELECT account_code, {acc} AS raw, 0 AS n_req, created_ns AS ts "
                f"FROM accounts_clean WHERE {acc} IS NOT NULL"
            )
        out[f"raw_{col}"] = src.mat.format(
            name=f"raw_{col}",
            sql=(
                "SELECT account_code, raw, CAST(SUM(n_req) AS BIGINT) AS n_req, COUNT(*) AS n, "
                f"MIN(ts) AS first_ts, MAX(ts) AS last_ts\nFROM (\n{obs}\n) AS obs_{col}\n"
                "GROUP BY account_code, raw"
            ),
        )
    return out


def _distinct_steps(src: _Sources, kinds: Sequence[Kind]) -> dict[str, str]:
    """``distinct_<map>``: the distinct raw values each value map normalises (fetched)."""
    out: dict[str, str] = {}
    for name, (req, acc) in _maps_of(kinds).items():
        if req in src.req:  # holds the sign-up values too
            values = f"SELECT raw FROM raw_{req}"
        else:
            values = f"SELECT {acc} AS raw FROM accounts_clean WHERE {acc} IS NOT NULL"
        out[f"distinct_{name}"] = f"SELECT DISTINCT raw FROM (\n{values}\n) AS raw_values"
    return out


def _pair_steps(src: _Sources, req_kinds: Sequence[Kind]) -> dict[str, str]:
    """``pairs_<kind>``: each request kind's normalised ``(account, value)`` pairs."""
    out: dict[str, str] = {}
    for k in req_kinds:
        if k.sql is None and k.value_map is None:  # already normalised: no regrouping
            out[f"pairs_{k.name}"] = (
                f"CREATE OR REPLACE TEMP VIEW pairs_{k.name} AS\n"
                "SELECT account_code, raw AS value, n_req, n, first_ts, last_ts "
                f"FROM raw_{k.request_column}"
            )
            continue
        if k.request_column in src.coded:
            raise LinkageError(f"the {k.request_column} column cannot be given as codes")
        value = _value(k, "r.raw", "m")
        out[f"pairs_{k.name}"] = src.mat.format(
            name=f"pairs_{k.name}",
            sql=(
                f"SELECT r.account_code, {value} AS value, CAST(SUM(r.n_req) AS BIGINT) AS n_req, "
                "CAST(SUM(r.n) AS BIGINT) AS n, MIN(r.first_ts) AS first_ts, "
                "MAX(r.last_ts) AS last_ts\n"
                f"FROM {_join(k, f'raw_{k.request_column} AS r', 'r.raw')}\n"
                f"WHERE {value} IS NOT NULL\nGROUP BY r.account_code, {value}"
            ),
        )
    return out


def _edge_steps(src: _Sources, kinds: Sequence[Kind]) -> dict[str, str]:
    """``edges`` (and ``coded_edges`` for coded columns): every edge kind's pairs, the
    accounts-only kinds and the identifiers table's provider kinds."""
    out: dict[str, str] = {}
    edge_parts: list[str] = []
    coded_parts: list[str] = []
    for k in kinds:
        if not k.edges:
            continue
        if k.request_column in src.coded:  # the caller maps its own codes (no strings here)
            coded_parts.append(
                f"SELECT account_code, '{k.name}' AS kind, value AS code, n, first_ts, "
                f"last_ts FROM pairs_{k.name}"
            )
        elif k.request_column in src.req:  # the pairs hold the sign-up side already
            edge_parts.append(
                f"SELECT account_code, '{k.name}' AS kind, value, n, first_ts, last_ts "
                f"FROM pairs_{k.name}"
            )
        else:
            value = _value(k, f"a.{k.accounts_column}", "m")
            edge_parts.append(
                f"SELECT a.account_code, '{k.name}' AS kind, {value} AS value, COUNT(*) AS n, "
                "MIN(a.created_ns) AS first_ts, MAX(a.created_ns) AS last_ts\n"
                f"FROM {_join(k, 'accounts_clean AS a', f'a.{k.accounts_column}')}\n"
                f"WHERE {value} IS NOT NULL\nGROUP BY a.account_code, {value}"
            )
    if src.ident is not None:
        edge_parts.append(
            f"SELECT account_code, CONCAT('{EXTRA_PREFIX}', kind) AS kind, value, COUNT(*) AS n, "
            "MIN(ts_ns) AS first_ts, MAX(ts_ns) AS last_ts\n"
            "FROM identifiers_clean WHERE kind IS NOT NULL AND value IS NOT NULL\n"
            "GROUP BY account_code, kind, value"
        )
    out["edges"] = (
        "\nUNION ALL\n".join(edge_parts)
        if edge_parts
        else "SELECT CAST(NULL AS BIGINT) AS account_code, CAST(NULL AS STRING) AS kind, "
        "CAST(NULL AS STRING) AS value, CAST(NULL AS BIGINT) AS n, "
        "CAST(NULL AS BIGINT) AS first_ts, CAST(NULL AS BIGINT) AS last_ts WHERE 1 = 0"
    )
    if coded_parts:
        out["coded_edges"] = "\nUNION ALL\n".join(coded_parts)
    return out


def _account_steps(
    src: _Sources, kinds: Sequence[Kind], req_kinds: Sequence[Kind]
) -> dict[str, str]:
    """The per-account outputs: ``account_kinds``, ``account_activity`` and
    ``account_attributes`` (the value maps' extra columns, e.g. the e-mail flags)."""
    out: dict[str, str] = {}
    out["account_kinds"] = (
        "\nUNION ALL\n".join(
            f"SELECT account_code, '{k.name}' AS kind, COUNT(*) AS n_values, "
            "MAX(n_req) AS top_n, CAST(SUM(n_req) AS BIGINT) AS n_rows\n"
            f"FROM pairs_{k.name} WHERE n_req > 0 GROUP BY account_code"
            for k in req_kinds
        )
        if req_kinds
        else "SELECT CAST(NULL AS BIGINT) AS account_code, CAST(NULL AS STRING) AS kind, "
        "CAST(NULL AS BIGINT) AS n_values, CAST(NULL AS BIGINT) AS top_n, "
        "CAST(NULL AS BIGINT) AS n_rows WHERE 1 = 0"
    )
    out["account_activity"] = (
        "SELECT account_code, COUNT(*) AS n_requests,\n"
        "    COUNT(CASE WHEN response_tokens >= 0 THEN 1 END) AS n_tokens,\n"
        "    CAST(SUM(CASE WHEN response_tokens >= 0 THEN response_tokens END) AS DOUBLE)"
        " AS sum_tokens,\n"
        "    COUNT(reasoning) AS n_prompts,\n"
        "    COUNT(CASE WHEN reasoning THEN 1 END) AS n_reasoning\n"
        "FROM requests_clean GROUP BY account_code"
    )
    attrs, joins = [], []
    for name, (_, acc) in _maps_of(kinds).items():
        extra = [c for c in VALUE_MAPS[name].columns if c not in {k.name for k in KINDS}]
        if not extra or acc not in src.acc:
            continue
        attrs += [f"m_{name}.{c}" for c in extra]
        joins.append(f"LEFT JOIN map_{name} AS m_{name} ON a.{acc} = m_{name}.raw")
    out["account_attributes"] = (
        f"SELECT {', '.join(['a.account_code', *attrs])}\nFROM accounts_clean AS a"
        + "".join(f"\n{j}" for j in joins)
    )
    return out


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


def aggregation_steps(
    engine: SqlEngine,
    *,
    requests: Source,
    accounts: Source,
    settings: IdentifierSettings,
    identifiers: Source | None = None,
    coded: Collection[str] = (),
) -> Iterator[tuple[str, str | None]]:
    """Register the inputs and run :func:`aggregation_sql` on ``engine`` step by step.

    Statements are executed and the per-distinct-value maps registered as they come;
    each step yields ``(name, sql)``: ``sql`` is the query of an output (one of
    :data:`OUTPUTS`) for the caller to fetch or write wherever it wants, ``None`` for a
    step already done.  A step's work happens between the caller's requests for the
    next item, so the caller can time each one.  Inputs as in :func:`run_aggregation`.
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
    for table in ("requests", "accounts"):
        if not {"account_id", "account_code"} & set(columns[table]):
            raise LinkageError(f"the {table} input has no account_id column: {columns[table]}")
    for name, sql in aggregation_sql(
        settings=settings, dialect=engine.name, columns=columns, coded=coded
    ).items():
        if not sql.lstrip().startswith("SELECT"):
            engine.execute(sql)
            yield name, None
        elif name.startswith("distinct_"):
            map_name = name.removeprefix("distinct_")
            engine.register(f"map_{map_name}", _map_table(map_name, engine.fetch(sql), settings))
            yield name, None
        else:
            yield name, sql


def run_aggregation(
    engine: SqlEngine,
    *,
    requests: Source,
    accounts: Source,
    settings: IdentifierSettings,
    identifiers: Source | None = None,
    coded: Collection[str] = (),
) -> dict[str, pa.Table]:
    """Run :func:`aggregation_sql` on ``engine``; returns the :data:`OUTPUTS` as Arrow
    tables (rows in no particular order).

    Inputs are Arrow tables or Parquet paths (read lazily by the engine, so data
    larger than memory streams through the aggregation); columns as in the module
    docstring.  ``coded``: request columns of already-normalised kinds given as integer
    codes (``template``, ``topic``: the template stage's codes, grouped as integers, far
    cheaper than the id strings); their edges come out as ``coded_edges`` with the
    ``code`` in place of the value.  The engine must run in UTC (every
    :mod:`linkage.engine` engine does).  :func:`aggregation_steps` runs the same steps
    for a caller that writes the outputs instead of fetching them.
    """
    steps = aggregation_steps(
        engine,
        requests=requests,
        accounts=accounts,
        settings=settings,
        identifiers=identifiers,
        coded=coded,
    )
    return {name: engine.fetch(sql) for name, sql in steps if sql is not None}
