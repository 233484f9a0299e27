"""The compiled FRAUDAR kernels give exactly the blocks of the ``heapq`` peel they replaced.

The oracle is the previous implementation, kept verbatim in ``_reference_fraudar``.
Graphs have many ties in weighted degree (unit weights, few distinct weights,
identifiers of equal degree): the peel breaks them by node number, and so must the
compiled one.
"""

from __future__ import annotations

import numpy as np
import pytest

from linkage.baselines import run_baseline
from linkage.baselines._common import Incidence, build_incidence
from linkage.baselines._peel import EdgeLists
from linkage.baselines.fraudar import (
    _densest_core,
    column_weights,
    dense_blocks,
    fraudar_blocks,
    greedy_peel,
    prune_below,
)
from tests.baselines import _reference_fraudar as ref
from tests.baselines._graphs import planted_block


def _simple_graph(seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Random simple undirected graph (no loops, no repeated pair), shuffled edge order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    m = int(rng.integers(1, 4 * n))
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    key = np.unique(np.minimum(src, dst)[keep] * n + np.maximum(src, dst)[keep])
    s, d = key // n, key % n
    if seed % 2:
        s, d = d, s
    perm = rng.permutation(len(s))
    return n, s[perm], d[perm]


def _weights(kind: str, m: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "unit":
        return np.ones(m)
    if kind == "thirds":  # few distinct values, not exact in binary: ties and rounding
        return rng.integers(1, 4, m) / 3.0
    return rng.random(m) + 0.1


def _same_blocks(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.density == y.density  # bit for bit
        assert x.accounts.tolist() == y.accounts.tolist()
        assert x.identifiers.tolist() == y.identifiers.tolist()


@pytest.mark.parametrize("weights", ["unit", "thirds", "random"])
def test_peel_and_pruning_match_the_heapq_peel(weights: str) -> None:
    decisive_ties = 0
    for seed in range(60):
        n, s, d = _simple_graph(seed)
        w = _weights(weights, len(s), np.random.default_rng(seed))
        nodes, g = greedy_peel(n, s, d, w)
        ref_nodes, ref_g = ref.greedy_peel(n, s, d, w)
        assert nodes.tolist() == ref_nodes.tolist()
        assert g == ref_g
        # ties decide: the same graph numbered backwards peels to another set
        flip_nodes, _ = ref.greedy_peel(n, n - 1 - s, n - 1 - d, w)
        decisive_ties += sorted((n - 1 - flip_nodes).tolist()) != ref_nodes.tolist()
        bar = float(w.sum()) / n
        for b in (0.5 * bar, bar, 2 * bar):
            assert (prune_below(n, s, d, w, b) == ref.prune_below(n, s, d, w, b)).all()
        core = _densest_core(EdgeLists(n, s, d, w), 0.8 * bar, np.ones(len(s), dtype=bool))
        assert (core == ref._densest_core(n, s, d, w, 0.8 * bar)).all()
    if weights != "random":
        assert decisive_ties > 0


def test_pruning_is_exact_at_the_bar() -> None:
    # centre 0 with leaves 1..k (weights multiples of 0.1, inexact in binary); strong
    # leaves also hang on a hub (weight 10) and survive, weak ones only have the
    # centre and go.  The bar is set to the centre's exact degree over its strong
    # edges (a sequential sum in edge order): it must stay at that bar and go one ulp
    # above, although its running degree (total minus the weak weights) differs in
    # the last bits.
    rng = np.random.default_rng(3)
    checked = 0
    for trial in range(60):
        k = int(rng.integers(8, 60))
        w_leaf = rng.integers(1, 4, k) / 10.0
        strong = rng.random(k) < 0.5
        strong[:4] = True
        leaves = np.arange(1, k + 1)
        hub = k + 1
        s = np.concatenate([np.zeros(k, dtype=np.int64), np.full(strong.sum(), hub)])
        d = np.concatenate([leaves, leaves[strong]])
        w = np.concatenate([w_leaf, np.full(strong.sum(), 10.0)])
        bar = 0.0
        for x in w_leaf[strong]:
            bar += x  # the centre's exact degree over its surviving edges
        total_minus_weak = float(w_leaf.sum() - w_leaf[~strong].sum())
        checked += total_minus_weak != bar
        for b, centre_stays in ((bar, True), (np.nextafter(bar, np.inf), False)):
            got = prune_below(k + 2, s, d, w, b)
            assert (got == ref.prune_below(k + 2, s, d, w, b)).all(), trial
            assert got[:k][strong].all() == centre_stays, trial
            assert not got[:k][~strong].any()
    assert checked > 0  # some running degrees were off in the last bits


def _bipartite(seed: int) -> Incidence:
    """Skewed random incidence with planted blocks: identifiers of equal degree abound."""
    rng = np.random.default_rng(seed)
    n_acc, n_id = int(rng.integers(50, 400)), int(rng.integers(30, 300))
    m = int(rng.integers(n_acc, 4 * n_acc))
    rows = rng.integers(0, n_acc, m)
    cols = np.minimum((rng.pareto(1.2, m) * 3).astype(np.int64), n_id - 1)
    for _ in range(int(rng.integers(1, 4))):  # dense blocks, some overlapping
        acc = rng.choice(n_acc, int(rng.integers(4, 30)), replace=False)
        ids = rng.choice(n_id, int(rng.integers(3, 15)), replace=False)
        rows = np.concatenate([rows, np.repeat(acc, len(ids))])
        cols = np.concatenate([cols, np.tile(ids, len(acc))])
    pair = np.unique(rows * n_id + cols)
    return Incidence(
        accounts=np.array([f"a{i:04d}" for i in range(n_acc)], dtype=object),
        identifiers=np.array([f"ip\x1f{j:04d}" for j in range(n_id)], dtype=object),
        rows=pair // n_id,
        cols=pair % n_id,
    )


@pytest.mark.parametrize("weighting", ["log", "none"])
def test_blocks_match_on_generated_incidences(weighting: str) -> None:
    n_blocks = 0
    for seed in range(25):
        inc = _bipartite(seed)
        deg = inc.identifier_degree()
        assert len(np.unique(deg)) < inc.n_identifiers  # equal weights: ties
        blocks, whole = fraudar_blocks(inc, weighting=weighting)
        ref_blocks, ref_whole = ref.fraudar_blocks(inc, weighting=weighting)
        assert whole == ref_whole
        _same_blocks(blocks, ref_blocks)
        n_blocks += len(blocks)
    assert n_blocks >= 25


@pytest.mark.parametrize("seed", range(4))
def test_blocks_match_on_planted_worlds(seed: int) -> None:
    edges, features, _ = planted_block(n_popular=seed % 3, seed=seed)
    inc = build_incidence(edges, features)
    blocks, whole = fraudar_blocks(inc)
    ref_blocks, ref_whole = ref.fraudar_blocks(inc)
    assert whole == ref_whole
    _same_blocks(blocks, ref_blocks)
    assert run_baseline("fraudar", edges=edges, features=features)["score"].max() == 1.0


def test_dense_blocks_take_linking_identifiers_directly() -> None:
    inc = _bipartite(7)
    deg = inc.identifier_degree()
    keep = deg[inc.cols] >= 2
    used, cols_c = np.unique(inc.cols[keep], return_inverse=True)
    w = column_weights(deg[used])[cols_c]
    blocks, _ = dense_blocks(inc.n_accounts, inc.rows[keep], cols_c, w)
    want, _ = fraudar_blocks(inc)
    assert [used[b.identifiers].tolist() for b in blocks] == [b.identifiers.tolist() for b in want]
    assert [b.accounts.tolist() for b in blocks] == [b.accounts.tolist() for b in want]
