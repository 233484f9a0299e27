"""Compiled (numba) kernels of the template stage: string hashing, shingles, MinHash.

The NumPy formulation of these steps (exploded token arrays, shifted slices,
``minimum.at``) materialised several arrays per token of the corpus and
converted every distinct token and skeleton to a Python string for hashing.
These kernels walk the Arrow string buffers directly, one document at a time,
so nothing per token is ever allocated, and they release the GIL (``nogil``)
so row chunks run on a thread pool.

They compute exactly what the array code computed (the tests compare them on
generated adversarial text): the same tokens (maximal runs of
``[\\p{L}\\p{N}\\p{M}_<>]``, the class taken from RE2 itself so that Unicode
versions cannot drift), the same seeded token hashes (pandas' ``hash_array``:
SipHash-2-4 of the UTF-8 bytes, then the SplitMix64 finaliser), the same
shingle folding and the same densified one-permutation MinHash.
"""

from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "char_at",
    "minhash_signatures",
    "n_equal",
    "siphash_strings",
    "string_buffers",
    "token_class",
]

_U64 = np.uint64
_GOLD = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_EMPTY = np.uint32(0xFFFFFFFF)
_ROTATE = np.uint32(0x9E3779B1)

_jit = nb.njit(nogil=True, cache=True)  # one decorator: mypy checks it, not a **dict


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets, uint8 data) views of a large_string array (nulls read as ``""``
    only if their offsets say so: callers pass null-free arrays)."""
    arr = arr.cast(pa.large_string())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if data_buf is None:
        return offsets, np.empty(0, np.uint8)
    return offsets, np.frombuffer(data_buf, dtype=np.uint8)


def key_words(key: str) -> tuple[np.uint64, np.uint64]:
    """SipHash key (k0, k1) of a 16-character key string, as pandas reads it."""
    raw = key.encode("utf-8")
    if len(raw) != 16:
        raise ValueError(f"hash key must be 16 bytes, got {len(raw)}")
    k = np.frombuffer(raw, dtype="<u8")
    return _U64(k[0]), _U64(k[1])


@lru_cache(maxsize=1)
def token_class() -> np.ndarray:
    """``is_token[code point]`` for ``[\\p{L}\\p{N}\\p{M}_<>]``, evaluated by RE2.

    The table is built by asking RE2 (the engine the rest of the stage uses)
    about every code point, so it follows RE2's Unicode tables exactly.
    """
    cps = np.arange(0x110000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]  # surrogates are not characters
    chars = pa.array(cps.view("<U1"), type=pa.large_string())
    hit = pc.match_substring_regex(chars, r"^[\p{L}\p{N}\p{M}_<>]$")
    table = np.zeros(0x110000, dtype=np.bool_)
    table[cps] = hit.to_numpy(zero_copy_only=False)
    return table


@nb.njit(inline="always")
def _rotl(x, b):
    return (x << _U64(b)) | (x >> _U64(64 - b))


@nb.njit(inline="always")
def _sipround(v0, v1, v2, v3):
    """One SipRound (the reference ARX round), on the four state words."""
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@_jit
def _siphash(data, lo, hi, k0, k1):
    """SipHash-2-4 of ``data[lo:hi]`` (the reference algorithm, as pandas uses)."""
    v0 = k0 ^ _U64(0x736F6D6570736575)
    v1 = k1 ^ _U64(0x646F72616E646F6D)
    v2 = k0 ^ _U64(0x6C7967656E657261)
    v3 = k1 ^ _U64(0x7465646279746573)
    n = hi - lo
    end = lo + (n - n % 8)
    i = lo
    while i < end:
        m = _U64(0)
        for j in range(8):
            m |= _U64(data[i + j]) << _U64(8 * j)
        v3 ^= m
        for _ in range(2):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
        i += 8
    b = _U64(n & 0xFF) << _U64(56)
    for j in range(n % 8):
        b |= _U64(data[end + j]) << _U64(8 * j)
    v3 ^= b
    for _ in range(2):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= _U64(0xFF)
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


@nb.njit(inline="always")
def _splitmix(z):
    z ^= z >> _U64(30)
    z *= _MIX1
    z ^= z >> _U64(27)
    z *= _MIX2
    return z ^ (z >> _U64(31))


@_jit
def _siphash_rows(offsets, data, k0, k1, out):
    for r in range(len(out)):
        out[r] = _splitmix(_siphash(data, offsets[r], offsets[r + 1], k0, k1))


def siphash_strings(arr: pa.Array, key: str) -> np.ndarray:
    """pandas ``hash_array(values, hash_key=key, categorize=False)`` of a null-free
    string array, computed on the Arrow buffers (no Python strings)."""
    offsets, data = string_buffers(arr)
    out = np.empty(len(arr), dtype=np.uint64)
    k0, k1 = key_words(key)
    _siphash_rows(offsets, data, k0, k1, out)
    return out


@nb.njit(inline="always")
def char_at(data, i):
    """(code point, byte length) of the UTF-8 character at ``data[i]`` (valid UTF-8)."""
    b = data[i]
    if b < 0x80:
        return np.int64(b), 1
    if b < 0xE0:
        return (np.int64(b & 0x1F) << 6) | np.int64(data[i + 1] & 0x3F), 2
    if b < 0xF0:
        return (
            (np.int64(b & 0x0F) << 12)
            | (np.int64(data[i + 1] & 0x3F) << 6)
            | np.int64(data[i + 2] & 0x3F)
        ), 3
    return (
        (np.int64(b & 0x07) << 18)
        | (np.int64(data[i + 1] & 0x3F) << 12)
        | (np.int64(data[i + 2] & 0x3F) << 6)
        | np.int64(data[i + 3] & 0x3F)
    ), 4


@_jit
def _signature_rows(offsets, data, is_token, k, num_perm, seed32, k0, k1, out):
    """MinHash signature of every document ``r`` into ``out[r]`` (see module docs)."""
    n_docs = out.shape[0]
    longest = 0
    for r in range(n_docs):
        longest = max(longest, offsets[r + 1] - offsets[r])
    # a token is at least one byte and tokens are separated: at most (bytes + 1) / 2
    tok_hash = np.empty(longest // 2 + 1, dtype=np.uint64)
    empty = np.empty(num_perm, dtype=np.bool_)
    P = _U64(num_perm)
    for r in range(n_docs):
        lo = offsets[r]
        hi = offsets[r + 1]
        # tokens: maximal runs of token characters, hashed as their UTF-8 bytes
        n_tok = 0
        i = lo
        start = -1
        while i < hi:
            cp, width = char_at(data, i)
            if is_token[cp]:
                if start < 0:
                    start = i
            elif start >= 0:
                tok_hash[n_tok] = _splitmix(_siphash(data, start, i, k0, k1))
                n_tok += 1
                start = -1
            i += width
        if start >= 0:
            tok_hash[n_tok] = _splitmix(_siphash(data, start, hi, k0, k1))
            n_tok += 1
        row = out[r]
        for b in range(num_perm):
            row[b] = _EMPTY
        if n_tok == 0:
            # no token (only punctuation): one shingle of the whole text
            h = _splitmix(_splitmix(_siphash(data, lo, hi, k0, k1)))
            v = np.uint32(h >> _U64(32))
            b = np.int64(h % P)
            if v < row[b]:
                row[b] = v
        else:
            # shingle s folds tokens s .. s+size-1 (fewer than k tokens: one shingle of all)
            size = min(n_tok, k)
            for s in range(n_tok - size + 1):
                h = seed32
                for j in range(size):
                    h = _splitmix(h * _GOLD + tok_hash[s + j])
                v = np.uint32(h >> _U64(32))
                b = np.int64(h % P)
                if v < row[b]:
                    row[b] = v
        # densify: an empty bin takes the next non-empty bin to its right
        # (circularly) plus _ROTATE per step; two right-to-left passes round the
        # circle, the first only to set the carry (a real value equal to _EMPTY
        # counts as empty, as in the array formulation)
        n_empty = 0
        for b in range(num_perm):
            e = row[b] == _EMPTY
            empty[b] = e
            n_empty += e
        if n_empty:
            carry = row[num_perm - 1]
            for col in range(num_perm - 1, -1, -1):
                carry = np.uint32(carry + _ROTATE)
                if not empty[col]:
                    carry = row[col]
            for col in range(num_perm - 1, -1, -1):
                carry = np.uint32(carry + _ROTATE)
                if not empty[col]:
                    carry = row[col]
                row[col] = carry


@_jit
def _has_non_ascii(data, lo, hi):
    for i in range(lo, hi):  # noqa: SIM110 (numba compiles no generators)
        if data[i] >= 0x80:
            return True
    return False


def minhash_signatures(docs: pa.Array, k: int, num_perm: int, seed: int, key: str) -> np.ndarray:
    """Densified one-permutation MinHash signatures (len(docs) x num_perm, uint32)
    of the word ``k``-shingles of null-free documents; ``key``: the token-hash salt."""
    offsets, data = string_buffers(docs)
    out = np.empty((len(docs), num_perm), dtype=np.uint32)
    if len(docs) == 0:
        return out
    k0, k1 = key_words(key)
    lo, hi = int(offsets[0]), int(offsets[-1])
    is_token = token_class() if _has_non_ascii(data, lo, hi) else _ascii_token_class()
    seed32 = _U64(seed & 0xFFFFFFFF) + _U64(1)
    _signature_rows(offsets, data, is_token, k, num_perm, seed32, k0, k1, out)
    return out


@lru_cache(maxsize=1)
def _ascii_token_class() -> np.ndarray:
    """``token_class`` restricted to ASCII (all an ASCII-only chunk can look up)."""
    t = np.zeros(128, dtype=np.bool_)
    t[
        np.frombuffer(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_<>", np.uint8
        )
    ] = True
    return t


@_jit
def _n_equal_rows(sig, a, b, out):
    m = sig.shape[1]
    for i in range(len(a)):
        ra = sig[a[i]]
        rb = sig[b[i]]
        c = 0
        for j in range(m):
            c += ra[j] == rb[j]
        out[i] = c


def n_equal(sig: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of equal bins between ``sig[a[i]]`` and ``sig[b[i]]`` (int32)."""
    out = np.empty(len(a), dtype=np.int32)
    _n_equal_rows(
        np.ascontiguousarray(sig),
        np.ascontiguousarray(a, dtype=np.int64),
        np.ascontiguousarray(b, dtype=np.int64),
        out,
    )
    return out


