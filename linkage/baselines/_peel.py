"""Compiled kernels of the FRAUDAR peer: core pruning and the greedy peel.

They replace a pure-Python ``heapq`` peel and a numpy pruning loop and return
**bit-identical** results: every floating-point quantity the decisions depend on
is computed with the same operations in the same order as before.

- Pruning keeps a node while its weighted degree is ≥ the bar.  The degree that
  decides is the exact one of the vectorised loop, ``np.bincount(src, w) +
  np.bincount(dst, w)`` over the live edges (``bincount`` adds sequentially, in
  edge order); see :func:`_prune` for why one removal at a time reaches the
  same core as rounds of removals.
- The peel's starting degrees come from ``np.add.reduceat`` over the symmetric
  CSR rows sorted by neighbour (what ``scipy.sparse.csr_matrix.sum(axis=1)``
  computes), its starting mass from ``np.sum(weight)``; both are computed by
  numpy, outside the kernels (see :func:`peel_inputs`).
- The peel removes, at each step, the live node with the smallest ``(degree,
  node number)`` pair.  A lazy ``heapq`` of ``(degree, node)`` tuples pops
  exactly that node (stale entries are skipped), so an indexed heap with
  decrease-key, which holds one entry per live node, removes the same nodes in
  the same order; degree updates are the same single subtraction per edge.

Graphs are simple: no self loops and no repeated pair (the bipartite FRAUDAR
graph never has either); weights are finite and positive.  The kernels are
compiled on first use and cached on disk (``cache=True``, next to this file):
the first run after an install or an edit of this file compiles (10-25 s on the
shared 2-core machine); later processes only load the cache (about 0.5 s of
numba start-up, most of it once per process).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["core_mask", "greedy_peel_arrays", "node_count", "peel_inputs", "symmetric_csr"]


@njit(cache=True, nogil=True)
def _edge_lists(n_nodes: int, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ptr, edge``: the edges of each node (one side), in increasing edge number."""
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for e in range(len(ends)):
        ptr[ends[e] + 1] += 1
    for v in range(n_nodes):
        ptr[v + 1] += ptr[v]
    fill = ptr[:-1].copy()
    edge = np.empty(len(ends), dtype=np.int64)
    for e in range(len(ends)):
        v = ends[e]
        edge[fill[v]] = e
        fill[v] += 1
    return ptr, edge


@njit(cache=True, nogil=True)
def _side_sum(v: int, ptr: np.ndarray, edge: np.ndarray, w: np.ndarray, alive: np.ndarray) -> float:
    s = 0.0
    for i in range(ptr[v], ptr[v + 1]):
        e = edge[i]
        if alive[e]:
            s += w[e]
    return s


@njit(cache=True, nogil=True)
def _degree(
    v: int,
    sptr: np.ndarray,
    sedge: np.ndarray,
    dptr: np.ndarray,
    dedge: np.ndarray,
    w: np.ndarray,
    alive: np.ndarray,
) -> float:
    """Exact weighted degree of ``v`` over the live edges, as ``bincount(src) + bincount(dst)``."""
    return _side_sum(v, sptr, sedge, w, alive) + _side_sum(v, dptr, dedge, w, alive)


