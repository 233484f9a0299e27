"""Compiled (numba) edge emission of the account projection (:func:`linkage.graph.build._project`).

The array formulation built, per group size, a (groups x pairs) block of row positions
and gathered accounts and weights from it, and per circulant offset gathered the
supernode partners: a dozen arrays the size of the edge list. This kernel writes each
edge once, in exactly the order the array code produced them (cliques by group size,
then by group, then by pair in ``triu_indices`` order; then supernode edges offset by
offset), with the same floating-point operations in the same order, so the summed
projection is bit-identical. The circulant offsets themselves are computed by NumPy as
before (:func:`linkage.graph.build._project`): the kernel only reads them.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_jit = nb.njit(nogil=True, cache=True)


@_jit
def _emit(acc, ident, sq, weight, starts, gsize, m, rows, base, pb, kb, offs, half):
    n_clique = 0
    for g in range(len(starts)):
        s = gsize[g]
        if s <= m:
            n_clique += s * (s - 1) // 2
    total = n_clique + half * len(rows)
    lo = np.empty(total, dtype=np.int64)
    hi = np.empty(total, dtype=np.int64)
    w = np.empty(total, dtype=np.float64)
    k = 0
    for size in range(2, m + 1):
        for g in range(len(starts)):
            if gsize[g] != size:
                continue
            st = starts[g]
            for i in range(size - 1):
                pi = st + i
                for j in range(i + 1, size):
                    pj = st + j
                    a, b = acc[pi], acc[pj]
                    if a != b:
                        lo[k] = min(a, b)
                        hi[k] = max(a, b)
                        w[k] = weight[ident[pi]] * sq[pi] * sq[pj] / (size - 1)
                        k += 1
    for j in range(half):
        for t in range(len(rows)):
            r = rows[t]
            partner = base[t] + (pb[t] + offs[j, t]) % kb[t]
            a, b = acc[r], acc[partner]
            if a != b:
                lo[k] = min(a, b)
                hi[k] = max(a, b)
                w[k] = weight[ident[r]] * sq[r] * sq[partner] / (2 * half)
                k += 1
    return lo[:k], hi[:k], w[:k]


def emit_edges(
    acc: np.ndarray,
    ident: np.ndarray,
    sq: np.ndarray,
    weight: np.ndarray,
    starts: np.ndarray,
    gsize: np.ndarray,
    m: int,
    rows: np.ndarray,
    base: np.ndarray,
    pb: np.ndarray,
    kb: np.ndarray,
    offs: np.ndarray,
    half: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, weight) of every projected edge but self-loops, before summing."""
    i64 = np.int64
    return _emit(
        np.ascontiguousarray(acc, dtype=i64),
        np.ascontiguousarray(ident, dtype=i64),
        np.ascontiguousarray(sq, dtype=np.float64),
        np.ascontiguousarray(weight, dtype=np.float64),
        np.ascontiguousarray(starts, dtype=i64),
        np.ascontiguousarray(gsize, dtype=i64),
        int(m),
        np.ascontiguousarray(rows, dtype=i64),
        np.ascontiguousarray(base, dtype=i64),
        np.ascontiguousarray(pb, dtype=i64),
        np.ascontiguousarray(kb, dtype=i64),
        np.ascontiguousarray(offs, dtype=i64).reshape(half, len(rows)),
        int(half),
    )
