"""Grouping near-identical skeletons: verify LSH candidates by their estimated Jaccard
similarity and cluster the verified pairs with a chaining-resistant center clustering."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from linkage.identifiers import _template_kernel as _kernel
from linkage.identifiers._parallel import map_parallel

__all__ = ["MAX_ROUNDS", "center_cluster", "n_equal", "verify"]


def n_equal(sig: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of equal bins between the signatures of ``a[i]`` and ``b[i]``
    (compiled: no gathered copies of the rows), in blocks on a thread pool."""
    out = np.empty(len(a), dtype=np.int32)
    step = 1 << 16
    sig = np.ascontiguousarray(sig)

    def block(lo: int) -> None:
        out[lo : lo + step] = _kernel.n_equal(sig, a[lo : lo + step], b[lo : lo + step])

    map_parallel(block, range(0, len(a), step))
    return out


def verify(sig: np.ndarray, src: np.ndarray, dst: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of edges whose estimated Jaccard (share of equal bins) >= threshold."""
    need = int(np.ceil(threshold * sig.shape[1] - 1e-9))
    return n_equal(sig, src, dst) >= need


MAX_ROUNDS = 200  # peeling rounds; each splits what is left, so ~log(chain length)


def center_cluster(
    sig: np.ndarray, src: np.ndarray, dst: np.ndarray, prio: np.ndarray, threshold: float
) -> np.ndarray:
    """Chaining-resistant clustering of verified edges; returns a center per node.

    Connected components of the verified edges (Jaccard >= ``threshold``) are
    only *candidates*: single linkage would let a chain A~B~C~... of gradually
    drifting prompts merge into one giant template. So in each round every
    component elects its center (highest priority: the most requested
    skeleton, ties by a seeded hash) and keeps only the members whose
    estimated Jaccard with the center is at least ``2 * threshold - 1``; the
    others are peeled off and re-clustered among themselves in the next round.

    Why ``2t - 1``: paraphrases of one template are each within Jaccard
    distance ``1 - t`` of the (often never sent) original, so by the triangle
    inequality of the Jaccard distance two of them are within ``2(1 - t)``,
    i.e. Jaccard >= ``2t - 1`` (0.2 at the default 0.6): the bound that keeps
    independent paraphrases together. It also caps a template's radius, so a
    drifting chain is cut into pieces instead of merging end to end.
    """
    n = len(sig)
    t_low = max(2 * threshold - 1, 0.0)
    need = int(np.ceil(t_low * sig.shape[1] - 1e-9))
    center = np.full(n, -1, dtype=np.int64)
    remaining = np.ones(n, dtype=bool)
    nodes = np.arange(n)
    node_of_prio = np.empty(n, dtype=np.int64)
    node_of_prio[prio] = nodes
    local = np.empty(n, dtype=np.int64)  # node -> index among this round's nodes
    idx = nodes
    for _ in range(MAX_ROUNDS):
        # Each round works on the nodes still unassigned only (components,
        # centers and checks), so later rounds cost what is left, not n.
        live = remaining[src] & remaining[dst]
        src, dst = src[live], dst[live]
        m = len(idx)
        local[idx] = np.arange(m)
        graph = coo_matrix(
            (np.ones(len(src), dtype=np.int8), (local[src], local[dst])), shape=(m, m)
        )
        n_comp, label = connected_components(graph, directed=False)
        best = np.full(n_comp, -1, dtype=np.int64)
        np.maximum.at(best, label, prio[idx])
        c = node_of_prio[best[label]]
        close = n_equal(sig, idx, c) >= need
        close |= idx == c
        center[idx[close]] = c[close]
        remaining[idx[close]] = False
        idx = idx[~close]
        if not len(idx):
            break
    rest = center < 0
    center[rest] = nodes[rest]
    return center