@njit(cache=True, nogil=True)
def _prune(
    n_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    w: np.ndarray,
    bar: float,
    alive: np.ndarray,
    sptr: np.ndarray,
    sedge: np.ndarray,
    dptr: np.ndarray,
    dedge: np.ndarray,
) -> np.ndarray:
    """Live edges of the ``bar``-core: drop the edges of nodes of degree < ``bar`` until none is.

    The result is the largest edge set whose every node has degree ≥ ``bar``,
    whatever the order of removals, because a node's degree (a sequential sum of
    positive weights) can only fall when edges go, rounding included.  So removing
    one node at a time gives the rounds' answer.  Each node keeps a running degree
    (minus each lost edge); it decides alone when it is clearly above or below the
    bar, and the exact degree (recomputed in edge order) decides within a margin
    larger than the running sum's rounding error.
    """
    alive = alive.copy()
    run = np.zeros(n_nodes)
    dsum = np.zeros(n_nodes)
    for e in range(len(src)):
        if alive[e]:
            run[src[e]] += w[e]
            dsum[dst[e]] += w[e]
    margin = np.empty(n_nodes)
    low = np.zeros(n_nodes, dtype=np.bool_)
    stack = np.empty(n_nodes, dtype=np.int64)
    top = 0
    for v in range(n_nodes):
        run[v] = run[v] + dsum[v]  # exact: bincount(src) + bincount(dst)
        k = (sptr[v + 1] - sptr[v]) + (dptr[v + 1] - dptr[v])
        margin[v] = run[v] * max(1e-9, 8.0 * (k + 1) * 2.0**-53)
        if run[v] < bar:
            low[v] = True
            stack[top] = v
            top += 1
    while top > 0:
        top -= 1
        v = stack[top]
        for side in range(2):
            ptr, edge, other = (sptr, sedge, dst) if side == 0 else (dptr, dedge, src)
            for i in range(ptr[v], ptr[v + 1]):
                e = edge[i]
                if not alive[e]:
                    continue
                alive[e] = False
                u = other[e]
                if low[u]:
                    continue
                run[u] -= w[e]
                if run[u] >= bar + margin[u]:
                    continue
                if run[u] < bar - margin[u] or _degree(u, sptr, sedge, dptr, dedge, w, alive) < bar:
                    low[u] = True
                    stack[top] = u
                    top += 1
    return alive


