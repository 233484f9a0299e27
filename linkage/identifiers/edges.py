"""Account–identifier edges: one row per (account, kind, value).

The heavy part is aggregating request rows into (account, value) pairs.  It is
written as a ``GROUP BY account_code, value_code`` over integer codes (the
equivalent of ``SELECT account, value, count(*), min(ts), max(ts) ... GROUP BY
1, 2`` on dictionary-encoded columns), so it maps to SQL/Spark and costs a hash
aggregation, not a Python loop.  Sign-up attributes become pairs with ``n = 1``
and ``first_ts = last_ts = created_at`` and are merged with the request pairs
of the same kind by a second (small) aggregation: sum of ``n``, min/max of the
timestamps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.contract import BUILTIN_KINDS
from linkage.identifiers._codes import NAT, Coded, as_string_series, epoch_ns

__all__ = [
    "EDGE_COLUMNS",
    "combine_pairs",
    "edges_frame",
    "empty_edges",
    "extra_identifier_edges",
    "order_edges",
    "pair_stats",
    "signup_pairs",
]

EDGE_COLUMNS: tuple[str, ...] = ("account_id", "kind", "value", "n", "first_ts", "last_ts")
PAIR_COLUMNS: tuple[str, ...] = ("a", "v", "n", "first", "last")


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": np.empty(0, np.int64),
            "v": np.empty(0, np.int64),
            "n": np.empty(0, np.int64),
            "first": np.empty(0, "datetime64[ns]"),
            "last": np.empty(0, "datetime64[ns]"),
        }
    )


def pair_stats(acc: np.ndarray, val: np.ndarray, ts_ns: np.ndarray, n_values: int) -> pd.DataFrame:
    """Distinct (account code ``a``, value code ``v``) pairs with count and first/last time.

    Rows where either code is -1 are skipped.  ``first``/``last`` are naive
    ``datetime64[ns]`` (UTC).  Aggregates on one int64 key ``a * n_values + v``.
    """
    m = (acc >= 0) & (val >= 0)
    if not m.any():
        return _empty_pairs()
    if m.all():
        a, v, t = acc, val, ts_ns
    else:
        a, v, t = acc[m], val[m], ts_ns[m]
    width = max(n_values, 1)
    key = a.astype(np.int64) * width + v
    g = (
        pd.DataFrame({"k": key, "t": t.view("datetime64[ns]")}, copy=False)
        .groupby("k", sort=False)["t"]
        .agg(["size", "min", "max"])
    )
    k = g.index.to_numpy()
    return pd.DataFrame(
        {
            "a": k // width,
            "v": k % width,
            "n": g["size"].to_numpy(np.int64),
            "first": g["min"].to_numpy(),
            "last": g["max"].to_numpy(),
        }
    )


def signup_pairs(val: Coded, created_ns: np.ndarray) -> pd.DataFrame:
    """Pairs from a per-account attribute (row i = account code i): ``n = 1``, times = sign-up."""
    m = val.codes >= 0
    t = created_ns[m].view("datetime64[ns]")
    return pd.DataFrame(
        {
            "a": np.flatnonzero(m).astype(np.int64),
            "v": val.codes[m].astype(np.int64),
            "n": np.ones(int(m.sum()), np.int64),
            "first": t,
            "last": t,
        }
    )


def combine_pairs(*frames: pd.DataFrame) -> pd.DataFrame:
    """Merge pair frames on the same vocabulary: ``n`` summed, ``first`` min, ``last`` max."""
    frames = tuple(f for f in frames if len(f))
    if not frames:
        return _empty_pairs()
    if len(frames) == 1:
        return frames[0]
    both = pd.concat(frames, ignore_index=True)
    return (
        both.groupby(["a", "v"], sort=False)
        .agg(n=("n", "sum"), first=("first", "min"), last=("last", "max"))
        .reset_index()
    )


def empty_edges() -> pd.DataFrame:
    return edges_frame(_empty_pairs(), "ip", np.empty(0, object), pd.Index([], dtype="string"))


def _arrow_strings(values: pa.Array | pd.Index | np.ndarray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_string())
    return pa.array(np.asarray(values, dtype=object), type=pa.large_string())


def _string_column(arr: pa.Array) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(arr.cast(pa.large_string()))


def edges_frame(
    pairs: pd.DataFrame,
    kind: str,
    values: np.ndarray | pa.Array,
    account_ids: pd.Index | pa.Array,
) -> pd.DataFrame:
    """Turn coded pairs into the public edge schema, sorted by (account order, value).

    String columns are gathered with Arrow ``take`` (no Python string objects).
    """
    vals = _arrow_strings(values)
    accs = _arrow_strings(account_ids)
    a = pairs["a"].to_numpy(np.int64)
    v = pairs["v"].to_numpy(np.int64)
    if len(pairs):
        rank = pc.rank(vals, sort_keys="ascending").to_numpy()
        order = np.lexsort((rank[v], a))
        pairs = pairs.iloc[order]
        a, v = a[order], v[order]
    n = len(pairs)
    return pd.DataFrame(
        {
            "account_id": _string_column(accs.take(pa.array(a))),
            "kind": _string_column(pa.array([kind], pa.large_string()).take(np.zeros(n, np.int64))),
            "value": _string_column(vals.take(pa.array(v))),
            "n": pairs["n"].to_numpy(np.int64),
            "first_ts": pd.DatetimeIndex(pairs["first"].to_numpy(), copy=False).tz_localize("UTC"),
            "last_ts": pd.DatetimeIndex(pairs["last"].to_numpy(), copy=False).tz_localize("UTC"),
        }
    )


def extra_identifier_edges(identifiers: pd.DataFrame | None, account_ids: pd.Index) -> pd.DataFrame:
    """Edges ``x:<kind>`` from the optional identifiers table (kind and value stripped).

    Rows with an unknown account, kind or value make no edge; ``n`` counts rows;
    ``first_ts``/``last_ts`` are NaT when no row has a time.
    """
    if identifiers is None or len(identifiers) == 0:
        return empty_edges()
    acc = account_ids.get_indexer(identifiers["account_id"])
    kind = as_string_series(identifiers["kind"]).str.strip()
    value = as_string_series(identifiers["value"]).str.strip()
    kind = kind.mask(kind == "")
    value = value.mask(value == "")
    ts = epoch_ns(identifiers["ts"]) if "ts" in identifiers.columns else None
    if ts is None:
        ts = np.full(len(identifiers), NAT, dtype=np.int64)
    kc, kinds = pd.factorize(kind, use_na_sentinel=True)
    vc, values = pd.factorize(value, use_na_sentinel=True)
    m = (acc >= 0) & (kc >= 0) & (vc >= 0)
    frame = pd.DataFrame(
        {"k": kc[m], "a": acc[m], "v": vc[m], "t": ts[m].view("datetime64[ns]")}, copy=False
    )
    g = frame.groupby(["k", "a", "v"], sort=False)["t"].agg(["size", "min", "max"]).reset_index()
    values = np.asarray(values, dtype=object)
    parts = []
    for k in np.argsort(np.asarray(kinds, dtype=object)):
        sub = g[g["k"] == k]
        pairs = pd.DataFrame(
            {
                "a": sub["a"].to_numpy(np.int64),
                "v": sub["v"].to_numpy(np.int64),
                "n": sub["size"].to_numpy(np.int64),
                "first": sub["min"].to_numpy(),
                "last": sub["max"].to_numpy(),
            }
        )
        parts.append(edges_frame(pairs, f"x:{kinds[k]}", values, account_ids))
    return pd.concat(parts, ignore_index=True) if parts else empty_edges()


def order_edges(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-kind edge frames: built-in kinds in contract order, then ``x:`` kinds."""
    ordered = [parts[k] for k in BUILTIN_KINDS if k in parts]
    ordered += [parts[k] for k in sorted(parts) if k not in BUILTIN_KINDS]
    ordered = [p for p in ordered if len(p)]
    if not ordered:
        return empty_edges()
    return pd.concat(ordered, ignore_index=True)
