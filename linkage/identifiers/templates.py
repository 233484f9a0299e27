"""Prompt skeletons and near-duplicate prompt templates.

A distillation farm sends millions of prompts generated from a handful of
templates: the wording stays, the *slots* change (numbers, names, quoted
snippets, pasted code, ids), and the templates are paraphrased and rotated
(a word swapped here and there) to dodge exact-match rules. This module turns
raw prompts into **template ids** in two steps:

1. :func:`skeletonize` masks the slots (``<n> <q> <code> <id> <name>``),
   collapses whitespace and lower-cases, so that all fills of one template
   give the same *skeleton*.
2. :func:`assign_templates` groups near-identical skeletons (paraphrases,
   rotations) with MinHash + LSH, verifies every candidate pair by its
   estimated Jaccard similarity and clusters the verified pairs with a
   chaining-resistant center clustering; every group gets a deterministic id.

Everything runs over the *unique* prompts. One module per concept: skeletons by a
compiled one-pass scanner over the Arrow buffers that gives exactly what the
RE2 mask regexes give (:mod:`linkage.identifiers.skeleton`, which keeps the
regexes as the definition); string hashes, MinHash signatures and LSH candidates
(:mod:`linkage.identifiers.sketch`); verification and center clustering
(:mod:`linkage.identifiers.grouping`); the cross-run cache
(:mod:`linkage.identifiers.template_cache`); Arrow conversions
(:mod:`linkage.identifiers.arrow_text`). This module assembles them. Python loops run only over bands, chunks and clustering
rounds, never over prompts or skeletons. With ``TemplateSettings.cache_dir``
set, skeletons and signatures of prompts seen in earlier runs are read from
the cache (:mod:`linkage.identifiers.template_cache`) instead of recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.identifiers import _template_kernel as _kernel
from linkage.identifiers.arrow_text import as_arrow, dictionary_encode
from linkage.identifiers.grouping import center_cluster, verify
from linkage.identifiers.skeleton import skeletonize_arrow
from linkage.identifiers.sketch import (
    ID_KEY,
    candidate_edges,
    hash_strings,
    hex_ids,
    seed_key,
    signatures,
)
from linkage.identifiers.template_cache import Lookup, TemplateCache, prompt_keys
from linkage.settings import TemplateSettings

__all__ = [
    "TemplateAssignment",
    "assign_templates",
    "factorize_text",
    "skeletonize",
]

# ---------------------------------------------------------------------------
# Skeletons (the masks and their compiled scanner: linkage.identifiers.skeleton)
# ---------------------------------------------------------------------------


def skeletonize(prompts: pd.Series, *, settings: TemplateSettings | None = None) -> pd.Series:
    """Reduce each prompt to the template it was filled from.

    Masks what a farm varies between requests: numbers -> ``<n>``, quoted
    strings -> ``<q>``, fenced / indented / inline code -> ``<code>``, URLs,
    e-mails, hex ids and UUIDs -> ``<id>``, capitalised names mid-sentence ->
    ``<name>``; collapses whitespace and lower-cases. Only the first
    ``settings.max_prompt_chars`` characters are looked at (templates live in
    the head of a prompt; the tail is mostly the varying payload).

    Runs on the unique prompts only and maps the result back. Missing prompts
    stay missing; a prompt of only whitespace gives ``""``. Idempotent:
    ``skeletonize(skeletonize(x)) == skeletonize(x)``.
    """
    settings = settings or TemplateSettings()
    codes, uniques = pd.factorize(prompts, use_na_sentinel=True)
    skel = skeletonize_arrow(as_arrow(uniques), settings.max_prompt_chars)
    idx = pa.array(codes, type=pa.int64(), mask=codes < 0)
    out = skel.take(idx)
    return pd.Series(
        pd.arrays.ArrowStringArray(out.cast(pa.large_string())),
        index=prompts.index,
        name=prompts.name,
    )


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass
class TemplateAssignment:
    """Template of every prompt, and one row per template.

    ``codes``: int64 per prompt (aligned to the prompts), index into ``ids``;
    -1 for missing or empty prompts. ``ids``: template id per code.
    ``template_id``: the same as a ``string`` Series aligned to the prompts'
    index, ``<NA>`` for missing or empty prompts (built on first access: the
    pipeline itself only needs the integer codes).
    ``templates``: one row per template, most requested first: ``template_id,
    skeleton`` (representative: the most requested skeleton of the group),
    ``example`` (one raw prompt of that skeleton), ``n_requests`` (int64,
    non-empty prompts in the template), ``n_variants`` (int64, distinct
    skeletons merged). ``skeleton`` and ``example`` are ``<NA>`` for templates
    seen in a single request (the prompt itself is in that request's row).
    """

    codes: np.ndarray
    ids: np.ndarray
    templates: pd.DataFrame
    index: pd.Index

    @cached_property
    def template_id(self) -> pd.Series:
        ids = pa.array(np.asarray(self.ids, dtype=object), type=pa.large_string())
        taken = ids.take(pa.array(self.codes, type=pa.int64(), mask=self.codes < 0))
        return pd.Series(pd.arrays.ArrowStringArray(taken), index=self.index, name="template_id")


_TEMPLATE_COLUMNS = ["template_id", "skeleton", "example", "n_requests", "n_variants"]


def _empty_assignment(prompts: pd.Series) -> TemplateAssignment:
    frame = pd.DataFrame(
        {
            "template_id": pd.array([], dtype="string[pyarrow]"),
            "skeleton": pd.array([], dtype="string[pyarrow]"),
            "example": pd.array([], dtype="string[pyarrow]"),
            "n_requests": np.array([], dtype=np.int64),
            "n_variants": np.array([], dtype=np.int64),
        }
    )
    return TemplateAssignment(
        np.full(len(prompts), -1, dtype=np.int64), np.empty(0, dtype=object), frame, prompts.index
    )


def factorize_text(prompts: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """(int64 codes, -1 for missing; unique values as an Arrow string array) of a text column.

    Both the template and the prompt-signal stages work on the unique prompts;
    the pipeline factorizes the prompt column once and hands the result to both.
    Arrow-backed strings (pandas' default ``str`` dtype) are dictionary-encoded
    by pyarrow directly: ~2.5x faster than ``pd.factorize`` on them. The order
    of the uniques does not matter downstream (documents are sorted).
    """
    pa_arr = getattr(prompts.array, "_pa_array", None)
    if isinstance(pa_arr, pa.ChunkedArray) and (
        pa.types.is_string(pa_arr.type) or pa.types.is_large_string(pa_arr.type)
    ):
        return dictionary_encode(pa_arr)
    codes, uniques = pd.factorize(prompts, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), as_arrow(uniques)


@dataclass
class _CacheState:
    """Cache hits of one run's unique prompts (see :mod:`template_cache`)."""

    h1: np.ndarray
    h2: np.ndarray
    hits: Lookup
    valid: np.ndarray  # non-null unique prompts (the only ones cached)


def _cached_skeletons(
    raw: pa.Array, settings: TemplateSettings, seed: int
) -> tuple[TemplateCache, _CacheState, pa.ChunkedArray, np.ndarray]:
    """Skeletons of the unique prompts, cached ones read, the others computed,
    and the position of each unique prompt's skeleton in them."""
    assert settings.cache_dir is not None
    cache = TemplateCache(settings.cache_dir, settings, seed)
    valid = ~raw.is_null().to_numpy(zero_copy_only=False)
    present = raw if valid.all() else raw.filter(pa.array(valid))
    h1, h2 = prompt_keys(present)
    hits = cache.lookup(h1, h2)
    row = np.full(len(raw), -1, dtype=np.int64)
    row[valid] = hits.row
    miss = np.flatnonzero(row < 0)
    # skeletons of the hits (in file order), then of the misses, left where they are:
    # ``place`` maps each unique prompt to its position (a string take here would
    # copy every skeleton once more)
    fresh = skeletonize_arrow(raw.take(pa.array(miss)), settings.max_prompt_chars)
    present = np.flatnonzero(valid)
    place = np.empty(len(raw), dtype=np.int64)
    place[present[hits.prompt]] = np.arange(len(hits.prompt))
    place[miss] = len(hits.prompt) + np.arange(len(miss))
    both = pa.chunked_array([*hits.skeleton.chunks, *fresh.chunks], type=pa.large_string())
    hits.skeleton = pa.chunked_array([], type=pa.large_string())  # owned by ``both`` now
    return cache, _CacheState(h1, h2, hits, valid), both, place


def _cached_signatures(
    docs: pa.Array,
    u_doc: np.ndarray,
    cache: TemplateCache,
    state: _CacheState,
    settings: TemplateSettings,
    seed: int,
) -> np.ndarray:
    """Signatures of all documents: cached ones read, the others computed; the
    new prompts' skeletons and signatures are added to the cache.

    A document's signature depends on its text only, so a cached one is the one
    :func:`signatures` would compute.
    """
    n = len(docs)
    num_perm = settings.num_perm
    sig = np.empty((n, num_perm), dtype=np.uint32)
    known = np.zeros(n, dtype=bool)
    v_doc = u_doc[state.valid]  # document of each non-null unique prompt (-1: empty skeleton)
    hit_doc = v_doc[state.hits.prompt]  # document of each hit (file order)
    use = hit_doc >= 0
    sig[hit_doc[use]] = state.hits.sig[use]
    known[hit_doc[use]] = True
    state.hits.sig = np.empty((0, num_perm), dtype=np.uint32)  # copied: free it
    todo = np.flatnonzero(~known)
    if len(todo) == n:
        sig = signatures(docs, settings.shingle_size, num_perm, seed)
    elif len(todo):
        sig[todo] = signatures(docs.take(pa.array(todo)), settings.shingle_size, num_perm, seed)
    new = np.flatnonzero(state.hits.row < 0)
    if len(new):  # streamed into the cache part by part (empty skeleton: doc -1)
        cache.add(state.h1[new], state.h2[new], docs, v_doc[new], sig)
    return sig


def _sorted_documents(skel: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(document of each row: the rank of its skeleton among the distinct non-empty
    skeletons in byte order, -1 for a null or empty one; those skeletons, in that order)."""
    doc = np.empty(0, dtype=np.int64)
    if len(skel):
        doc = pc.rank(skel, sort_keys="ascending", tiebreaker="dense").to_numpy()
        doc = doc.astype(np.int64) - 1
        if skel.null_count:  # nulls share one rank after every value
            doc[~skel.is_valid().to_numpy(zero_copy_only=False)] = -1
    rows = np.flatnonzero(doc >= 0)
    if len(rows) == 0:
        return np.full(len(doc), -1, dtype=np.int64), pa.array([], type=pa.large_string())
    at = np.empty(int(doc[rows].max()) + 1, dtype=np.int64)
    at[doc[rows]] = rows  # one row of each skeleton (equal strings: any one will do)
    docs = _kernel.gather_strings(skel, at)  # no concatenated copy of the skeletons
    if len(docs[0].as_py()) == 0:  # the empty skeleton sorts first: no document
        docs = docs.slice(1)
        doc -= 1  # the empty one's rows become -1, the nulls' stay below
        doc[doc < -1] = -1
    return doc, docs


def _documents(
    raw: pa.Array, settings: TemplateSettings, seed: int
) -> tuple[np.ndarray, pa.Array, tuple[TemplateCache, _CacheState] | None]:
    """Step 1 of :func:`assign_templates`: (document of each unique prompt, -1 for
    none; the documents; the cache and its hits, ``None`` without ``cache_dir``).

    The documents are the unique, non-empty skeletons in lexicographic order. One sort
    pass (Arrow's dense rank: equal skeletons share a rank, ranks follow the byte
    order) gives both each unique prompt's document and the sorted documents, taken
    once from the skeletons at one position per rank. (A hash pass
    (dictionary_encode), a sort of its dictionary and a take cost twice the time and
    held the dictionary and the documents at once: the stage's memory peak.)
    """
    cached = place = None
    if settings.cache_dir is not None:
        cache, state, skel_u, place = _cached_skeletons(raw, settings, seed)
        cached = (cache, state)
    else:
        skel_u = skeletonize_arrow(raw, settings.max_prompt_chars)
    u_doc, docs = _sorted_documents(skel_u)
    if place is not None:
        u_doc = u_doc[place]  # back to the unique prompts' order
    return u_doc, docs, cached


def _priority(docs: pa.Array, d_count: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(priority of each document: most requested skeleton first, ties by a seeded
    hash, then rank; each document's id hash). The documents are turned into Python
    strings once, for both hashes: the id hash is needed later for the smallest
    document of each group."""
    n = len(docs)
    tie, doc_id_hash = hash_strings(docs, seed_key(seed), ID_KEY)
    order = np.lexsort((np.arange(n), tie, -d_count))
    prio = np.empty(n, dtype=np.int64)
    prio[order] = np.arange(n - 1, -1, -1)
    return prio, doc_id_hash


def _centers(
    docs: pa.Array,
    u_doc: np.ndarray,
    prio: np.ndarray,
    cached: tuple[TemplateCache, _CacheState] | None,
    settings: TemplateSettings,
    seed: int,
) -> np.ndarray:
    """Steps 2-6 of :func:`assign_templates`: the center document of each document
    (signatures, LSH candidates, verification, center clustering). The signatures and
    edges (n x num_perm) are freed on return, before the template table is built."""
    n = len(docs)
    if cached is not None:  # also adds the new prompts to the cache: even for one document
        sig = _cached_signatures(docs, u_doc, *cached, settings, seed)
    elif n > 1:
        sig = signatures(docs, settings.shingle_size, settings.num_perm, seed)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    src, dst = candidate_edges(sig, prio, settings.bands)
    ok = verify(sig, src, dst, settings.threshold)
    src, dst = src[ok], dst[ok]
    del ok
    return center_cluster(sig, src, dst, prio, settings.threshold)


def _groups(
    center: np.ndarray, doc_id_hash: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 7 of :func:`assign_templates`: (group of each document, the groups' center
    documents, the groups' ids: the id hash of the group's smallest document)."""
    n = len(center)
    g_codes, g_centers = pd.factorize(center)  # group per doc
    smallest = np.full(len(g_centers), n, dtype=np.int64)
    np.minimum.at(smallest, g_codes, np.arange(n))
    return g_codes, g_centers, hex_ids(doc_id_hash[smallest])


def _examples(
    raw: pa.Array,
    u_doc: np.ndarray,
    has: np.ndarray,
    center: np.ndarray,
    g_codes: np.ndarray,
    n_groups: int,
    p_count: np.ndarray,
) -> np.ndarray:
    """Example of each group (a unique prompt): the most frequent raw prompt of the
    group's center skeleton (ties: smallest raw prompt hash) - deterministic, order
    independent."""
    is_center = has & (u_doc == center[np.where(has, u_doc, 0)])
    cand = np.flatnonzero(is_center)
    # the raw-prompt hash only breaks ties for a group's most requests, so only those
    # candidates are hashed (most groups have one: materialising every candidate prompt as
    # a Python string was the largest memory peak of the stage)
    cand_g = g_codes[u_doc[cand]]
    cand_n = p_count[cand]
    best_n = np.zeros(n_groups, dtype=cand_n.dtype)
    np.maximum.at(best_n, cand_g, cand_n)
    top = cand_n == best_n[cand_g]  # only candidates tied for the most requests can win
    contested = top & (np.bincount(cand_g[top], minlength=n_groups)[cand_g] >= 2)
    raw_tie = np.zeros(len(cand), dtype=np.uint64)
    if contested.any():
        raw_tie[contested] = hash_strings(raw.take(pa.array(cand[contested])), ID_KEY)[0]
    pick = np.lexsort((raw_tie, -cand_n, cand_g))
    cand_sorted = cand[pick]
    cand_group = g_codes[u_doc[cand_sorted]]
    first = np.r_[True, cand_group[1:] != cand_group[:-1]]
    example_u = np.empty(n_groups, dtype=np.int64)
    example_u[cand_group[first]] = cand_sorted[first]
    return example_u


def _template_table(
    raw: pa.Array,
    docs: pa.Array,
    d_count: np.ndarray,
    g_codes: np.ndarray,
    g_centers: np.ndarray,
    g_ids: np.ndarray,
    example_u: np.ndarray,
) -> pd.DataFrame:
    """One row per template (:attr:`TemplateAssignment.templates`), most requested
    first (ties: id).

    The order is computed on the numbers, so every string column is gathered exactly
    once, already in that order. A template seen in a single request is that request's
    prompt: its text is left out (<NA>). Most templates are such one-offs (organic
    prompts), and their text was the largest table of the stage (~96% of the bytes at
    scale 1: 0.56 GB, 1.7 GB at scale 3).
    """
    n_groups = len(g_centers)
    n_req = np.bincount(g_codes, weights=d_count, minlength=n_groups).astype(np.int64)
    row = np.lexsort((g_ids, -n_req))
    once = n_req[row] < 2
    return pd.DataFrame(
        {
            "template_id": pd.arrays.ArrowStringArray(pa.array(g_ids[row], type=pa.large_string())),
            "skeleton": pd.arrays.ArrowStringArray(
                docs.take(pa.array(np.asarray(g_centers)[row], mask=once)).cast(pa.large_string())
            ),
            "example": pd.arrays.ArrowStringArray(raw.take(pa.array(example_u[row], mask=once))),
            "n_requests": n_req[row],
            "n_variants": np.bincount(g_codes, minlength=n_groups).astype(np.int64)[row],
        }
    )


def assign_templates(
    prompts: pd.Series,
    *,
    settings: TemplateSettings,
    seed: int,
    factorized: tuple[np.ndarray, pa.Array] | None = None,
) -> TemplateAssignment:
    """Group prompts into templates robust to slot fills, paraphrase and rotation.

    Algorithm (all vectorised):

    1. Unique prompts -> :func:`skeletonize` -> unique skeletons, sorted
       (sorting makes every later tie-break independent of input order).
    2. Word shingles (``settings.shingle_size``-grams; shorter skeletons use
       all their words) hashed to 64 bits with a seed-salted siphash.
    3. One-permutation MinHash with ``settings.num_perm`` bins, densified by
       rotation.
    4. LSH: ``settings.bands`` bands of ``num_perm / bands`` rows. With the
       defaults (16 x 4) a pair at Jaccard 0.6 shares a band with probability
       1 - (1 - 0.6^4)^16 = 0.89 and a pair at 0.3 with 0.12; every candidate
       is linked to its bucket's representative only (linear fan-out).
    5. Verification: keep an edge only if the estimated Jaccard (share of
       equal bins) is at least ``settings.threshold``.
    6. Connected components of the verified edges, peeled around their
       most requested skeleton (:func:`center_cluster`): chaining-resistant,
       every member is within Jaccard ``2t - 1`` of its template's center.
    7. Template id: ``"t"`` + 12 hex characters of a fixed-key siphash of
       the group's lexicographically smallest skeleton: stable across runs,
       seeds, input order and batches that contain the same group.
    """
    if settings.num_perm % settings.bands:
        raise ValueError(
            f"num_perm ({settings.num_perm}) must be a multiple of bands ({settings.bands})"
        )
    p_codes, p_uniques = factorize_text(prompts) if factorized is None else factorized
    if len(p_uniques) == 0:
        return _empty_assignment(prompts)
    raw = as_arrow(p_uniques)
    u_doc, docs, cached = _documents(raw, settings, seed)
    if len(docs) == 0:
        return _empty_assignment(prompts)
    p_count = np.bincount(p_codes[p_codes >= 0], minlength=len(p_uniques))
    has = u_doc >= 0
    d_count = np.bincount(u_doc[has], weights=p_count[has], minlength=len(docs)).astype(np.int64)
    prio, doc_id_hash = _priority(docs, d_count, seed)
    center = _centers(docs, u_doc, prio, cached, settings, seed)
    g_codes, g_centers, g_ids = _groups(center, doc_id_hash)
    del doc_id_hash
    example_u = _examples(raw, u_doc, has, center, g_codes, len(g_centers), p_count)
    templates = _template_table(raw, docs, d_count, g_codes, g_centers, g_ids, example_u)

    # Map back: prompt -> unique prompt -> doc -> group (the id strings are built only
    # on demand, see TemplateAssignment.template_id).
    u_group = np.where(has, g_codes[np.where(has, u_doc, 0)], -1)
    p_group = np.where(p_codes >= 0, u_group[np.maximum(p_codes, 0)], -1)
    return TemplateAssignment(p_group, g_ids.astype(object), templates, prompts.index)


# ---------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------