@_jit
def _band_keys_rows(sig, band, rows):
    """64-bit key of LSH band ``band`` of every row, exactly as ``sketch.band_keys``
    folds it: pairs of 32-bit values as one little-endian 64-bit word when ``rows`` is
    even, else one value per word; ``key = splitmix(key * GOLD + word)`` from
    ``key = band + 1``."""
    n = sig.shape[0]
    lo = band * rows
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        key = _U64(band + 1)
        if rows % 2 == 0:
            for r in range(0, rows, 2):
                word = _U64(sig[i, lo + r]) | (_U64(sig[i, lo + r + 1]) << _U64(32))
                key = _splitmix(key * _GOLD + word)
        else:
            for r in range(rows):
                key = _splitmix(key * _GOLD + _U64(sig[i, lo + r]))
        keys[i] = key
    return keys


@_jit
def _star_reps(keys, order, prio, node_of_prio, rep):
    """``rep[i]``: the highest-priority member of row ``i``'s bucket of equal ``keys``
    (``order``: the rows sorted by key), -1 when the bucket is ``i`` alone or ``i``
    is that member (no edge)."""
    n = len(keys)
    lo = 0
    while lo < n:
        key = keys[order[lo]]
        hi = lo + 1
        best = prio[order[lo]]
        while hi < n and keys[order[hi]] == key:
            best = max(best, prio[order[hi]])
            hi += 1
        r = node_of_prio[best] if hi - lo >= 2 else -1
        for t in range(lo, hi):
            i = order[t]
            rep[i] = r if r != i else -1
        lo = hi


