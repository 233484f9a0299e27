"""Account–identifier edges: one row per (account, kind, value), in the public order.

The rows come from the SQL aggregation (:func:`linkage.identifiers.sql.run_aggregation`,
``edges``: request pairs and sign-up observations of every kind, and the optional
identifiers table as ``x:<kind>``); this module only puts them in the public schema
and order: declared kinds in their ``edge_rank`` order (the data contract's, see
:mod:`linkage.identifiers.kinds`), then ``x:`` kinds by name; within a kind by account
(order of the accounts table), then value (code point order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.identifiers._codes import NAT
from linkage.identifiers.kinds import edge_order_key

__all__ = ["EDGE_COLUMNS", "edges_from_table", "empty_edges"]

EDGE_COLUMNS: tuple[str, ...] = ("account_id", "kind", "value", "n", "first_ts", "last_ts")


def _string_column(arr: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.arrays.ArrowStringArray(arr.cast(pa.large_string()))


def _kinds_in_order(kinds: list[str]) -> tuple[list[str], list[int]]:
    """Kinds with their rank: declared order first, then the others by name."""
    order = sorted(kinds, key=edge_order_key)
    return order, list(range(len(order)))


def _ns_timestamps(ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 epoch ns (``NAT`` = unknown) → ``datetime64[ns, UTC]``."""
    return pd.DatetimeIndex(ns.view("datetime64[ns]"), copy=False).tz_localize("UTC")


def _ns(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column, NAT).to_numpy().astype(np.int64, copy=False)


def _dense_rank(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row → distinct index, distinct index → rank from 0 in code point order): the
    distinct values are sorted, not the rows (far fewer)."""
    if len(values) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    encoded = pc.dictionary_encode(values)
    rank = pc.rank(encoded.dictionary, sort_keys="ascending").to_numpy().astype(np.int64) - 1
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), rank


@dataclass
class _EdgeParts:
    """The edge rows of the SQL tables, gathered part by part (the rows with their own
    value strings, then the rows of each coded kind with its vocabulary), unsorted."""

    words: list[pa.Array] = field(default_factory=list)  # each part's value strings
    kind_names: list[str] = field(default_factory=list)
    kind_idx: list[np.ndarray] = field(default_factory=list)  # into kind_names
    word_idx: list[np.ndarray] = field(default_factory=list)  # into all words, concatenated
    value_rank: list[np.ndarray] = field(default_factory=list)  # within the part's kind
    acc: list[np.ndarray] = field(default_factory=list)
    n: list[np.ndarray] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)
    last: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        t: pa.Table,
        words: pa.Array,
        kinds: np.ndarray,
        names: list[str],
        idx: np.ndarray,
        rank: np.ndarray,
    ) -> None:
        """The rows of ``t``: kind ``names[kinds]``, value ``words[idx]`` of rank ``rank``."""
        offset = sum(len(w) for w in self.words)
        self.words.append(words)
        self.kind_idx.append(kinds + len(self.kind_names))
        self.kind_names.extend(names)
        self.word_idx.append(idx + offset)
        self.value_rank.append(rank)
        self.acc.append(t.column("account_code").to_numpy().astype(np.int64, copy=False))
        self.n.append(t.column("n").to_numpy().astype(np.int64, copy=False))
        self.first.append(_ns(t.column("first_ts")))
        self.last.append(_ns(t.column("last_ts")))


def _kinds_of(t: pa.Table) -> tuple[np.ndarray, list[str]]:
    encoded = pc.dictionary_encode(t.column("kind")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def _edge_parts(
    table: pa.Table, coded: pa.Table | None, vocabularies: Mapping[str, pa.Array] | None
) -> _EdgeParts:
    """The rows of both SQL edge tables (see :func:`edges_from_table`)."""
    parts = _EdgeParts()
    if table.num_rows:
        values = table.column("value").combine_chunks()
        idx, rank = _dense_rank(values)
        parts.add(table, values, *_kinds_of(table), np.arange(len(values)), rank[idx])
    if coded is not None and coded.num_rows:
        kinds, names = _kinds_of(coded)
        code = coded.column("code").to_numpy().astype(np.int64, copy=False)
        for j, name in enumerate(names):  # one vocabulary per coded kind
            rows = np.flatnonzero(kinds == j)
            vocab = pa.array((vocabularies or {})[name])
            rank = pc.rank(vocab, sort_keys="ascending").to_numpy().astype(np.int64) - 1
            parts.add(
                coded.take(pa.array(rows)),
                vocab,
                np.zeros(len(rows), np.int64),
                [name],
                code[rows],
                rank[code[rows]],
            )
    return parts


def _row_order(
    parts: _EdgeParts, n_accounts: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(the kinds in public order, each row's kind rank, each row's account, the rows in
    public order): one packed int64 sort key (kind rank, account, value rank) when
    the three fit, else a lexsort."""
    order_of_kind, _ = _kinds_in_order(parts.kind_names)
    krank_of = np.array([order_of_kind.index(k) for k in parts.kind_names], np.int64)
    krank = krank_of[np.concatenate(parts.kind_idx)]
    accs, vrank = np.concatenate(parts.acc), np.concatenate(parts.value_rank)
    if n_accounts < 1 << 26 and len(vrank) < 1 << 32 and len(parts.kind_names) < 1 << 5:
        order = np.argsort((krank << 58) | (accs << 32) | vrank)  # one packed key
    else:
        order = np.lexsort((vrank, accs, krank))
    return order_of_kind, krank, accs, order


