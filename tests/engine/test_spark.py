"""The Spark engine runs the identifiers SQL to the same tables as DuckDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from linkage.engine import SqlEngine, open_engine
from linkage.engine.spark import SparkEngine
from linkage.identifiers.sql import OUTPUTS, run_aggregation
from linkage.settings import IdentifierSettings

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny"


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in table.column_names])


def _both(spark_engine: SparkEngine, **inputs: object) -> tuple[dict, dict]:
    settings = IdentifierSettings()
    duck = open_engine("duckdb")
    try:
        want = run_aggregation(duck, settings=settings, **inputs)  # type: ignore[arg-type]
    finally:
        duck.close()
    got = run_aggregation(spark_engine, settings=settings, **inputs)  # type: ignore[arg-type]
    return want, got


def _assert_same(want: dict[str, pa.Table], got: dict[str, pa.Table]) -> None:
    assert list(got) == list(want) == list(OUTPUTS)
    for name in OUTPUTS:
        assert got[name].schema == want[name].schema, name
        assert want[name].num_rows > 0, name  # a comparison of empty tables proves nothing
        # exact: strings, counts, epoch-ns times (microsecond-precise in both engines)
        assert _sorted(got[name]).equals(_sorted(want[name])), name


@pytest.mark.slow
def test_tiny_example_aggregates_as_on_duckdb(spark_engine: SparkEngine) -> None:
    # timestamps as ISO text: each engine's own text → epoch-ns parse is exercised
    text = pcsv.ConvertOptions(column_types={"ts": pa.string(), "created_at": pa.string()})
    requests = pcsv.read_csv(TINY / "requests.csv", convert_options=text)
    accounts = pcsv.read_csv(TINY / "accounts.csv", convert_options=text)
    want, got = _both(spark_engine, requests=requests, accounts=accounts)
    _assert_same(want, got)
    # the times are real instants, not all NULL
    first = got["edges"].column("first_ts").drop_null()
    assert len(first) == got["edges"].num_rows - got["edges"].column("first_ts").null_count
    assert pa.compute.min(first).as_py() > 1_700_000_000 * 10**9


@pytest.mark.slow
def test_parquet_world_aggregates_as_on_duckdb(
    spark_engine: SparkEngine, small_world: Path
) -> None:
    # Parquet paths: each engine scans the files itself (the cluster path)
    want, got = _both(
        spark_engine,
        requests=str(small_world / "requests.parquet"),
        accounts=[small_world / "accounts.parquet"],
        identifiers=small_world / "identifiers.parquet",
    )
    _assert_same(want, got)
    kinds = set(got["edges"].column("kind").to_pylist())
    assert {"ip", "subnet", "device", "email"} <= kinds
    assert any(k.startswith("x:") for k in kinds)  # the identifiers table's rows


def test_open_engine_spark_shares_the_session_and_speaks_utc(spark_engine: SparkEngine) -> None:
    engine = open_engine("spark")
    assert isinstance(engine, SparkEngine) and isinstance(engine, SqlEngine)
    assert engine.name == "spark"
    assert engine.session is spark_engine.session
    engine.register("t", pa.table({"ts": ["2026-01-05T23:30:00-02:00", "2026-01-05 08:10:00"]}))
    assert engine.columns("t") == ["ts"]
    got = engine.fetch(
        "SELECT CAST(ts AS TIMESTAMP) AS t, CAST(CAST(ts AS TIMESTAMP) AS DATE) AS d, "
        "EXTRACT(HOUR FROM CAST(ts AS TIMESTAMP)) AS h FROM t ORDER BY t"
    )
    assert got.schema.field("t").type == pa.timestamp("us")  # naive UTC, as DuckDB's
    assert [str(x) for x in got.column("t").to_pylist()] == [
        "2026-01-05 08:10:00",
        "2026-01-06 01:30:00",
    ]
    assert [str(x) for x in got.column("d").to_pylist()] == ["2026-01-05", "2026-01-06"]
    assert got.column("h").to_pylist() == [8, 1]
    engine.close()
    engine.close()  # idempotent
    # closing an engine that did not start the session leaves it (and its views) usable
    assert spark_engine.fetch("SELECT 1 AS one").column("one").to_pylist() == [1]


def test_no_java_is_a_linkage_error_with_what_to_do(tmp_path: Path) -> None:
    no_java = tmp_path / "no-java"
    no_java.mkdir()
    env = {**os.environ, "JAVA_HOME": str(no_java)}
    env.pop("SPARK_HOME", None)
    code = (
        "from linkage.errors import LinkageError\n"
        "from linkage.engine import open_engine\n"
        "try:\n"
        "    open_engine('spark')\n"
        "except LinkageError as exc:\n"
        "    print('LinkageError:', exc)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "LinkageError: cannot start Spark" in res.stdout
    assert f"JAVA_HOME={no_java} has no bin/java" in res.stdout
    assert "--engine duckdb" in res.stdout


@pytest.mark.slow
def test_cli_engine_flag_runs_the_pipeline_on_spark(
    spark_engine: SparkEngine, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from linkage.cli import app

    runner = CliRunner()
    outs = {}
    for engine in ("duckdb", "spark"):
        outs[engine] = tmp_path / engine
        res = runner.invoke(
            app, ["detect", str(TINY), "--out", str(outs[engine]), "--engine", engine]
        )
        assert res.exit_code == 0, res.output
    # the run is the same whichever engine aggregated the requests
    for name in ("accounts.csv", "clusters.jsonl"):
        assert (outs["spark"] / name).read_bytes() == (outs["duckdb"] / name).read_bytes()
    bad = runner.invoke(app, ["detect", str(TINY), "--out", str(tmp_path / "x"), "--engine", "pg"])
    assert bad.exit_code != 0
    # the engine was the shared session's: the fixture's session is still up
    assert spark_engine.fetch("SELECT 2 AS two").column("two").to_pylist() == [2]


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_help_names_the_engines(engine: str) -> None:
    from typer.testing import CliRunner

    from linkage.cli import app

    out = CliRunner().invoke(app, ["detect", "--help"]).output
    assert "--engine" in out and engine in out


def test_dialect_hook_types_row_number_as_duckdb_does() -> None:
    from linkage.engine.spark import spark_dialect

    sql = "SELECT ROW_NUMBER() OVER (ORDER BY lower(a), b) - 1 AS c, x FROM t WHERE (y)"
    assert spark_dialect(sql) == (
        "SELECT CAST(ROW_NUMBER() OVER (ORDER BY lower(a), b) AS BIGINT) - 1 AS c, x "
        "FROM t WHERE (y)"
    )
    assert spark_dialect("SELECT 1") == "SELECT 1"
