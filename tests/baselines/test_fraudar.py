"""FRAUDAR finds planted dense blocks; its column weights defuse popular identifiers."""

from __future__ import annotations

import numpy as np
import pytest

from linkage.baselines import run_baseline
from linkage.baselines._common import build_incidence
from linkage.baselines.fraudar import (
    column_weights,
    fraudar_blocks,
    greedy_peel,
    prune_below,
)
from tests.baselines._graphs import planted_block


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_planted_block(seed: int) -> None:
    edges, features, farm = planted_block(seed=seed)
    out = run_baseline("fraudar", edges=edges, features=features).set_index("account_id")
    found = set(out.index[out["level"] == "block"])
    assert found == set(farm)
    assert (out.loc[farm, "score"] == 1.0).all()
    assert out.loc[farm, "cluster_id"].nunique() == 1
    others = out.drop(index=farm)
    assert (others["score"] < 1.0).all()


def test_log_weighting_stops_popular_identifiers_dominating() -> None:
    # ten identifiers shared by every account (NAT, the most common device …)
    edges, features, farm = planted_block(block_accounts=20, block_identifiers=8, n_popular=10)
    inc = build_incidence(edges, features)
    weighted, _ = fraudar_blocks(inc, weighting="log")
    plain, _ = fraudar_blocks(inc, weighting="none")
    assert set(inc.accounts[weighted[0].accounts]) == set(farm)
    # without the paper's weights the popular identifiers swallow everybody
    assert len(plain[0].accounts) == inc.n_accounts
    out = run_baseline("fraudar", edges=edges, features=features).set_index("account_id")
    top = out["score"] == out["score"].max()
    assert set(out.index[top]) == set(farm)


def test_column_weights() -> None:
    w = column_weights(np.array([1, 10, 10_000]))
    assert w == pytest.approx(1 / np.log(np.array([6, 15, 10_005])))
    assert w[0] > w[1] > w[2]
    with pytest.raises(ValueError):
        column_weights(np.array([1]), "sqrt")


def test_greedy_peel_on_k4_with_tail() -> None:
    # K4 on 0..3, a path 3-4-5-6: densest set is the K4 (6 edges / 4 nodes)
    src = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5])
    dst = np.array([1, 2, 3, 2, 3, 3, 4, 5, 6])
    nodes, g = greedy_peel(8, src, dst, np.ones(len(src)))  # node 7 isolated
    assert nodes.tolist() == [0, 1, 2, 3]
    assert g == pytest.approx(1.5)


@pytest.mark.parametrize("seed", range(5))
def test_core_pruning_keeps_the_peel_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 80, 240
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    key = np.unique(np.minimum(src, dst)[keep] * n + np.maximum(src, dst)[keep])
    src, dst = key // n, key % n
    w = rng.random(len(src)) + 0.1
    full_nodes, full_g = greedy_peel(n, src, dst, w)
    bar = float(w.sum()) / n
    core = prune_below(n, src, dst, w, bar)
    assert core.sum() < len(core)  # pruning did something
    inside = np.unique(np.concatenate([src[core], dst[core]]))
    loc = np.searchsorted(inside, [src[core], dst[core]])
    core_nodes, core_g = greedy_peel(len(inside), loc[0], loc[1], w[core])
    assert core_g == pytest.approx(full_g)
    assert inside[core_nodes].tolist() == full_nodes.tolist()


def test_stops_when_nothing_is_denser_than_the_graph() -> None:
    edges, features, _ = planted_block(block_accounts=0, block_identifiers=0, seed=4)
    inc = build_incidence(edges, features)
    blocks, whole = fraudar_blocks(inc, k=5)
    assert len(blocks) <= 5
    assert all(b.density >= whole for b in blocks)
