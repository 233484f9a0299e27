"""Units split at below-null edges (provably no loss) and Leiden's warm start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.detect import detect_clusters
from linkage.detect.leiden import plan_units, previous_membership
from linkage.errors import LinkageError, RunError
from linkage.graph import AccountGraph, build_graph
from linkage.pipeline import read_previous, run_detect
from linkage.settings import DetectSettings, GraphSettings

from .test_leiden import _world

COLUMNS = ["account_id", "kind", "value", "n"]


def _bridged(seed: int) -> pd.DataFrame:
    """40 families (card + home device) whose first members also use one popular browser
    build -- mostly their own one -- with 300 strangers: one connected component, glued
    by edges far below the null."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(40):
        for j in range(3):
            a = f"f{f}_{j}"
            rows += [(a, "payment", f"card{f}", 1), (a, "device", f"home{f}", 1)]
            rows.append((a, "email", f"{a}@x", 1))
        rows.append((f"f{f}_0", "user_agent", "popular", 1))
        rows.append((f"f{f}_0", "user_agent", f"own{f}", int(rng.integers(20, 40))))
    for i in range(300):
        rows.append((f"s{i}", "user_agent", "popular", int(rng.integers(1, 5))))
        rows += [(f"s{i}", "email", f"s{i}@x", 1), (f"s{i}", "ip", f"nat{i % 2}", 1)]
    return pd.DataFrame(rows, columns=COLUMNS)


def _graph(e: pd.DataFrame) -> AccountGraph:
    return build_graph(e, pd.Index(sorted(e["account_id"].unique())), settings=GraphSettings())


def _same(a, b) -> bool:
    return a.cluster_ids == b.cluster_ids and bool((a.cluster == b.cluster).all())


@pytest.mark.parametrize("null", ["information", "graph"])
@pytest.mark.parametrize("seed", [0, 1])
def test_below_null_bridges_split_the_component_and_change_no_cluster(null: str, seed: int) -> None:
    ag = _graph(_bridged(seed))
    on, off = DetectSettings(null=null), DetectSettings(null=null, split_below_null=False)
    plan, comps = plan_units(ag, settings=on), plan_units(ag, settings=off)
    assert len(comps.sizes) == 1 and plan.n_cross > 0
    assert len(plan.sizes) == 41 and int(plan.whole.sum()) == 40  # families need no Leiden
    a, b = detect_clusters(ag, settings=on), detect_clusters(ag, settings=off)
    assert _same(a, b) and len(a.cluster_ids) == 40


@pytest.mark.parametrize("null", ["information", "graph"])
def test_cross_edges_are_below_the_null_and_strengths_are_kept(null: str) -> None:
    ag = _graph(_bridged(2))
    s = DetectSettings(null=null)
    plan = plan_units(ag, settings=s)
    src, dst, w, n = ag.src, ag.dst, ag.weight, ag.n_accounts
    k = np.bincount(src, weights=w, minlength=n) + np.bincount(dst, weights=w, minlength=n)
    cross = plan.unit[src] != plan.unit[dst]
    assert cross.sum() == plan.n_cross > 0
    assert (w[cross] <= s.resolution * k[src[cross]] * k[dst[cross]] / (2 * plan.w_total)).all()
    # inside a unit every account keeps its full strength: intra edges + 2 x its self-loop
    i = plan.intra
    k_unit = np.bincount(src[i], weights=w[i], minlength=n)
    k_unit += np.bincount(dst[i], weights=w[i], minlength=n) + 2 * plan.loop
    np.testing.assert_allclose(k_unit, k)
    np.testing.assert_allclose(plan.m_unit.sum(), w.sum())


def test_splitting_any_partition_along_units_never_lowers_modularity() -> None:
    """The lemma behind the units: every pair between two units is at or below the null."""
    ag = _graph(_bridged(3))
    s = DetectSettings(null="graph")  # the null's total is the graph's: igraph's own modularity
    plan = plan_units(ag, settings=s)
    g = ag.graph
    rng = np.random.default_rng(0)
    for n_comm in (1, 2, 5, 30):
        memb = rng.integers(0, n_comm, ag.n_accounts)
        split = pd.factorize(pd.Series(memb).astype(str) + "/" + pd.Series(plan.unit).astype(str))[
            0
        ]
        q = g.modularity(memb.tolist(), weights="weight", resolution=s.resolution)
        q_split = g.modularity(split.tolist(), weights="weight", resolution=s.resolution)
        assert q_split >= q - 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", ["igraph", "leidenalg"])
