"""Leiden per unit on Spark executors.

:func:`linkage.detect.detect_clusters` splits the account graph into units
(:func:`linkage.detect.leiden.plan_units`: the connected components of the above-null
edges; without edges below the null, the connected components) and solves every unit
that needs Leiden on its own subgraph, with the same seed and a resolution scaled by
the unit's share of the null.  Units are independent, so a unit is what a cluster can
ship to an executor: :func:`leiden_on_spark` groups an edge table by unit and runs the
project's own per-unit solver (:func:`linkage.detect.leiden.leiden_membership`) inside
``applyInPandas``; each group builds its subgraph exactly as the in-process loop does
(vertices in ascending id order, the unit's edges in their graph order, then the
self-loops that stand for its dropped cross edges, in vertex order; the driver's
resolution for the unit), so the same seed gives the same membership, unit by unit.

What runs where: the graph and the plan are built on the driver (the projection is
O(accounts) edges after sparsification); the executors get the edge rows of the units
Leiden must solve, one unit per group (a unit must fit one executor's memory: the
largest unit of a world is its giant component of look-alike traffic), and send back
one ``(unit, vertex, community)`` row per vertex of those units.  The release of weakly
tied members and the relabelling stay on the driver (:func:`detect_clusters`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from linkage.detect.leiden import Plan, plan_units
from linkage.graph.build import AccountGraph
from linkage.settings import DetectSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "MEMBERSHIP_SCHEMA",
    "leiden_on_spark",
    "leiden_units",
    "solve_unit",
    "unit_edges",
    "units_to_solve",
]

#: Spark schema of :func:`leiden_on_spark`'s output (community is local to the unit).
MEMBERSHIP_SCHEMA = "unit long, vertex long, community long"

_EMPTY = pa.schema([("unit", pa.int64()), ("vertex", pa.int64()), ("community", pa.int64())])


def units_to_solve(plan: Plan) -> np.ndarray:
    """Units Leiden must solve (three or more accounts, not settled whole by the no-split
    bound), largest first: the order of ``detect_clusters``' loop."""
    big = np.flatnonzero((plan.sizes >= 3) & ~plan.whole)
    return big[np.argsort(-plan.sizes[big], kind="stable")]


def unit_edges(ag: AccountGraph, plan: Plan, *, settings: DetectSettings) -> pa.Table:
    """The subgraphs of the units to solve as one edge table: ``unit, pos, src, dst,
    weight, resolution``.

    ``pos`` orders a unit's rows as ``detect_clusters`` builds its subgraph (graph edges
    by position, then self-loops by vertex; a self-loop has ``src == dst``);
    ``resolution`` is the unit's scaled resolution, computed here on the driver so the
    executors use the very same float.
    """
    solve = units_to_solve(plan)
    unit = plan.unit
    intra = plan.intra
    sel = intra[np.isin(unit[ag.src[intra]], solve)]
    loop_v = np.flatnonzero((plan.loop > 0) & np.isin(unit, solve))
    if plan.w_total > 0:
        res = settings.resolution * plan.m_unit / plan.w_total
    else:
        res = np.full(len(plan.sizes), settings.resolution)
    u = np.r_[unit[ag.src[sel]], unit[loop_v]].astype(np.int64)
    return pa.table(
        {
            "unit": pa.array(u),
            "pos": pa.array(np.r_[sel, len(ag.src) + loop_v].astype(np.int64)),
            "src": pa.array(np.r_[ag.src[sel], loop_v].astype(np.int64)),
            "dst": pa.array(np.r_[ag.dst[sel], loop_v].astype(np.int64)),
            "weight": pa.array(np.r_[ag.weight[sel], plan.loop[loop_v]].astype(np.float64)),
            "resolution": pa.array(res[u].astype(np.float64)),
        }
    )


def solve_unit(edges: pd.DataFrame, *, settings: DetectSettings, seed: int) -> pd.DataFrame:
    """Leiden on the one unit whose rows of :func:`unit_edges` are given: one ``unit,
    vertex, community`` row per vertex (``community`` local to the unit, from 0).

    Runs wherever it is called: in process, or on an executor inside ``applyInPandas``.
    """
    import igraph as ig

    from linkage.detect.leiden import leiden_membership

    if not len(edges):
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in ("unit", "vertex", "community")})
    edges = edges.sort_values("pos", kind="stable")
    src = edges["src"].to_numpy(np.int64)
    dst = edges["dst"].to_numpy(np.int64)
    verts = np.unique(np.r_[src, dst])  # ascending: detect_clusters' vertex order
    sub = ig.Graph(
        n=len(verts),
        edges=zip(
            np.searchsorted(verts, src).tolist(), np.searchsorted(verts, dst).tolist(), strict=True
        ),
        directed=False,
    )
    sub.es["weight"] = edges["weight"].to_numpy(np.float64).tolist()
    res = float(edges["resolution"].iloc[0])
    memb = leiden_membership(sub, resolution=res, settings=settings, seed=seed)
    return pd.DataFrame(
        {
            "unit": np.full(len(verts), int(edges["unit"].iloc[0]), dtype=np.int64),
            "vertex": verts,
            "community": np.asarray(memb, dtype=np.int64),
        }
    )


def leiden_on_spark(edges: DataFrame, *, settings: DetectSettings, seed: int) -> DataFrame:
    """Leiden per unit on the executors: ``edges`` (a Spark DataFrame with the columns of
    :func:`unit_edges`) grouped by ``unit``; returns the lazy DataFrame ``unit, vertex,
    community``."""
    cols = ("unit", "pos", "src", "dst", "weight", "resolution")

    def solve(frame: pd.DataFrame) -> pd.DataFrame:
        return solve_unit(frame, settings=settings, seed=seed)

    return edges.select(*cols).groupBy("unit").applyInPandas(solve, schema=MEMBERSHIP_SCHEMA)


def leiden_units(
    spark: SparkSession, ag: AccountGraph, *, settings: DetectSettings, seed: int = 0
) -> tuple[Plan, pa.Table]:
    """Plan the units of ``ag`` on the driver, solve the ones that need Leiden on Spark,
    collect the result: the plan and an Arrow table ``unit, vertex, community`` sorted by
    unit and vertex."""
    from linkage.engine.spark import arrow_from_spark, arrow_to_spark

    plan = plan_units(ag, settings=settings)
    table = unit_edges(ag, plan, settings=settings)
    if table.num_rows == 0:
        return plan, _EMPTY.empty_table()
    frame = arrow_to_spark(spark, table)  # grouping by unit spreads the units over tasks
    result = arrow_from_spark(leiden_on_spark(frame, settings=settings, seed=seed))
    return plan, result.sort_by([("unit", "ascending"), ("vertex", "ascending")])