@nb.njit(inline="always")
def _row_reps(reps, i, row):
    """The distinct representatives of row ``i`` over all bands, sorted, into ``row``;
    returns how many."""
    m = 0
    for b in range(reps.shape[0]):
        r = reps[b, i]
        if r >= 0:
            row[m] = r
            m += 1
    for t in range(1, m):  # insertion sort in place (m <= bands; no array per row)
        v = row[t]
        u = t - 1
        while u >= 0 and row[u] > v:
            row[u + 1] = row[u]
            u -= 1
        row[u + 1] = v
    k = 0
    for t in range(m):
        if t == 0 or row[t] != row[k - 1]:
            row[k] = row[t]
            k += 1
    return k


@_jit
def _distinct_star_edges(reps):
    """(src, dst) of the distinct (row, ``reps[b, row]``) pairs over all bands, sorted
    by src then dst (what sorting the packed ``src * n + dst`` keys gives). Two passes
    (count, then fill), so the output is allocated at its exact size."""
    bands, n = reps.shape
    row = np.empty(bands, dtype=np.int64)
    total = 0
    for i in range(n):
        total += _row_reps(reps, i, row)
    src = np.empty(total, dtype=np.int64)
    dst = np.empty(total, dtype=np.int64)
    k = 0
    for i in range(n):
        m = _row_reps(reps, i, row)
        for t in range(m):
            src[k] = i
            dst[k] = row[t]
            k += 1
    return src, dst


