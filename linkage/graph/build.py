"""The weighted account graph.

Choice argued: we run Leiden on the **account projection** of the heterogeneous
account–identifier graph, not on the bipartite graph itself.  In the bipartite
graph an identifier shared by thousands of strangers (carrier NAT, a popular
device) is a hub whose strength grows with its degree, and modularity happily
builds a community around it.  In the projection each identifier ``i`` gives
every account that holds it a *fixed budget* of link strength, spread over the
other holders, so a hub contributes almost nothing per pair while a card shared
by five accounts links them strongly.  The bipartite view is kept (``incidence``)
for evidence and for the peers.

Weights, from information content rather than constants:

* ``idf_i = ln(N / df_i)`` nats: the surprise of seeing two accounts share ``i``
  when ``df_i`` of ``N`` accounts hold it (``N`` rounded up to a power of two so
  that adding a few unrelated accounts does not perturb every weight).
* ``a_ui``: the share of account ``u``'s observations *of that kind* that are
  ``i`` (a farm account sending 300 requests on one template is bound to it more
  than an account that pasted a viral prompt once).  Sign-up attributes have
  ``a = 1``.
* pair weight through ``i``: ``idf_i * sqrt(a_ui * a_vi) / d_i`` where ``d_i`` is
  the number of projected neighbours each holder gets (``df_i - 1`` for a clique).

Supernodes: identifiers held by more than ``dense_clique_max`` accounts are not
expanded into cliques (quadratic); their holders are joined by a seeded random
circulant graph of degree ``dense_clique_max`` (an expander: it keeps "these
accounts belong together" with linear edges), with the same per-account budget.
Identifiers held by one account link nobody and are dropped.

Feedback: identifiers held by accounts confirmed as farms weigh
``1 + confirmed_boost`` times more (an analyst's verdict is strong evidence that
what those accounts share is farm infrastructure).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import igraph as ig
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix

from linkage.graph import _kernel
from linkage.identifiers.hashing import siphash_strings
from linkage.identifiers.kinds import provider_mask
from linkage.ingest.parse import STRING_DTYPE
from linkage.settings import GraphSettings

log = logging.getLogger(__name__)


@dataclass
class AccountGraph:
    """The account projection plus the bipartite incidence it came from.

    The projection is kept as numpy edge arrays (``src < dst``, sorted, one row per
    account pair, summed ``weight``); :attr:`graph` builds the igraph object from them
    on first use. The pipeline itself never builds the whole graph: detection builds
    igraph graphs only for the components Leiden has to solve (building an igraph
    graph costs ~1 µs per edge in the bindings, the largest single cost of the stage).
    """

    accounts: pd.Index  # account ids in vertex order (sorted)
    incidence: pd.DataFrame  # acc (int), ident (int), kind, value, a (share), n
    identifiers: pd.DataFrame  # per ident code: kind, value, df, idf, weight
    n_reference: int  # N used in idf
    src: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    dst: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    weight: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    @cached_property
    def graph(self) -> ig.Graph:
        """The projection as an igraph graph (vertex ``name``, edge ``weight``)."""
        g = ig.Graph(n=len(self.accounts), edges=self.edge_array(), directed=False)
        g.vs["name"] = self.accounts.to_list()
        g.es["weight"] = self.weight
        return g

    def edge_array(self) -> np.ndarray:
        """(n_edges, 2) int64 array of the projected edges."""
        return np.column_stack([self.src, self.dst]).astype(np.int64, copy=False).reshape(-1, 2)

    @property
    def n_edges(self) -> int:
        return len(self.src)

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)


def text_hash(values: np.ndarray | pd.Index, *, seed: int) -> np.ndarray:
    """64-bit hash of strings, stable across processes and row orders (seeded)."""
    return pd.util.hash_array(
        np.asarray(values, dtype=object), hash_key=_hash_key(seed), categorize=False
    )


def _hash_key(seed: int) -> str:
    return f"linkage{seed:09d}"[-16:].rjust(16, "0")


def _text_hash_arrow(values: pa.Array, *, seed: int) -> np.ndarray:
    """:func:`text_hash` of a null-free Arrow string array, by the compiled SipHash on
    its buffers (the same function as pandas' ``hash_array``; no Python strings)."""
    return siphash_strings(values, _hash_key(seed))


def _strings(col: pd.Series) -> pa.Array:
    """A text column as one large_string Arrow array (zero-copy when Arrow-backed;
    other values as their ``str``, missing ones null)."""
    arr = getattr(col.array, "_pa_array", None)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        text = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v))
        arr = pa.array(text.to_numpy(dtype=object), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def _sorted_factorize(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(int64 code per value, the distinct values sorted): ``pd.factorize(sort=True)`` on
    Arrow (one dictionary encoding; its dictionary sorted and the codes remapped)."""
    enc = pc.dictionary_encode(values)
    dictionary = enc.dictionary
    order = pc.array_sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    return codes, dictionary.take(pa.array(order)).cast(pa.large_string())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads bits so combined hashes sort like random keys."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def reference_size(n: int) -> int:
    """N rounded up to a power of two (>= 2): stable under small additions."""
    return int(2 ** np.ceil(np.log2(max(n, 2))))


def build_graph(
    edges: pd.DataFrame,
    accounts: pd.Index | pd.Series,
    *,
    settings: GraphSettings,
    seed: int = 0,
    confirmed: pd.Index | None = None,
) -> AccountGraph:
    """Build the weighted account projection from account–identifier ``edges``.

    ``edges``: ``account_id, kind, value, n`` (one row per pair, see Identifiers).
    ``accounts``: every account (vertices; isolated ones included).
    ``confirmed``: account ids confirmed as farms by feedback (optional).
    """
    acc_index = pd.Index(pd.unique(pd.Series(accounts, dtype="string")).astype(str)).sort_values()
    n_acc = len(acc_index)
    n_ref = reference_size(n_acc)
    rows, acc_code, value_col = _known_rows(edges, acc_index)
    n_obs = edges["n"].to_numpy(dtype=np.float64)[rows]
    ids = _identifier_codes(edges["kind"].to_numpy()[rows], value_col, n_ref)
    a = _shares(acc_code, n_obs, ids)
    weight = _boosted_weight(ids, acc_index, acc_code, confirmed, settings=settings)
    identifiers, incidence = _tables(ids, weight, acc_code, a, n_obs)
    h_acc = text_hash(acc_index.to_numpy(), seed=seed)
    src, dst, w = _project(
        incidence, ids, weight, (h_acc, _identifier_hash(ids, seed=seed)), settings=settings
    )
    log.info(
        "graph: %d accounts, %d identifiers (%d shared), %d projected edges",
        n_acc,
        len(ids.df),
        int((ids.df >= settings.min_accounts).sum()),
        len(src),
    )
    return AccountGraph(
        accounts=acc_index,
        incidence=incidence,
        identifiers=identifiers,
        n_reference=n_ref,
        src=src,
        dst=dst,
        weight=w,
    )


def _known_rows(
    edges: pd.DataFrame, acc_index: pd.Index
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """(positions in ``edges``, account code, value) of the rows with an account and a
    value whose account is one of ``acc_index``: the only rows the graph uses."""
    # strings stay Arrow from here on: account positions by a hash lookup, identifier
    # values by a dictionary encoding with its dictionary sorted, the value columns
    # by a take (no Python string per row, no object arrays converted back to Arrow)
    account_col = _strings(edges["account_id"])
    value_col = _strings(edges["value"])
    present = pc.and_(pc.is_valid(account_col), pc.is_valid(value_col))
    keep = present.to_numpy(zero_copy_only=False)
    if not keep.all():
        account_col, value_col = account_col.filter(present), value_col.filter(present)
    acc_code = pc.fill_null(
        pc.index_in(account_col, value_set=pa.array(acc_index.to_numpy(), type=pa.large_string())),
        -1,
    ).to_numpy(zero_copy_only=False)
    known = acc_code >= 0
    rows = np.flatnonzero(keep)[known]
    acc_code = acc_code[known]
    if not known.all():
        value_col = value_col.filter(pa.array(known))
    return rows, acc_code, value_col


@dataclass(frozen=True)
class _Codes:
    """Identifiers as integer codes, per row and per identifier (see :func:`_identifier_codes`)."""

    kind_codes: np.ndarray  # per row: code into kind_names
    kind_names: np.ndarray  # sorted kinds (object array)
    value_codes: np.ndarray  # per row: code into value_names
    value_names: pa.Array  # sorted distinct values
    ident_code: np.ndarray  # per row: identifier code
    ident_kind: np.ndarray  # per identifier: code into kind_names
    ident_value: np.ndarray  # per identifier: code into value_names
    df: np.ndarray  # per identifier: number of rows (accounts) holding it
    idf: np.ndarray  # per identifier: ln(n_ref / df)


def _identifier_codes(kinds: np.ndarray, value_col: pa.Array, n_ref: int) -> _Codes:
    """Identifiers as integer codes: (kind code, value code), both sorted by content, so the
    numbering never depends on row order and no per-row string is ever built."""
    kind_codes, kind_names = pd.factorize(kinds, sort=True)
    kind_names = np.asarray(kind_names, dtype=object)
    value_codes, value_names = _sorted_factorize(value_col)
    n_values = len(value_names)
    pair = kind_codes.astype(np.int64) * max(n_values, 1) + value_codes
    ident_pairs, ident_code = np.unique(pair, return_inverse=True)
    df = np.bincount(ident_code, minlength=len(ident_pairs))
    return _Codes(
        kind_codes=kind_codes,
        kind_names=kind_names,
        value_codes=value_codes,
        value_names=value_names,
        ident_code=ident_code,
        ident_kind=ident_pairs // max(n_values, 1),
        ident_value=ident_pairs % max(n_values, 1),
        df=df,
        idf=np.log(n_ref / np.maximum(df, 1)),
    )


def _shares(acc_code: np.ndarray, n_obs: np.ndarray, ids: _Codes) -> np.ndarray:
    """``a``: each row's share of its account's observations of that kind."""
    key_ak = acc_code.astype(np.int64) * len(ids.kind_names) + ids.kind_codes
    tot = pd.Series(n_obs).groupby(key_ak).transform("sum").to_numpy()
    a = np.where(tot > 0, n_obs / np.maximum(tot, 1e-12), 0.0)
    # provider identifiers (``x:<kind>``: friends, phones, wallets...) are attributes, not
    # traffic: each value an account holds is wholly its own, like a sign-up attribute, so
    # sharing 20 rare friends is 20 coincidences, not 20/k of one (k = its list length)
    attribute_kind = provider_mask(ids.kind_names)
    return np.where(attribute_kind[ids.kind_codes], 1.0, a)


def _boosted_weight(
    ids: _Codes,
    acc_index: pd.Index,
    acc_code: np.ndarray,
    confirmed: pd.Index | None,
    *,
    settings: GraphSettings,
) -> np.ndarray:
    """Per identifier: its idf, times ``1 + confirmed_boost`` when a confirmed farm holds it."""
    weight = ids.idf.copy()
    if confirmed is not None and len(confirmed):
        conf_codes = acc_index.get_indexer(pd.Index(confirmed).astype(str))
        conf_codes = conf_codes[conf_codes >= 0]
        is_conf = np.isin(acc_code, conf_codes)
        boosted = np.unique(ids.ident_code[is_conf])
        weight[boosted] *= 1.0 + settings.confirmed_boost
    return weight


def _tables(
    ids: _Codes, weight: np.ndarray, acc_code: np.ndarray, a: np.ndarray, n_obs: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:attr:`AccountGraph.identifiers`, :attr:`AccountGraph.incidence`)."""
    identifiers = pd.DataFrame(
        {
            "kind": pd.array(ids.kind_names[ids.ident_kind], dtype=STRING_DTYPE),
            "value": pd.array(ids.value_names.take(pa.array(ids.ident_value)), dtype=STRING_DTYPE),
            "df": ids.df,
            "idf": ids.idf,
            "weight": weight,
        }
    )
    incidence = pd.DataFrame(
        {
            "acc": acc_code.astype(np.int64),
            "ident": ids.ident_code.astype(np.int64),
            "kind": pd.Categorical.from_codes(ids.kind_codes, categories=ids.kind_names),
            "value": pd.array(ids.value_names.take(pa.array(ids.value_codes)), dtype=STRING_DTYPE),
            "a": a,
            "n": n_obs,
        }
    )
    return identifiers, incidence


def _identifier_hash(ids: _Codes, *, seed: int) -> np.ndarray:
    """Per identifier: a seeded content hash of (kind, value), independent of numbering."""
    with np.errstate(over="ignore"):
        return _mix(
            text_hash(ids.kind_names, seed=seed)[ids.ident_kind] * np.uint64(0x9E3779B97F4A7C15)
            ^ _text_hash_arrow(ids.value_names, seed=seed)[ids.ident_value]
        )


def _project(
    inc: pd.DataFrame,
    ids: _Codes,
    weight: np.ndarray,
    hashes: tuple[np.ndarray, np.ndarray],
    *,
    settings: GraphSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected edges (src < dst, summed over identifiers), vectorised by group size.

    ``hashes``: (per account, per identifier) content hashes, the holders' random order."""
    df, idf = ids.df, ids.idf
    h_acc, h_ident = hashes
    m = settings.dense_clique_max
    shared = df[inc["ident"].to_numpy()] >= settings.min_accounts
    if settings.min_link_nats > 0:
        shared &= idf[inc["ident"].to_numpy()] >= settings.min_link_nats
    sub = inc.loc[shared, ["acc", "ident", "a"]]
    if sub.empty:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float)
    # deterministic random order of holders within each identifier (content hash, not row order)
    with np.errstate(over="ignore"):
        rnd = _mix(h_ident[sub["ident"].to_numpy()] ^ _mix(h_acc[sub["acc"].to_numpy()]))
    order = np.lexsort((rnd, sub["ident"].to_numpy()))
    acc = sub["acc"].to_numpy()[order]
    ident = sub["ident"].to_numpy()[order]
    sq = np.sqrt(sub["a"].to_numpy()[order])
    k = df[ident]
    starts = np.r_[0, np.flatnonzero(np.diff(ident)) + 1]
    pos = np.arange(len(ident)) - np.repeat(starts, np.diff(np.r_[starts, len(ident)]))

    # small identifiers: full cliques; supernodes: a seeded random circulant of degree ~m
    # (offsets spread geometrically from 1 to k/2: logarithmic diameter). The offsets are
    # computed here; the edges are written by a compiled kernel, in the order and with
    # the arithmetic of the array formulation (linkage.graph._kernel).
    gsize = df[ident[starts]]
    big = k > m
    rows = np.flatnonzero(big)
    kb = k[rows]
    pb = pos[rows]
    base = rows - pb
    half = max(1, m // 2)
    offs = np.empty((half, len(rows)), dtype=np.int64)
    for j in range(half):
        off = np.maximum(1, np.floor((kb / 2.0) ** (j / max(half - 1, 1))).astype(np.int64))
        offs[j] = np.minimum(off + j, kb - 1)  # distinct offsets even for small k
    lo, hi, w = _kernel.emit_edges(
        acc, ident, sq, weight, starts, gsize, m, rows, base, pb, kb, offs, half
    )
    if not len(lo):
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float)
    # sum parallel edges: a sparse matrix's CSR conversion is a linear counting sort, ~8x
    # faster than sorting the pair keys; rows come out by src, columns sorted within a row
    n = int(hi.max()) + 1
    mat = coo_matrix((w, (lo, hi)), shape=(n, n)).tocsr()
    mat.sum_duplicates()
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(mat.indptr))
    return src, mat.indices.astype(np.int64), mat.data.astype(np.float64, copy=False)
