"""SQL engines that run the aggregation stage: DuckDB embedded (default), Spark beyond one machine.

The identifiers stage states its request aggregation as SQL text that both engines
accept (:mod:`linkage.identifiers.sql`); an engine only has to register inputs as
named relations, run statements and hand back Arrow tables.  Nothing here is a
home-made engine: :class:`DuckDBEngine` wraps an in-process DuckDB connection,
:class:`linkage.engine.spark.SparkEngine` a (local or cluster) Spark session.

Every engine runs with its session time zone set to UTC (``CAST(ts AS DATE)`` and
``EXTRACT(HOUR FROM ts)`` depend on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import pyarrow as pa

from linkage.errors import LinkageError

__all__ = ["ENGINES", "DuckDBEngine", "EngineName", "SqlEngine", "open_engine"]

EngineName = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")

Source: TypeAlias = pa.Table | str | Path | Sequence[str | Path]


@runtime_checkable
class SqlEngine(Protocol):
    """What the aggregation stage needs from a SQL engine."""

    name: str

    def register(self, name: str, source: Source) -> None:
        """Make ``source`` (an Arrow table, or Parquet path / glob / list of paths, read
        lazily) queryable as the temporary view ``name`` (replacing an earlier one)."""

    def execute(self, sql: str) -> None:
        """Run a statement (``CREATE OR REPLACE TEMP VIEW ...``) for its effect."""

    def fetch(self, sql: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    def columns(self, name: str) -> list[str]:
        """Column names of a registered relation."""

    def close(self) -> None:
        """Release the engine's resources (idempotent)."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBEngine:
    """DuckDB in process: the default engine (out of core: a query whose state outgrows
    ``memory_limit`` spills to ``temp_directory``)."""

    name = "duckdb"

    def __init__(
        self,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | Path | None = None,
    ) -> None:
        import duckdb

        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        if threads is not None:
            self._con.execute(f"SET threads = {int(threads)}")
        if memory_limit is not None:
            self._con.execute(f"SET memory_limit = {_quote(memory_limit)}")
        if temp_directory is not None:
            self._con.execute(f"SET temp_directory = {_quote(str(temp_directory))}")
        self._frames: dict[str, pa.Table] = {}

    @property
    def connection(self):  # the duckdb connection (duckdb is imported lazily)
        return self._con

    def register(self, name: str, source: Source) -> None:
        if isinstance(source, pa.Table):
            raw = f"__{name}_arrow"
            self._con.register(raw, source)
            self._frames[name] = source  # keep it alive as long as the view
            self._con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {raw}")
            return
        paths = [source] if isinstance(source, (str, Path)) else list(source)
        scan = "read_parquet([" + ", ".join(_quote(str(p)) for p in paths) + "])"
        self._con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {scan}")

    def execute(self, sql: str) -> None:
        self._con.execute(sql)

    def fetch(self, sql: str) -> pa.Table:
        rel = self._con.sql(sql)
        return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    def columns(self, name: str) -> list[str]:
        return [row[0] for row in self._con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()]

    def close(self) -> None:
        self._frames.clear()
        self._con.close()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(name: str = "duckdb", **options: object) -> SqlEngine:
    """An engine by name: ``duckdb`` (embedded, default) or ``spark`` (PySpark; local mode
    unless ``master=`` or ``SPARK_MASTER`` says otherwise; needs ``pip install
    'linkage[spark]'`` and a Java runtime)."""
    if name == "duckdb":
        return DuckDBEngine(**options)  # type: ignore[arg-type]
    if name == "spark":
        try:
            from linkage.engine.spark import SparkEngine
        except ImportError as exc:  # pyspark not installed
            raise LinkageError(
                "the spark engine needs PySpark and a Java runtime: "
                "pip install 'linkage[spark]' (and e.g. apt-get install default-jre-headless)"
            ) from exc
        return SparkEngine(**options)  # type: ignore[arg-type]
    raise LinkageError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