def band_reps(
    sig: np.ndarray,
    band: int,
    rows: int,
    prio: np.ndarray,
    node_of_prio: np.ndarray,
    rep: np.ndarray,
) -> None:
    """Each row's star edge in LSH band ``band`` into ``rep`` (:func:`_star_reps`; see
    :func:`linkage.identifiers.sketch.candidate_edges`). Buckets are the runs of
    equal keys in key order (an argsort: a hash table on the keys missed the cache on
    every row and was slower)."""
    keys = _band_keys_rows(sig, band, rows)
    _star_reps(keys, np.argsort(keys), prio, node_of_prio, rep)


def distinct_star_edges(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (member, representative) edges of all bands' ``reps`` (bands x n,
    -1: none), sorted by member then representative."""
    src, dst = _distinct_star_edges(reps)
    return src, dst


@_jit
def _scatter_strings(offsets, data, rows, dest, out_offsets, out):
    """Copy string ``rows[j]`` of (offsets, data) to position ``dest[j]`` of the output
    (``out_offsets`` already laid out)."""
    for j in range(len(rows)):
        lo = offsets[rows[j]]
        hi = offsets[rows[j] + 1]
        o = out_offsets[dest[j]]
        out[o : o + (hi - lo)] = data[lo:hi]


def gather_strings(arr: pa.ChunkedArray | pa.Array, rows: np.ndarray) -> pa.Array:
    """``arr.take(rows)`` as one large_string array, built chunk by chunk from the
    Arrow buffers (Arrow's take on a chunked array concatenates the chunks first: a
    copy of the whole column). ``rows`` index the logical array; no nulls among them."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    rows = np.asarray(rows, dtype=np.int64)
    starts = np.cumsum([0] + [len(c) for c in chunks])
    which = np.searchsorted(starts, rows, side="right") - 1
    bufs = [string_buffers(c) for c in chunks]
    lengths = np.zeros(len(rows), dtype=np.int64)
    parts = []
    for k in range(len(chunks)):
        dest = np.flatnonzero(which == k)
        if len(dest) == 0:
            continue
        local = rows[dest] - starts[k]
        off = bufs[k][0]
        lengths[dest] = off[local + 1] - off[local]
        parts.append((k, local, dest))
    out_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.uint8)
    for k, local, dest in parts:
        off, data = bufs[k]
        _scatter_strings(off, data, local, dest, out_offsets, out)
    return pa.LargeStringArray.from_buffers(len(rows), pa.py_buffer(out_offsets), pa.py_buffer(out))