def edges_from_table(
    table: pa.Table,
    account_ids: pa.Array,
    coded: pa.Table | None = None,
    vocabularies: Mapping[str, pa.Array] | None = None,
) -> pd.DataFrame:
    """The SQL edge tables (times in epoch ns) as the public edge frame, sorted.

    ``table``: ``account_code, kind, value, n, first_ts, last_ts`` with ``account_code``
    the position in ``account_ids``; ``coded``: the same with ``code`` (int) for
    ``value``, whose strings are ``vocabularies[kind][code]`` (value order then comes
    from ranking the vocabulary, not the edges).

    Every row gets one packed int64 sort key (kind rank, account, value rank) and the
    string columns are gathered once, in the final order.
    """
    parts = _edge_parts(table, coded, vocabularies)
    if not parts.kind_names:
        return empty_edges()
    order_of_kind, krank, accs, order = _row_order(parts, len(account_ids))
    counts = np.bincount(krank, minlength=len(parts.kind_names))
    kind_column = pa.concat_arrays(
        [
            pa.array([k], pa.large_string()).take(np.zeros(c, np.int64))
            for k, c in zip(order_of_kind, counts, strict=True)
        ]
    )
    all_words = pa.concat_arrays([w.cast(pa.large_string()) for w in parts.words])
    word_idx = np.concatenate(parts.word_idx)
    return pd.DataFrame(
        {
            "account_id": _string_column(account_ids.take(pa.array(accs[order]))),
            "kind": _string_column(kind_column),
            "value": _string_column(all_words.take(pa.array(word_idx[order]))),
            "n": np.concatenate(parts.n)[order],
            "first_ts": _ns_timestamps(np.concatenate(parts.first)[order]),
            "last_ts": _ns_timestamps(np.concatenate(parts.last)[order]),
        }
    )


def empty_edges() -> pd.DataFrame:
    """An edge frame without rows (the public dtypes)."""
    empty = pa.array([], pa.large_string())
    return pd.DataFrame(
        {
            "account_id": _string_column(empty),
            "kind": _string_column(empty),
            "value": _string_column(empty),
            "n": np.empty(0, np.int64),
            "first_ts": _ns_timestamps(np.empty(0, np.int64)),
            "last_ts": _ns_timestamps(np.empty(0, np.int64)),
        }
    )
