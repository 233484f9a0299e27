"""Sketches of prompt skeletons: stable string hashes, MinHash signatures and LSH.

MinHash signatures of each skeleton's token shingles (compiled,
:mod:`linkage.identifiers._template_kernel`), LSH band keys and the candidate pairs
that share a band; :mod:`linkage.identifiers.grouping` verifies and groups them. Used by
:func:`linkage.identifiers.templates.assign_templates`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from linkage.identifiers import _template_kernel as _kernel
from linkage.identifiers._parallel import map_parallel

__all__ = [
    "ID_KEY",
    "TOKEN_SPLIT",
    "band_keys",
    "candidate_edges",
    "combine",
    "hash_strings",
    "hex_ids",
    "seed_key",
    "signatures",
    "splitmix",
]

# ---------------------------------------------------------------------------
# Hashing helpers
# ---------------------------------------------------------------------------

_U64 = np.uint64
# Fixed key for ids: ids must not change with the run seed or pandas' defaults.
ID_KEY = "linkage-template"  # 16 characters, as pandas' siphash key requires


def splitmix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective avalanche mix of uint64 values."""
    z = z ^ (z >> _U64(30))
    z = z * _U64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> _U64(27))
    z = z * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def combine(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Order-dependent combination of two uint64 hash arrays."""
    return splitmix(h * _U64(0x9E3779B97F4A7C15) + x)


def seed_key(seed: int) -> str:
    """16-character siphash key derived from the run seed (hash salt)."""
    return f"{seed & 0xFFFFFFFFFFFF:016x}"[-16:]


def hash_strings(arr: pa.Array, *keys: str) -> tuple[np.ndarray, ...]:
    """Stable 64-bit hash of each string, one array per ``key``: pandas'
    ``hash_array(values, hash_key=key, categorize=False)`` (SipHash-2-4 of the
    UTF-8 bytes, SplitMix64 finaliser), computed by a compiled kernel on the
    Arrow buffers instead of on Python strings (the conversion to Python
    objects was most of the cost and of the memory). ``arr`` has no nulls.
    """
    if arr.null_count:
        raise ValueError("hash_strings needs a null-free string array")
    return tuple(_kernel.siphash_strings(arr, k) for k in keys)


def hex_ids(h: np.ndarray) -> np.ndarray:
    """``"t" + 12 hex chars`` per hash, built as a fixed-width unicode array."""
    n = len(h)
    cp = np.empty((n, 13), dtype=np.uint32)
    cp[:, 0] = ord("t")
    top = h >> _U64(16)  # the 48 high bits
    for i in range(12):
        nib = (top >> _U64(4 * (11 - i))) & _U64(0xF)
        cp[:, 1 + i] = np.where(nib < 10, 48 + nib, 87 + nib).astype(np.uint32)
    return np.ascontiguousarray(cp).view("<U13").ravel()


# ---------------------------------------------------------------------------
# MinHash + LSH
# ---------------------------------------------------------------------------

# Tokens of a skeleton: words, numbers and the slot tokens; punctuation and
# spaces separate them (so "step-by-step," and "step by step" shingle alike).
# The definition of the kernel's tokenizer (maximal runs of the complement).
TOKEN_SPLIT = r"[^\p{L}\p{N}\p{M}_<>]+"
_SIG_CHUNK = 1 << 14  # documents per signature chunk (the unit of the thread pool)


def _splitmix_inplace(z: np.ndarray, tmp: np.ndarray) -> None:
    """:func:`splitmix` in place (``tmp``: scratch of the same shape)."""
    np.right_shift(z, _U64(30), out=tmp)
    z ^= tmp
    z *= _U64(0xBF58476D1CE4E5B9)
    np.right_shift(z, _U64(27), out=tmp)
    z ^= tmp
    z *= _U64(0x94D049BB133111EB)
    np.right_shift(z, _U64(31), out=tmp)
    z ^= tmp


def signatures(docs: pa.Array, k: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of all documents (len(docs) x num_perm, uint32).

    Per document (:func:`linkage.identifiers._template_kernel.minhash_signatures`,
    compiled): tokens are the maximal runs of ``[\\p{L}\\p{N}\\p{M}_<>]``, each
    hashed with a seed-salted SipHash; the shingle starting at token ``i`` folds
    tokens ``i..i+k-1`` (a skeleton with fewer than ``k`` tokens is one shingle
    of all of them; one without any token, only punctuation, a shingle of its
    whole text). One-permutation MinHash: each shingle hash picks its bin
    (``h % num_perm``) and offers its high 32 bits; a bin keeps its minimum.
    Empty bins are densified by rotation (Shrivastava 2017): an empty bin takes
    the next non-empty bin to its right (circularly) plus ``distance *
    0x9E3779B1``, so that the fraction of equal bins between two signatures
    estimates their Jaccard similarity.

    Row chunks run on a thread pool (the kernel releases the GIL); every
    document is hashed on its own, so the result does not depend on chunking.
    """
    n = len(docs)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    key = seed_key(seed)

    def work(lo: int) -> None:
        part = docs.slice(lo, _SIG_CHUNK)
        sig[lo : lo + len(part)] = _kernel.minhash_signatures(part, k, num_perm, seed, key)

    map_parallel(work, range(0, n, _SIG_CHUNK))
    return sig


def band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """64-bit key of one LSH band (its ``rows`` signature values).

    Pairs of 32-bit values are folded as one 64-bit word (half the mixing
    rounds). Only equality of keys matters (bucket membership, not the key
    value), and distinct bands collide with probability ~2^-64 per pair.
    """
    part = np.ascontiguousarray(sig[:, band * rows : (band + 1) * rows])
    words = part.view(np.uint64) if rows % 2 == 0 else part.astype(np.uint64)
    key = np.full(len(sig), _U64(band + 1))
    tmp = np.empty_like(key)
    for r in range(words.shape[1]):
        key *= _U64(0x9E3779B97F4A7C15)
        key += words[:, r]
        _splitmix_inplace(key, tmp)
    return key


def candidate_edges(sig: np.ndarray, prio: np.ndarray, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Star edges (member, representative) from shared LSH band keys.

    Within a bucket, every member is linked to the bucket's highest-priority
    member only (not all pairs): the fan-out of a bucket of size ``s`` is
    ``s - 1`` edges instead of ``s^2 / 2``, so total work stays linear
    (at most ``bands`` edges per skeleton) however skewed the buckets are.

    Buckets are not dropped by size. With star edges a big bucket costs
    linear work, every edge is then verified by estimated Jaccard, and the
    clustering is chaining-resistant (:func:`center_cluster`), so a size cap
    would buy no precision; it would only split exactly the largest templates,
    i.e. the biggest farms (one template rotated over 10^5 distinct skeletons
    collides in every band).
    """
    n = len(sig)
    rows = sig.shape[1] // bands
    node_of_prio = np.empty(n, dtype=np.int64)
    node_of_prio[prio] = np.arange(n)

    sig = np.ascontiguousarray(sig, dtype=np.uint32)
    prio = np.ascontiguousarray(prio, dtype=np.int64)
    reps = np.empty((bands, n), dtype=np.int32 if n < 2**31 else np.int64)

    def band_edges(b: int) -> None:
        # compiled (band keys, buckets as runs of equal keys in key order, each member's
        # representative); the kernels release the GIL. The array version (band keys in
        # numpy passes, pd.factorize, np.maximum.at) cost ~0.2 s per band at scale 1.
        _kernel.band_reps(sig, b, rows, prio, node_of_prio, reps[b])

    map_parallel(band_edges, range(bands))  # bands are independent
    # distinct edges per member over its (at most ``bands``) representatives, in the
    # order a sort of the packed (member, rep) keys gave, without that global sort of
    # every band's edges (~15x the distinct ones at scale 1). The order does not matter
    # downstream anyway (components and centers by priority).
    return _kernel.distinct_star_edges(reps)
