"""Detection invariants that hold on any graph (a small graph zoo)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.detect import detect_clusters
from linkage.graph import build_graph
from linkage.settings import DetectSettings, GraphSettings


def _world(seed: int) -> pd.DataFrame:
    """Planted groups (cards, devices) inside a sea of NAT strangers."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(6):
        size = int(rng.integers(3, 12))
        for i in range(size):
            rows.append((f"g{g}_{i}", "payment", f"card{g}", 1))
            rows.append((f"g{g}_{i}", "device", f"dev{g}", 3))
    for i in range(600):
        rows.append((f"u{i}", "ip", f"nat{i % 3}", int(rng.integers(1, 9))))
        rows.append((f"u{i}", "email", f"u{i}@mail", 1))
    for g in range(6):
        rows.append((f"g{g}_0", "ip", "nat0", 2))
    return pd.DataFrame(rows, columns=["account_id", "kind", "value", "n"])


def _clusters(
    e: pd.DataFrame, accounts: pd.Index, backend: str = "leidenalg", seed: int = 0
) -> dict[str, set[str]]:
    ag = build_graph(e, accounts, settings=GraphSettings(), seed=seed)
    cl = detect_clusters(ag, settings=DetectSettings(backend=backend), seed=seed)
    m = cl.membership_frame(ag.accounts).dropna(subset=["cluster_id"])
    return {k: set(v) for k, v in m.groupby("cluster_id")["account_id"]}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", ["leidenalg", "igraph"])
def test_planted_groups_found_and_strangers_released(seed: int, backend: str) -> None:
    e = _world(seed)
    acc = pd.Index(sorted(e["account_id"].unique()))
    clusters = _clusters(e, acc, backend)
    groups = e[e["kind"] == "payment"].groupby("value")["account_id"].agg(set)
    found = list(clusters.values())
    for members in groups:
        assert members in found  # each planted group is exactly one cluster
    clustered = set().union(*found) if found else set()
    strangers = {a for a in acc if a.startswith("u")}
    assert len(clustered & strangers) <= 0.02 * len(strangers)


@pytest.mark.parametrize("seed", [0, 5])
def test_row_permutation_gives_same_clusters(seed: int) -> None:
    e = _world(seed)
    acc = pd.Index(sorted(e["account_id"].unique()))
    a = _clusters(e, acc)
    b = _clusters(e.sample(frac=1.0, random_state=seed), pd.Index(acc.to_list()[::-1]))
    assert a == b


def test_unrelated_account_changes_no_cluster() -> None:
    e = _world(7)
    acc = pd.Index(sorted(e["account_id"].unique()))
    before = _clusters(e, acc)
    extra = pd.concat([e, pd.DataFrame([("zz_new", "email", "new@x", 1)], columns=e.columns)])
    after = _clusters(extra, acc.append(pd.Index(["zz_new"])))
    assert before == after


def test_cluster_ids_are_content_ids() -> None:
    e = _world(1)
    acc = pd.Index(sorted(e["account_id"].unique()))
    a = _clusters(e, acc, seed=0)
    b = _clusters(e, acc, seed=0)
    assert a == b and all(k.startswith("c") for k in a)


def test_empty_graph() -> None:
    e = pd.DataFrame(columns=["account_id", "kind", "value", "n"])
    ag = build_graph(e, pd.Index(["a", "b"]), settings=GraphSettings())
    cl = detect_clusters(ag, settings=DetectSettings())
    assert (cl.cluster == -1).all() and cl.cluster_ids == []


@pytest.mark.parametrize("seed", [0, 3])
def test_no_split_bound_is_never_worse_than_leiden(seed: int) -> None:
    """Components kept whole by the bound have modularity >= any partition Leiden finds."""
    fam = [
        (f"h{i}_{j}", kind, f"{kind}{i}", 1)
        for i in range(40)
        for j in range(3 + i % 3)
        for kind in ("card", "home")
    ]
    e = pd.concat([_world(seed), pd.DataFrame(fam, columns=["account_id", "kind", "value", "n"])])
    acc = pd.Index(sorted(e["account_id"].unique()))
    ag = build_graph(e, acc, settings=GraphSettings(), seed=seed)
    g = ag.graph
    s = DetectSettings()
    w = np.asarray(g.es["weight"])
    total = w.sum()
    comps = g.connected_components()
    checked = 0
    for verts in comps:
        if len(verts) < 3:
            continue
        sub = g.induced_subgraph(verts)
        m_c = float(np.sum(sub.es["weight"]))
        if min(sub.es["weight"]) < s.resolution * m_c**2 / total:
            continue  # not covered by the bound
        res = s.resolution * m_c / total
        best = sub.community_leiden(
            objective_function="modularity", weights="weight", resolution=res, n_iterations=-1
        )
        whole = sub.modularity([0] * sub.vcount(), weights="weight", resolution=res)
        assert whole >= sub.modularity(best.membership, weights="weight", resolution=res) - 1e-9
        checked += 1
    assert checked >= 3
