"""The compiled template kernels against their definitions (RE2 split, pandas hashing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.identifiers import _template_kernel as kernel
from linkage.identifiers import grouping, sketch
from linkage.identifiers import templates as tm
from linkage.settings import TemplateSettings

M64 = (1 << 64) - 1
EMPTY = 0xFFFFFFFF
ROTATE = 0x9E3779B1

# Adversarial pieces: slot tokens and placeholders, code fences, hex ids, UUIDs,
# quotes, Unicode letters / digits / marks of other scripts, odd whitespace.
PIECES = [
    "<n>",
    "<Q>",
    "<code>",
    "<id>",
    "<name>",
    "\ue000",
    "\ue003",
    "```py\nx = 1\n```",
    "```unterminated",
    "\n    indented code",
    "`inline`",
    "0xdeadbeef",
    "deadbeef12",
    "123e4567-e89b-12d3-a456-426614174000",
    "https://ex.am/ple?q=1",
    "a.b@example.com",
    '"quoted"',
    "“typo”",
    "'single'",
    "don't",
    " Alice Smith",
    ", Bob",
    "3.14",
    "٣٤",
    "Ⅻ",
    "é",
    "e\u0301",
    "ß",
    "İ",
    "中文",
    "😀",
    "\u00a0",
    "\u2028",
    "\t",
    "  ",
    "-",
    "...",
    "_",
]
texts = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=0, max_size=14
).map("".join)


def _splitmix(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & M64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _pandas_hash(values: list[str], key: str) -> list[int]:
    arr = np.array(values, dtype=object)
    return pd.util.hash_array(arr, hash_key=key, categorize=False).tolist()


def _reference_signature(doc: str, k: int, num_perm: int, seed: int) -> list[int]:
    """The definition, one document in plain Python: RE2 tokens, pandas' seeded
    hash, shingle fold, one-permutation MinHash, densification by rotation."""
    key = sketch.seed_key(seed)
    pieces = pc.split_pattern_regex(pa.array([doc]), sketch.TOKEN_SPLIT)[0].as_py()
    tokens = [t for t in pieces if t]
    if tokens:
        th = _pandas_hash(tokens, key)
        size = min(len(tokens), k)
        shingles = []
        for s in range(len(tokens) - size + 1):
            h = (seed & 0xFFFFFFFF) + 1
            for j in range(size):
                h = _splitmix((h * 0x9E3779B97F4A7C15 + th[s + j]) & M64)
            shingles.append(h)
    else:
        shingles = [_splitmix(_pandas_hash([doc], key)[0])]
    raw = [EMPTY] * num_perm
    for h in shingles:
        raw[h % num_perm] = min(raw[h % num_perm], h >> 32)
    out = []
    for c in range(num_perm):
        dist = next(d for d in range(num_perm) if raw[(c + d) % num_perm] != EMPTY)
        out.append((raw[(c + dist) % num_perm] + dist * ROTATE) % 2**32)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=1, max_size=25), st.integers(0, 2**40))
def test_signatures_match_definition_on_adversarial_text(docs: list[str], seed: int) -> None:
    # raw text (placeholders, any Unicode) and its skeletons: both are documents
    skel = tm.skeletonize(pd.Series(docs, dtype=object)).dropna().tolist()
    docs = sorted({d for d in docs + skel if d})
    if not docs:
        return
    arr = pa.array(docs, type=pa.large_string())
    for k, num_perm in ((3, 64), (1, 8), (2, 16)):
        got = sketch.signatures(arr, k, num_perm, seed)
        want = [_reference_signature(d, k, num_perm, seed) for d in docs]
        assert got.tolist() == want


def test_signature_edge_cases() -> None:
    docs = ["...", "-", "a", "a b", "<n> <q>", "x" * 5000, " ".join(["w"] * 3000), "é,ß;中"]
    arr = pa.array(docs, type=pa.large_string())
    got = sketch.signatures(arr, 3, 64, 7)
    assert got.tolist() == [_reference_signature(d, 3, 64, 7) for d in docs]
    # chunked on a thread pool: the same as one document at a time
    many = pa.array([f"doc {i} word {i % 7}" for i in range(40_000)], type=pa.large_string())
    whole = sketch.signatures(many, 3, 64, 1)
    assert (whole[12345] == sketch.signatures(many.slice(12345, 1), 3, 64, 1)[0]).all()
    assert len(np.unique(whole, axis=0)) > 30_000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=30))
def test_siphash_matches_pandas_hash_array(values: list[str]) -> None:
    # arrow rejects lone surrogates as UTF-8, as the prompts never contain them
    values = [v.encode("utf-8", "replace").decode("utf-8") for v in values]
    arr = pa.array(values, type=pa.large_string())
    for key in ("linkage-template", sketch.seed_key(12345)):
        got = kernel.siphash_strings(arr, key)
        assert got.tolist() == _pandas_hash(values, key)
    sliced = arr.slice(len(values) // 2)
    assert kernel.siphash_strings(sliced, "linkage-template").tolist() == _pandas_hash(
        values[len(values) // 2 :], "linkage-template"
    )


def test_token_class_is_re2_word_class() -> None:
    table = kernel.token_class()
    for ch in "aZ09_<>éß中٣Ⅻ\u0301":
        assert table[ord(ch)], ch
    for ch in " -.,'\"\t\n\ue000😀\u00a0":
        assert not table[ord(ch)], ch
    # a sample of code points checked against RE2 one by one
    rng = np.random.default_rng(3)
    cps = rng.integers(0, 0x30000, 3000)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    chars = pa.array([chr(c) for c in cps])
    want = pc.match_substring_regex(chars, r"^[\p{L}\p{N}\p{M}_<>]$").to_numpy(zero_copy_only=False)
    assert (table[cps] == want).all()


def test_n_equal_counts_equal_bins() -> None:
    rng = np.random.default_rng(4)
    sig = rng.integers(0, 3, (500, 64), dtype=np.uint32)
    a = rng.integers(0, 500, 200_000)
    b = rng.integers(0, 500, 200_000)
    assert (grouping.n_equal(sig, a, b) == (sig[a] == sig[b]).sum(axis=1)).all()


def test_assignment_is_deterministic_across_calls() -> None:
    prompts = pd.Series([f"Summarise the report number {i} for Alice" for i in range(50)])
    a = tm.assign_templates(prompts, settings=TemplateSettings(), seed=3)
    b = tm.assign_templates(prompts, settings=TemplateSettings(), seed=3)
    assert (a.codes == b.codes).all()
    assert a.templates.equals(b.templates)


def _candidate_edges_reference(
    sig: np.ndarray, prio: np.ndarray, bands: int
) -> tuple[np.ndarray, np.ndarray]:
    """The array formulation the compiled LSH replaced: band keys by ``_band_keys``,
    buckets by ``pd.factorize``, the best member by ``np.maximum.at``, distinct packed
    edges by ``np.unique``."""
    n = len(sig)
    rows = sig.shape[1] // bands
    node_of_prio = np.empty(n, dtype=np.int64)
    node_of_prio[prio] = np.arange(n)
    found = []
    for b in range(bands):
        codes, _ = pd.factorize(sketch.band_keys(sig, b, rows))
        size = np.bincount(codes)
        multi = size[codes] >= 2
        best = np.full(len(size), -1, dtype=np.int64)
        np.maximum.at(best, codes[multi], prio[multi])
        members = np.flatnonzero(multi)
        rep = node_of_prio[best[codes[members]]]
        keep = rep != members
        found.append(members[keep] * n + rep[keep])
    packed = np.unique(np.concatenate(found))
    return packed // n, packed % n


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 400),
    values=st.integers(1, 4),
    shape=st.sampled_from([(64, 16), (60, 20), (12, 4), (8, 8), (9, 3)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_candidate_edges_match_array_formulation(
    n: int, values: int, shape: tuple[int, int], seed: int
) -> None:
    # few distinct bin values: many buckets of several members, in every band
    num_perm, bands = shape
    rng = np.random.default_rng(seed)
    sig = rng.integers(0, values, (n, num_perm)).astype(np.uint32)
    sig[rng.random(sig.shape) < 0.05] = EMPTY  # the top value too
    prio = rng.permutation(n).astype(np.int64)
    src, dst = sketch.candidate_edges(sig, prio, bands)
    want_src, want_dst = _candidate_edges_reference(sig, prio, bands)
    assert np.array_equal(src, want_src)
    assert np.array_equal(dst, want_dst)
    assert src.dtype == dst.dtype == np.int64


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "é", "<n> x"]))),
        min_size=1,
        max_size=4,
    )
)
def test_sorted_documents_match_dictionary_and_sort(chunks: list[list[str | None]]) -> None:
    skel = pa.chunked_array([pa.array(c, type=pa.large_string()) for c in chunks])
    doc, docs = tm._sorted_documents(skel)
    values = [v for c in chunks for v in c]
    want_docs = sorted({v for v in values if v})
    assert docs.to_pylist() == want_docs
    assert docs.type == pa.large_string()
    rank = {v: i for i, v in enumerate(want_docs)}
    assert doc.tolist() == [rank[v] if v else -1 for v in values]


def test_gather_strings_is_a_take_across_chunks() -> None:
    rng = np.random.default_rng(5)
    words = ["", "x", "héllo", "a much longer string with spaces", "\ue000<n>"]
    chunks = [
        pa.array(list(rng.choice(words, size=k)), type=pa.large_string()) for k in (3, 0, 7, 1)
    ]
    arr = pa.chunked_array(chunks)
    rows = rng.integers(0, len(arr), 40)
    got = kernel.gather_strings(arr, rows)
    assert got.to_pylist() == arr.take(pa.array(rows)).to_pylist()
    sliced = arr.combine_chunks().slice(2, 6)  # an offset into the buffers
    assert kernel.gather_strings(sliced, np.array([5, 0, 3])).to_pylist() == [
        sliced[5].as_py(),
        sliced[0].as_py(),
        sliced[3].as_py(),
    ]
