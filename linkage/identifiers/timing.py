"""Per-account timing features from request timestamps.

Scripted farms run around the clock, burst many requests into few clock hours
and jump on a newly released model within hours; people follow a day/night
rhythm and adopt new models gradually.  The features (all per account):

- ``hour_entropy``: Shannon entropy (bits) of the account's UTC hour-of-day
  histogram: log2(24) ≈ 4.585 for uniform 24/7 traffic, lower for diurnal use;
- ``active_days``: distinct UTC calendar days with a request;
- ``req_per_active_hour``: requests / distinct active clock hours;
- ``first_ts``, ``last_ts``: epoch seconds of the first and last request;
- ``pivot_lag_hours``: a model's *release* is the time of its first request in
  the data, provided that is after the first ``warmup`` (5%) of the data's time
  span (models present from the start have no observable release).  For each
  account, take the newest released model it used; the lag is the hours from
  that model's release to the account's first request with it (NaN if the
  account never used a released model).

Everything is a group-by on integer keys (account code × hour, × day, × model),
so it maps directly to SQL/Spark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkage.identifiers._codes import (
    NAT,
    NS_PER_DAY,
    NS_PER_HOUR,
    epoch_ns,
    ns_to_seconds,
)

__all__ = ["TIMING_COLUMNS", "account_timing", "model_releases", "timing_features"]

TIMING_COLUMNS: tuple[str, ...] = (
    "active_days",
    "req_per_active_hour",
    "hour_entropy",
    "first_ts",
    "last_ts",
    "pivot_lag_hours",
)

RELEASE_WARMUP = 0.05  # share of the time span before which a model counts as "always there"


def _distinct_per_account(acc: np.ndarray, bucket: np.ndarray, n_accounts: int) -> np.ndarray:
    """Number of distinct ``bucket`` values per account (``bucket`` >= 0)."""
    if len(acc) == 0:
        return np.zeros(n_accounts, dtype=np.int64)
    width = int(bucket.max()) + 1
    keys = pd.unique(acc.astype(np.int64) * width + bucket)
    return np.bincount(keys // width, minlength=n_accounts)


def model_releases(
    model: np.ndarray, ts_ns: np.ndarray, n_models: int, *, warmup: float = RELEASE_WARMUP
) -> np.ndarray:
    """Release time (int64 ns, ``NAT`` = none) of each model code ``0..n_models-1``.

    ``model`` and ``ts_ns`` are per request (model -1 = unknown; rows with ``NAT``
    timestamps must already be excluded).
    """
    release = np.full(n_models, NAT, dtype=np.int64)
    known = model >= 0
    if n_models == 0 or not known.any():
        return release
    t0, t1 = int(ts_ns.min()), int(ts_ns.max())
    cutoff = t0 + warmup * (t1 - t0)
    first = pd.Series(ts_ns[known]).groupby(model[known]).min()
    idx = first.index.to_numpy()
    vals = first.to_numpy()
    late = vals > cutoff
    release[idx[late]] = vals[late]
    return release


def _pivot_lag(
    acc: np.ndarray, model: np.ndarray, ts_ns: np.ndarray, n_accounts: int, n_models: int
) -> np.ndarray:
    out = np.full(n_accounts, np.nan)
    release = model_releases(model, ts_ns, n_models)
    if n_models == 0:
        return out
    released = np.append(release != NAT, False)  # index -1 (unknown model) → False
    m = released[model]
    if not m.any():
        return out
    pairs = (
        pd.DataFrame({"a": acc[m], "m": model[m], "t": ts_ns[m]})
        .groupby(["a", "m"], sort=False)["t"]
        .min()
        .reset_index()
    )
    pairs["rel"] = release[pairs["m"].to_numpy()]
    # newest released model per account (ties: the later first use, deterministic)
    last = pairs.sort_values(["a", "rel", "t"]).drop_duplicates("a", keep="last")
    out[last["a"].to_numpy()] = (last["t"].to_numpy() - last["rel"].to_numpy()) / NS_PER_HOUR
    return out


def timing_features(
    acc: np.ndarray,
    ts_ns: np.ndarray,
    n_accounts: int,
    model: np.ndarray | None = None,
    n_models: int = 0,
) -> pd.DataFrame:
    """Timing features per account code ``0..n_accounts-1`` (RangeIndex).

    ``acc``: account code per request (-1 = ignore the row); ``ts_ns``: int64 ns
    (``NAT`` rows ignored); ``model``: model code per request (-1 unknown).
    Accounts without requests get NaN everywhere.
    """
    keep = (acc >= 0) & (ts_ns != NAT)
    if not keep.all():
        acc, ts_ns = acc[keep], ts_ns[keep]
        model = model[keep] if model is not None else None
    acc = acc.astype(np.int64, copy=False)
    n_req = np.bincount(acc, minlength=n_accounts).astype(np.float64)
    has = n_req > 0
    out = pd.DataFrame(index=pd.RangeIndex(n_accounts))
    nan = np.full(n_accounts, np.nan)
    if len(acc) == 0:
        for c in TIMING_COLUMNS:
            out[c] = nan
        return out

    t0 = int(ts_ns.min())
    hour_abs = (ts_ns - t0) // NS_PER_HOUR
    day = ts_ns // NS_PER_DAY
    days = _distinct_per_account(acc, day - day.min(), n_accounts)
    hours = _distinct_per_account(acc, hour_abs, n_accounts)
    out["active_days"] = np.where(has, days, np.nan)
    out["req_per_active_hour"] = np.where(has, n_req / np.maximum(hours, 1), np.nan)

    hod = (ts_ns // NS_PER_HOUR) % 24
    counts = pd.Series(acc * 24 + hod).value_counts(sort=False)
    pair_acc = counts.index.to_numpy() // 24
    p = counts.to_numpy() / n_req[pair_acc]
    ent = np.bincount(pair_acc, weights=-p * np.log2(p), minlength=n_accounts)
    out["hour_entropy"] = np.where(has, np.abs(ent), np.nan)  # abs: -0.0 → 0.0

    span = pd.Series(ts_ns).groupby(acc).agg(["min", "max"])
    first = np.full(n_accounts, NAT, dtype=np.int64)
    last = np.full(n_accounts, NAT, dtype=np.int64)
    first[span.index.to_numpy()] = span["min"].to_numpy()
    last[span.index.to_numpy()] = span["max"].to_numpy()
    out["first_ts"] = ns_to_seconds(first)
    out["last_ts"] = ns_to_seconds(last)

    if model is None or n_models == 0:
        out["pivot_lag_hours"] = nan
    else:
        out["pivot_lag_hours"] = _pivot_lag(acc, model, ts_ns, n_accounts, n_models)
    return out


def account_timing(
    account_ids: pd.Series,
    ts: pd.Series,
    models: pd.Series | None = None,
    *,
    accounts: pd.Index | None = None,
) -> pd.DataFrame:
    """:func:`timing_features` on plain columns, indexed by ``account_id``.

    ``accounts`` fixes the output rows (default: the accounts seen, in order of
    first appearance); requests of accounts outside it are ignored.
    """
    index = pd.Index(pd.unique(account_ids)) if accounts is None else pd.Index(accounts)
    acc = index.get_indexer(account_ids)
    ts_ns = epoch_ns(ts)
    model, n_models = None, 0
    if models is not None:
        codes, uniques = pd.factorize(models, use_na_sentinel=True)
        model, n_models = codes, len(uniques)
    out = timing_features(acc, ts_ns, len(index), model, n_models)
    out.index = index.rename("account_id")
    return out
