"""One Spark session for every test in tests/engine (starting a JVM costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linkage.engine.spark import SparkEngine

#: Execution settings for test-sized inputs (they change how Spark runs a query, not what
#: it computes): compiling every query to Java (whole-stage codegen) and re-planning it
#: at run time (adaptive execution) cost more than the few thousand rows take, and two
#: shuffle partitions match local[2].  This halves the tests' Spark time.
SMALL_DATA = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
}


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[SparkEngine]:
    """A local[2] Spark engine that owns its session: the session stops with it.

    Other engines opened while it lives (``open_engine("spark")``, the pipeline's own)
    reuse its session and leave it running when they close.
    """
    engine = SparkEngine(master="local[2]", app_name="linkage-tests", config=SMALL_DATA)
    yield engine
    engine.close()
