"""Louvain separates two dense groups that one shared identifier joins."""

from __future__ import annotations

import numpy as np
import pytest

from linkage.baselines import run_baseline
from linkage.baselines._common import build_incidence
from linkage.baselines.louvain import BLOCK_SCORE, account_projection, degree_cap
from tests.baselines._graphs import edges_frame, features_frame, two_cliques


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separates_two_cliques_joined_by_one_edge(seed: int) -> None:
    edges, features, left, right = two_cliques(8)
    out = run_baseline("louvain", edges=edges, features=features, seed=seed)
    out = out.set_index("account_id")
    assert out.loc[left, "cluster_id"].nunique() == 1
    assert out.loc[right, "cluster_id"].nunique() == 1
    assert out.loc[left[0], "cluster_id"] != out.loc[right[0], "cluster_id"]
    assert out.loc[left + right, "cluster_id"].notna().all()
    # dense (3 shared identifiers per pair, a bit more for the bridge) and 8 strong
    assert (out.loc[left + right, "score"] >= BLOCK_SCORE).all()
    assert (out.loc[left + right, "level"] == "block").all()


def test_projection_counts_shared_values_and_caps_supernodes() -> None:
    edges = edges_frame(
        [
            ("x", "ip", "1"),
            ("y", "ip", "1"),
            ("x", "device", "d"),
            ("y", "device", "d"),
            ("z", "device", "d"),
            ("x", "email", "solo@example.com"),
            # a supernode shared by all four accounts
            ("w", "subnet", "s"),
            ("x", "subnet", "s"),
            ("y", "subnet", "s"),
            ("z", "subnet", "s"),
        ]
    )
    inc = build_incidence(edges, features_frame(["w", "x", "y", "z"]))
    a, b, w = account_projection(inc, max_degree=3)
    names = inc.accounts
    got = {(names[i], names[j]): wt for i, j, wt in zip(a, b, w, strict=True)}
    assert got == {("x", "y"): 2.0, ("x", "z"): 1.0, ("y", "z"): 1.0}
    a, b, w = account_projection(inc, max_degree=4)
    got = {(names[i], names[j]): wt for i, j, wt in zip(a, b, w, strict=True)}
    assert got[("x", "y")] == 3.0
    assert got[("w", "z")] == 1.0


def test_weak_pair_is_not_blocked() -> None:
    edges = edges_frame([("p", "ip", "1"), ("q", "ip", "1")])
    out = run_baseline("louvain", edges=edges, features=features_frame(["p", "q", "r"]))
    out = out.set_index("account_id")
    # one shared value, two accounts: 0.5 * 0.5
    assert out.loc["p", "score"] == pytest.approx(0.25)
    assert out.loc["p", "level"] == "clear"
    assert out.loc["r", "score"] == 0.0


def test_pair_budget_lowers_the_cap_by_whole_degrees() -> None:
    deg = np.array([1, 2, 2, 3, 5, 5, 2000])  # pairs: 1, 1, 3, 10, 10 (2000 is over the cap)
    assert degree_cap(deg, max_degree=1000, max_pairs=100) == 1000
    assert degree_cap(deg, max_degree=1000, max_pairs=25) == 1000  # exactly fits
    assert degree_cap(deg, max_degree=1000, max_pairs=24) == 4  # both degree-5 ids dropped
    assert degree_cap(deg, max_degree=1000, max_pairs=4) == 2
    assert degree_cap(deg, max_degree=1000, max_pairs=0) == 1
