"""The Spark engine: the aggregation SQL on a Spark session, local or on a cluster.

:class:`SparkEngine` implements :class:`linkage.engine.SqlEngine` on a
``pyspark.sql.SparkSession``: inputs become temporary views (an Arrow table through
``createDataFrame`` with Arrow enabled, Parquet paths through ``spark.read.parquet``,
read lazily by the executors), statements run through ``spark.sql`` and results come
back to the driver as Arrow record batches.

Where the session comes from, in order: ``session=`` (an existing session, e.g. the one
``spark-submit`` or a notebook made; it is never stopped by :meth:`SparkEngine.close`),
else the active session of this process, else a new one on ``master=``, the
``SPARK_MASTER`` environment variable, or ``local[2]``.  A new local session binds to
the loopback address, runs its Python workers on this interpreter and logs errors only.

The session time zone is always UTC (``CAST(ts AS DATE)`` and ``EXTRACT(HOUR FROM ts)``
depend on it), and :meth:`SparkEngine.fetch` hands timestamps back as naive UTC
``timestamp[us]`` (DuckDB's ``TIMESTAMP``) and every field as nullable, so both engines
return the same Arrow schema for the same query (see docs/SCALING.md).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from linkage.errors import LinkageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "DEFAULT_MASTER",
    "SparkEngine",
    "SparkUnavailableError",
    "arrow_from_spark",
    "arrow_to_spark",
    "spark_dialect",
    "spark_session",
]

#: Master of a new session when neither ``master=`` nor ``SPARK_MASTER`` names one.
DEFAULT_MASTER = "local[2]"

# Errors only: Spark's default profile logs INFO/WARN lines on every start and stage.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""

_lock = threading.Lock()


class SparkUnavailableError(LinkageError):
    """PySpark is installed but no Spark session can be started (no Java runtime, a bad
    ``JAVA_HOME``, an unreachable master)."""


def _log4j_file() -> str:
    path = Path(tempfile.gettempdir()) / "linkage-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        path.write_text(_LOG4J2)
    return str(path)


def _java_hint() -> str:
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.exists():
            return f"JAVA_HOME={home} has no bin/java: point it at a JRE 17+ or unset it"
        return f"JAVA_HOME={home}: check that {java} runs (Spark 4 needs Java 17+)"
    if shutil.which("java") is None:
        return "no `java` on PATH: install a JRE 17+ (apt-get install default-jre-headless)"
    return "check `java -version` (Spark 4 needs Java 17+) and the master URL"


def spark_session(
    *,
    master: str | None = None,
    app_name: str = "linkage",
    config: Mapping[str, str] | None = None,
) -> SparkSession:
    """The active Spark session of this process, or a new one configured for linkage.

    A new session: ``master`` (default ``SPARK_MASTER`` or :data:`DEFAULT_MASTER`),
    UTC session time zone, Arrow transfers, no UI or progress bar, errors-only logging,
    and ``config`` on top.  An already active session is returned as it is (its master
    and settings were chosen by whoever started it), after setting its time zone to UTC.
    Raises :class:`SparkUnavailableError` with what to fix when Spark cannot start.
    """
    from pyspark.sql import SparkSession

    # PySpark 4.3 warns on every pandas conversion that pandas 3 is "not yet fully
    # supported"; the Arrow paths used here (createDataFrame, toArrow, applyInPandas)
    # are covered by tests/engine against DuckDB and the in-process Leiden
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            active.conf.set("spark.sql.session.timeZone", "UTC")
            return active
        master = master or os.environ.get("SPARK_MASTER") or DEFAULT_MASTER
        local = master.startswith("local")
        if local:
            # bind to loopback (no address guessing from the host name) and run the Python
            # workers on this interpreter, which has linkage and its dependencies installed
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        log4j = f"-Dlog4j.configurationFile=file:{_log4j_file()} -Duser.timezone=UTC"
        conf: dict[str, str] = {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.extraJavaOptions": log4j,
            "spark.executor.extraJavaOptions": log4j,
        }
        if local:
            conf |= {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                # a handful of cores: the default 200 shuffle partitions are pure overhead
                "spark.sql.shuffle.partitions": "8",
            }
        conf |= dict(config or {})
        builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # the JVM did not start: no Java, bad JAVA_HOME, ...
            raise SparkUnavailableError(
                f"cannot start Spark (master {master}): {_java_hint()}; "
                f"or run with the embedded engine (--engine duckdb). Cause: {exc}"
            ) from exc
        session.sparkContext.setLogLevel("ERROR")
        return session


def arrow_to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    """A Spark DataFrame holding ``table`` (shipped with Arrow; large string and binary
    columns, which Spark lacks, as their plain types)."""
    fields = []
    for f in table.schema:
        if pa.types.is_large_string(f.type):
            f = f.with_type(pa.string())
        elif pa.types.is_large_binary(f.type):
            f = f.with_type(pa.binary())
        fields.append(f)
    table = table.cast(pa.schema(fields))
    try:
        return spark.createDataFrame(table)  # PySpark 4: Arrow tables directly
    except TypeError:  # PySpark 3.5: through pandas (Arrow-enabled conversion)
        return spark.createDataFrame(table.to_pandas())


def arrow_from_spark(frame: DataFrame) -> pa.Table:
    """Collect ``frame`` to the driver as one Arrow table (DuckDB's types: naive UTC
    timestamps, nullable fields)."""
    if hasattr(frame, "toArrow"):  # PySpark 4
        table = frame.toArrow()
    else:  # PySpark 3.5
        batches = frame._collect_as_arrow()  # type: ignore[operator]  # 3.5 only: 4.x's types lack it
        schema = None if batches else pa.Schema.from_pandas(frame.limit(0).toPandas())
        table = pa.Table.from_batches(batches, schema=schema)
    return _portable(table)


def _portable(table: pa.Table) -> pa.Table:
    """The Arrow schema DuckDB gives for the same query: Spark's ``TIMESTAMP`` arrives as
    ``timestamp[us, tz=UTC]``, DuckDB's as naive ``timestamp[us]`` holding UTC (same
    instants, same numbers: the zone is dropped), and every field nullable (Spark marks
    counts and literals NOT NULL, DuckDB never does)."""
    fields = []
    for field in table.schema:
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            field = field.with_type(pa.timestamp(field.type.unit))
        fields.append(field.with_nullable(True))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema == table.schema else table.cast(schema)


#: Dialect hook: a temp view made by :meth:`SparkEngine.execute` is an intermediate result
#: the aggregation reads more than once (``requests_clean``, ``raw_<column>``,
#: ``pairs_<kind>``; DuckDB makes them temp tables, ``MATERIALIZE_SQL``), so it is
#: cached (lazily, memory then disk) instead of recomputed from the source on every read.
_VIEW = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+VIEW\s+(\w+)", re.IGNORECASE)


_ROW_NUMBER = re.compile(r"ROW_NUMBER\s*\(\s*\)\s*OVER\s*\(", re.IGNORECASE)


def spark_dialect(sql: str) -> str:
    """Dialect hook: ``sql`` as DuckDB types it.  ``ROW_NUMBER() OVER (...)`` is ``INT`` on
    Spark and ``BIGINT`` on DuckDB, so it is cast to ``BIGINT`` (the only such difference
    in the aggregation SQL; the tests compare every output schema with DuckDB's)."""
    out, pos = [], 0
    for m in _ROW_NUMBER.finditer(sql):
        if m.start() < pos:  # inside an OVER clause already wrapped
            continue
        depth, end = 1, m.end()
        while end < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        out += [sql[pos : m.start()], f"CAST({sql[m.start() : end]} AS BIGINT)"]
        pos = end
    return "".join([*out, sql[pos:]])


class SparkEngine:
    """Spark SQL as a :class:`linkage.engine.SqlEngine` (local ``local[2]`` by default).

    ``session``: use this session (never stopped here); otherwise the active one, or a new
    one from :func:`spark_session` (``master``, ``app_name``, ``config``), which
    :meth:`close` stops when this engine started it.  ``cache_views``: cache the temp
    views :meth:`execute` creates (the aggregation's intermediate results).
    """

    name = "spark"

    def __init__(
        self,
        *,
        master: str | None = None,
        app_name: str = "linkage",
        config: Mapping[str, str] | None = None,
        session: SparkSession | None = None,
        cache_views: bool = True,
    ) -> None:
        if session is None:
            from pyspark.sql import SparkSession

            existed = SparkSession.getActiveSession() is not None
            session = spark_session(master=master, app_name=app_name, config=config)
            self._owns = not existed
        else:
            session.conf.set("spark.sql.session.timeZone", "UTC")
            self._owns = False
        self._spark: SparkSession | None = session
        self._views: set[str] = set()
        self._cache_views = cache_views

    @property
    def session(self) -> SparkSession:
        if self._spark is None:
            raise LinkageError("this Spark engine is closed")
        return self._spark

    def register(self, name: str, source: pa.Table | str | Path | Sequence[str | Path]) -> None:
        """``source`` as temp view ``name``: an Arrow table (shipped through Arrow) or
        Parquet path(s)/glob(s), which the executors read themselves (local paths, or
        object storage URLs such as ``s3a://bucket/requests/*.parquet``)."""
        spark = self.session
        if isinstance(source, pa.Table):
            frame = self._from_arrow(source)
        else:
            paths = [source] if isinstance(source, (str, Path)) else list(source)
            if not paths:
                raise LinkageError(f"no Parquet paths given for {name!r}")
            frame = spark.read.parquet(*[str(p) for p in paths])
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def _from_arrow(self, table: pa.Table) -> DataFrame:
        return arrow_to_spark(self.session, table)

    def execute(self, sql: str) -> None:
        """Run a statement; a temp view it creates is cached (see :data:`_VIEW`)."""
        self.session.sql(spark_dialect(sql))
        view = _VIEW.match(sql) if self._cache_views else None
        if view is not None:
            self.session.catalog.cacheTable(view.group(1))
            self._views.add(view.group(1))

    def fetch(self, sql: str) -> pa.Table:
        """Run ``sql`` and collect its result to the driver as one Arrow table."""
        return arrow_from_spark(self.session.sql(spark_dialect(sql)))

    def frame(self, sql: str) -> DataFrame:
        """The Spark DataFrame of ``sql``, not collected (to write it out from the cluster)."""
        return self.session.sql(spark_dialect(sql))

    def columns(self, name: str) -> list[str]:
        return list(self.session.table(name).columns)

    def close(self) -> None:
        """Drop the views this engine registered or cached (their cache with them); stop
        the session if it started it."""
        spark, self._spark = self._spark, None
        if spark is None:
            return
        for view in sorted(self._views):
            spark.catalog.dropTempView(view)
        self._views.clear()
        if self._owns:
            spark.stop()

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
