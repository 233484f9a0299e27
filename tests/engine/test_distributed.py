"""Leiden per unit on Spark executors gives the in-process partition, unit by unit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import linkage.detect.leiden as leiden_module
from linkage.detect import detect_clusters
from linkage.detect.distributed import leiden_units, unit_edges, units_to_solve
from linkage.engine.spark import SparkEngine
from linkage.graph.build import AccountGraph
from linkage.settings import DetectSettings, Settings

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny"


def _planted_graph(seed: int = 3) -> AccountGraph:
    """Seven components of 2-4 planted groups (dense strong edges inside, sparse weak ones
    between), plus pairs and triangles: several units need Leiden, some are settled whole."""
    rng = np.random.default_rng(seed)
    edges: dict[tuple[int, int], float] = {}
    n = 0
    for _ in range(7):
        groups = []
        for size in rng.integers(5, 12, size=rng.integers(2, 5)):
            groups.append(np.arange(n, n + size))
            n += size
        verts = np.concatenate(groups)
        for g in groups:
            for i in g:
                for j in g:
                    if i < j and rng.random() < 0.6:
                        edges[(i, j)] = float(rng.uniform(1.0, 4.0))
        for i in verts:  # weak links between groups, plus a chain so it is one component
            for j in verts:
                if i < j and (i, j) not in edges and rng.random() < 0.04:
                    edges[(i, j)] = float(rng.uniform(0.05, 0.8))
        for a, b in itertools.pairwise(groups):
            edges.setdefault((int(a[-1]), int(b[0])), 0.3)
    for size in (2, 2, 3, 3):
        for i in range(n, n + size - 1):
            edges[(i, i + 1)] = 2.0
        n += size
    keys = sorted(edges)
    src = np.array([k[0] for k in keys], dtype=np.int64)
    dst = np.array([k[1] for k in keys], dtype=np.int64)
    return AccountGraph(
        accounts=pd.Index([f"a{i:04d}" for i in range(n)], dtype="string"),
        incidence=pd.DataFrame({"acc": [], "ident": [], "kind": [], "value": [], "a": [], "n": []}),
        identifiers=pd.DataFrame({"kind": [], "value": [], "df": [], "idf": [], "weight": []}),
        n_reference=n,
        src=src,
        dst=dst,
        weight=np.array([edges[k] for k in keys]),
    )


def _in_process(
    ag: AccountGraph, settings: DetectSettings, seed: int, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[float, int, np.ndarray]]:
    """What detect_clusters itself hands Leiden and gets back, unit by unit (in its order):
    (resolution, edge count, membership).  The real solver runs; it is only watched."""
    calls: list[tuple[float, int, np.ndarray]] = []
    real = leiden_module.leiden_membership

    def watched(sub, **kw):
        memb = real(sub, **kw)
        calls.append((kw["resolution"], sub.ecount(), np.asarray(memb)))
        return memb

    with monkeypatch.context() as m:
        m.setattr(leiden_module, "leiden_membership", watched)
        detect_clusters(ag, settings=settings, seed=seed)
    return calls


def _assert_same_partitions(
    spark_engine: SparkEngine,
    ag: AccountGraph,
    settings: DetectSettings,
    seed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    want = _in_process(ag, settings, seed, monkeypatch)
    plan, got = leiden_units(spark_engine.session, ag, settings=settings, seed=seed)
    units = units_to_solve(plan)
    assert len(units) == len(want)
    table = unit_edges(ag, plan, settings=settings).to_pandas()
    frame = got.to_pandas()
    for u, (res, n_edges, memb) in zip(units, want, strict=True):
        rows = table[table["unit"] == u]
        assert len(rows) == n_edges
        assert rows["resolution"].iloc[0] == res  # the same float, not a close one
        mine = frame[frame["unit"] == u]
        assert mine["vertex"].tolist() == np.flatnonzero(plan.unit == u).tolist()
        assert np.array_equal(mine["community"].to_numpy(), memb), f"unit {u}"
    return len(units)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "split"), [("igraph", True), ("leidenalg", True), ("igraph", False)]
)
def test_spark_leiden_equals_in_process_per_unit(
    spark_engine: SparkEngine, backend: str, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ag = _planted_graph()
    settings = DetectSettings(null="graph", resolution=1.0, backend=backend, split_below_null=split)
    n_units = _assert_same_partitions(spark_engine, ag, settings, 7, monkeypatch)
    assert n_units >= 4  # several units really went through Leiden on the executors


@pytest.mark.slow
def test_spark_leiden_on_the_tiny_example(
    spark_engine: SparkEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkage.pipeline import prepare

    settings = Settings()
    ag = prepare(TINY, settings=settings).graph
    n_units = _assert_same_partitions(spark_engine, ag, settings.detect, settings.seed, monkeypatch)
    assert n_units >= 1