def test_warm_start_from_own_run_reproduces_clusters(seed: int, backend: str) -> None:
    ag = _graph(_world(seed))
    s = DetectSettings(backend=backend)
    cold = detect_clusters(ag, settings=s, seed=seed)
    from_communities = detect_clusters(ag, settings=s, seed=seed, initial=cold.community)
    from_clusters = detect_clusters(ag, settings=s, seed=seed, initial=cold.cluster)
    assert _same(cold, from_communities) and _same(cold, from_clusters)


def test_warm_start_with_new_accounts_reuses_the_old_membership() -> None:
    e = _world(4)
    ag = _graph(e)
    s = DetectSettings()
    cold = detect_clusters(ag, settings=s)
    frame = cold.membership_frame(ag.accounts)
    old = {k: set(v) for k, v in frame.dropna().groupby("cluster_id")["account_id"]}
    # a day later: a new member of planted group 0, a new group of three, two strangers
    new = [("g0_new", "payment", "card0", 1), ("g0_new", "device", "dev0", 2)]
    new += [(f"n{i}", kind, f"{kind}-n", 1) for i in range(3) for kind in ("payment", "device")]
    new += [(f"u_new{i}", "ip", "nat1", 3) for i in range(2)]
    e2 = pd.concat([e, pd.DataFrame(new, columns=COLUMNS)], ignore_index=True)
    ag2 = _graph(e2)
    initial = previous_membership(ag2.accounts, frame[["account_id", "cluster_id"]])
    assert (initial[ag2.accounts.get_indexer(["g0_new", "n0", "u_new0"])] == -1).all()
    warm = detect_clusters(ag2, settings=s, initial=initial)
    fresh = detect_clusters(ag2, settings=s)
    assert _same(warm, fresh)
    got = warm.membership_frame(ag2.accounts).dropna()
    clusters = {frozenset(v) for _, v in got.groupby("cluster_id")["account_id"]}
    g0 = next(c for c in old.values() if "g0_0" in c)
    assert frozenset(g0 | {"g0_new"}) in clusters
    assert frozenset({"n0", "n1", "n2"}) in clusters
    assert all(frozenset(c) in clusters for c in old.values() if c != g0)


def test_previous_membership_maps_ids_and_marks_new_accounts() -> None:
    prev = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "gone"],
            "cluster_id": pd.array(["x", "x", None, "y", "z"], dtype="string"),
        }
    )
    got = previous_membership(pd.Index(["a", "b", "c", "d", "new"]), prev)
    assert got[0] == got[1] >= 0 and got[3] >= 0 and got[3] != got[0]
    assert got[2] == -1 and got[4] == -1


def test_warm_start_of_the_wrong_length_is_refused() -> None:
    ag = _graph(_world(0))
    with pytest.raises(LinkageError, match="warm start"):
        detect_clusters(ag, settings=DetectSettings(), initial=np.zeros(3, dtype=np.int64))


@pytest.mark.slow
def test_detect_previous_run_dir_warm_start_end_to_end(tmp_path: Path) -> None:
    tiny = Path(__file__).resolve().parents[2] / "examples" / "tiny"
    run_detect(tiny, tmp_path / "day1")
    prev = read_previous(tmp_path / "day1")
    assert (tmp_path / "day1" / "communities.parquet").is_file()
    assert set(prev.columns) == {"account_id", "cluster_id"} and prev["cluster_id"].notna().any()
    run_detect(tiny, tmp_path / "day2", previous=tmp_path / "day1")
    day1 = (tmp_path / "day1" / "accounts.csv").read_text()
    assert day1 == (tmp_path / "day2" / "accounts.csv").read_text()
    with pytest.raises(RunError, match="earlier `linkage detect` run"):
        read_previous(tmp_path / "nothing")
