"""Test oracle: the FRAUDAR peel as it was before it was compiled (commit eba99ab).

Pure Python (``heapq`` with lazy updates) and vectorised numpy pruning, kept
verbatim so the compiled kernels can be checked against it block for block, bit
for bit.  Not used by the package.
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy.sparse import csr_matrix

from linkage.baselines._common import Incidence
from linkage.baselines.fraudar import MAX_BLOCKS, DenseBlock


def column_weights(degree: np.ndarray, weighting: str = "log") -> np.ndarray:
    """Per-identifier edge weight: ``1/log(deg + 5)`` (``"log"``) or 1 (``"none"``)."""
    degree = np.asarray(degree, dtype=np.float64)
    if weighting == "log":
        return 1.0 / np.log(degree + 5.0)
    if weighting == "none":
        return np.ones_like(degree)
    raise ValueError(f"unknown weighting {weighting!r}; use 'log' or 'none'")


def prune_below(
    n_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bar: float,
    alive: np.ndarray | None = None,
) -> np.ndarray:
    """Mask of the edges inside the ``bar``-core: the largest subgraph whose nodes all
    keep weighted degree ≥ ``bar`` (vectorised iterative pruning).

    Exactness: while a node outside the core remains, the greedy peel's minimum is
    such a node (core nodes keep degree ≥ ``bar``), so the peel removes the whole
    outside first and then runs exactly as on the core; and every removal of a node
    of degree ``< bar`` raises a density that is already ``≥ bar``, so when the
    peel's best density is ``≥ bar`` its best set lies in the core.  Peeling the
    core thus gives the same block whenever it clears ``bar``.  ``alive`` (edge
    mask) restricts the start, e.g. to a core of a lower bar.
    """
    alive = np.ones(len(src), dtype=bool) if alive is None else alive.copy()
    while alive.any():
        deg = np.bincount(src[alive], weight[alive], minlength=n_nodes) + np.bincount(
            dst[alive], weight[alive], minlength=n_nodes
        )
        low = deg < bar
        drop = alive & (low[src] | low[dst])
        if not drop.any():
            break
        alive &= ~drop
    return alive


def _core_density(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, mask: np.ndarray) -> float:
    """Density ``f/|S|`` of the subgraph spanned by the masked edges."""
    if not mask.any():
        return 0.0
    n = len(np.unique(np.concatenate([src[mask], dst[mask]])))
    return float(weight[mask].sum()) / n


def _densest_core(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, bar: float
) -> np.ndarray:
    """Edge mask of the core the greedy peel can be restricted to.

    The peel passes through every ``b``-core (see :func:`prune_below`), so its best
    density is at least any core's density; raising the bar to that density and
    pruning again converges to a small core holding the peel's answer whenever that
    answer clears ``bar``.  A relative margin of 1e-9 absorbs rounding.
    """
    eps = 1e-9
    core = prune_below(n_nodes, src, dst, weight, bar * (1 - eps))
    while core.any():
        g = _core_density(src, dst, weight, core)
        if g <= bar * (1 + eps):
            break
        bar = g
        core = prune_below(n_nodes, src, dst, weight, bar * (1 - eps), core)
    return core


def greedy_peel(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, float]:
    """Densest subgraph by greedy peeling of an undirected weighted graph.

    ``src``/``dst``/``weight`` list each edge once; ``n_nodes`` counts every node
    (isolated ones included, they are peeled first).  Returns the nodes of the best
    intermediate set (sorted) and its density ``f(S)/|S|``.  Ties are broken by
    node number, so the result is deterministic.
    """
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    sym = csr_matrix(
        (
            np.concatenate([weight, weight]),
            (np.concatenate([src, dst]), np.concatenate([dst, src])),
        ),
        shape=(n_nodes, n_nodes),
    )
    sym.sort_indices()
    indptr = sym.indptr.tolist()
    indices = sym.indices.tolist()
    data = sym.data.tolist()
    prio = np.asarray(sym.sum(axis=1)).ravel().tolist()
    heap = list(zip(prio, range(n_nodes), strict=True))
    heapq.heapify(heap)
    removed = bytearray(n_nodes)
    f = float(np.sum(weight))
    size = n_nodes
    best_g, best_k = f / size, 0
    order: list[int] = []
    pop, push, append = heapq.heappop, heapq.heappush, order.append
    k = 0
    while heap:
        p, v = pop(heap)
        if removed[v] or p != prio[v]:
            continue  # stale entry (lazy update)
        removed[v] = 1
        append(v)
        f -= p
        size -= 1
        k += 1
        for i in range(indptr[v], indptr[v + 1]):
            u = indices[i]
            if not removed[u]:
                nu = prio[u] - data[i]
                prio[u] = nu
                push(heap, (nu, u))
        if size and f > best_g * size:
            best_g, best_k = f / size, k
    return np.sort(np.asarray(order[best_k:], dtype=np.int64)), float(best_g)


def fraudar_blocks(
    inc: Incidence, *, k: int = MAX_BLOCKS, weighting: str = "log"
) -> tuple[list[DenseBlock], float]:
    """Up to ``k`` dense blocks of the account × identifier graph.

    Returns the blocks (in the order found) and the whole graph's density, the
    stopping bar.
    """
    n_acc = inc.n_accounts
    deg = inc.identifier_degree()
    keep = deg[inc.cols] >= 2
    rows, cols = inc.rows[keep], inc.cols[keep]
    # compact identifier numbering (only linking identifiers become nodes)
    used, cols_c = np.unique(cols, return_inverse=True)
    w = column_weights(deg[used], weighting)[cols_c]
    n_nodes = n_acc + len(used)
    whole = float(w.sum()) / n_nodes if n_nodes else 0.0
    blocks: list[DenseBlock] = []
    alive = np.ones(len(rows), dtype=bool)
    for _ in range(k):
        if not alive.any():
            break
        src, dst, wt = rows[alive], cols_c[alive] + n_acc, w[alive]
        core = _densest_core(n_nodes, src, dst, wt, whole)
        if not core.any():
            break
        # peel the core only, renumbered compactly (same order, so same tie-breaks)
        nodes_in = np.unique(np.concatenate([src[core], dst[core]]))
        loc = np.searchsorted(nodes_in, [src[core], dst[core]])
        local, g = greedy_peel(len(nodes_in), loc[0], loc[1], wt[core])
        nodes = nodes_in[local]
        if g <= 0 or g < whole:
            break
        acc = nodes[nodes < n_acc]
        ids = nodes[nodes >= n_acc] - n_acc
        inside = np.isin(rows, acc) & np.isin(cols_c, ids) & alive
        if not inside.any():
            break
        alive &= ~inside
        blocks.append(DenseBlock(accounts=acc, identifiers=used[ids], density=g))
    return blocks, whole