class EdgeLists:
    """Per-node edge lists of one edge set, built once and reused by every prune."""

    def __init__(self, n_nodes: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> None:
        self.n_nodes = int(n_nodes)
        self.src = np.ascontiguousarray(src, dtype=np.int64)
        self.dst = np.ascontiguousarray(dst, dtype=np.int64)
        self.w = np.ascontiguousarray(w, dtype=np.float64)
        self.sptr, self.sedge = _edge_lists(self.n_nodes, self.src)
        self.dptr, self.dedge = _edge_lists(self.n_nodes, self.dst)


def core_mask(lists: EdgeLists, bar: float, alive: np.ndarray | None = None) -> np.ndarray:
    """Edge mask of the ``bar``-core of ``lists`` (optionally starting from ``alive``)."""
    start = np.ones(len(lists.src), dtype=np.bool_) if alive is None else alive.astype(np.bool_)
    return _prune(
        lists.n_nodes,
        lists.src,
        lists.dst,
        lists.w,
        float(bar),
        start,
        lists.sptr,
        lists.sedge,
        lists.dptr,
        lists.dedge,
    )


def node_count(lists: EdgeLists, mask: np.ndarray) -> int:
    """Number of distinct nodes touched by the masked edges of ``lists``."""
    seen = np.zeros(lists.n_nodes, dtype=bool)
    seen[lists.src[mask]] = True
    seen[lists.dst[mask]] = True
    return int(np.count_nonzero(seen))


@njit(cache=True, nogil=True)
def _symmetric_csr(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = len(src)
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for e in range(m):
        indptr[src[e] + 1] += 1
        indptr[dst[e] + 1] += 1
    for v in range(n_nodes):
        indptr[v + 1] += indptr[v]
    fill = indptr[:-1].copy()
    indices = np.empty(2 * m, dtype=np.int64)
    data = np.empty(2 * m)
    for e in range(m):  # forward copies first, then the reversed ones (scipy's input order)
        v = src[e]
        indices[fill[v]] = dst[e]
        data[fill[v]] = w[e]
        fill[v] += 1
    for e in range(m):
        v = dst[e]
        indices[fill[v]] = src[e]
        data[fill[v]] = w[e]
        fill[v] += 1
    for v in range(n_nodes):  # neighbours in increasing order (sort_indices)
        a, b = indptr[v], indptr[v + 1]
        ordered = True
        for i in range(a + 1, b):
            if indices[i] < indices[i - 1]:
                ordered = False
                break
        if not ordered:
            o = np.argsort(indices[a:b], kind="mergesort")
            indices[a:b] = indices[a:b][o]
            data[a:b] = data[a:b][o]
    return indptr, indices, data


def symmetric_csr(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``indptr, indices, data`` of the symmetric adjacency, neighbours sorted per row."""
    return _symmetric_csr(
        int(n_nodes),
        np.ascontiguousarray(src, dtype=np.int64),
        np.ascontiguousarray(dst, dtype=np.int64),
        np.ascontiguousarray(w, dtype=np.float64),
    )


def peel_inputs(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSR, starting degrees (``np.add.reduceat`` per row) and mass (``np.sum``)."""
    indptr, indices, data = symmetric_csr(n_nodes, src, dst, w)
    prio = np.zeros(n_nodes)
    rows = np.flatnonzero(np.diff(indptr))
    if len(rows):
        prio[rows] = np.add.reduceat(data, indptr[rows])
    return indptr, indices, data, prio, float(np.sum(w))


@njit(cache=True, nogil=True)
def _less(pa: float, va: int, pb: float, vb: int) -> bool:
    return pa < pb or (pa == pb and va < vb)


@njit(cache=True, nogil=True)
def _sift_up(heap: np.ndarray, pos: np.ndarray, prio: np.ndarray, i: int) -> None:
    v = heap[i]
    while i > 0:
        parent = (i - 1) >> 1
        u = heap[parent]
        if _less(prio[v], v, prio[u], u):
            heap[i] = u
            pos[u] = i
            i = parent
        else:
            break
    heap[i] = v
    pos[v] = i


@njit(cache=True, nogil=True)
def _sift_down(heap: np.ndarray, pos: np.ndarray, prio: np.ndarray, i: int, n: int) -> None:
    v = heap[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _less(prio[heap[c + 1]], heap[c + 1], prio[heap[c]], heap[c]):
            c += 1
        u = heap[c]
        if _less(prio[u], u, prio[v], v):
            heap[i] = u
            pos[u] = i
            i = c
        else:
            break
    heap[i] = v
    pos[v] = i


@njit(cache=True, nogil=True)
def _peel(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, prio0: np.ndarray, f0: float
) -> tuple[np.ndarray, int, float]:
    n = len(prio0)
    prio = prio0.copy()
    heap = np.arange(n)
    pos = np.arange(n)
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(heap, pos, prio, i, n)
    removed = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    f = f0
    size = n
    best_g = f / size
    best_k = 0
    k = 0
    h = n
    while h > 0:
        v = heap[0]
        p = prio[v]
        h -= 1
        if h > 0:
            heap[0] = heap[h]
            pos[heap[0]] = 0
            _sift_down(heap, pos, prio, 0, h)
        removed[v] = True
        order[k] = v
        f -= p
        size -= 1
        k += 1
        for i in range(indptr[v], indptr[v + 1]):
            u = indices[i]
            if not removed[u]:
                prio[u] = prio[u] - data[i]
                j = pos[u]
                _sift_up(heap, pos, prio, j)
                if pos[u] == j:  # did not move up: a weight <= 0 may need it to go down
                    _sift_down(heap, pos, prio, j, h)
        if size > 0 and f > best_g * size:
            best_g = f / size
            best_k = k
    return order, best_k, best_g


def greedy_peel_arrays(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, float]:
    """Greedy densest-subgraph peel; see :func:`linkage.baselines.fraudar.greedy_peel`."""
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    indptr, indices, data, prio, f = peel_inputs(n_nodes, src, dst, w)
    order, best_k, best_g = _peel(indptr, indices, data, prio, f)
    return np.sort(order[best_k:]), float(best_g)
