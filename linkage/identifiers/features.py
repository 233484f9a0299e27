"""Per-account features: one float64 row for every account (NaN = unknown).

Columns (:data:`FEATURE_COLUMNS`, in this order):

- ``n_requests``: request rows (0 for accounts without requests);
- ``active_days``, ``req_per_active_hour``, ``hour_entropy``, ``first_ts``,
  ``last_ts``, ``pivot_lag_hours``: see :mod:`linkage.identifiers.timing`;
- ``n_ips`` / ``n_subnets`` / ``n_devices`` / ``n_templates``: distinct known
  request IPs / subnets / request device fingerprints / prompt templates;
- ``ip_churn`` = ``n_ips`` / requests with a known IP; ``device_churn`` likewise
  (denominators count only rows where the value is known, so a partly empty
  column does not dilute the rate);
- ``template_top_share``: share of the account's templated requests in its most
  used template; ``template_repetition`` = 1 − ``n_templates`` / templated requests;
- ``reasoning_share``: share of requests with a prompt that ask for reasoning;
  ``topic_top_share``: share of the top topic among requests with a known topic;
- ``mean_response_tokens``: over requests with a known count;
- ``email_disposable``, ``email_alias``, ``email_freemail``: 0/1 from
  :func:`~linkage.identifiers.emails.normalize_emails` (NaN unknown);
- ``payment_missing``: 1 if the account has no payment fingerprint; NaN for
  every account when the dataset carries no payment fingerprints at all (then
  "missing" says nothing about the account);
- ``device_missing``: 1 if no device fingerprint is known for the account,
  neither at sign-up nor in any request (NaN when the dataset has none at all);
- ``created_ts``, ``first_ts``, ``last_ts``: epoch seconds.

Extra column (documented addition): ``signup_to_first_hours``, hours from
sign-up to the first request (farms warm accounts up, or fire at once).

Request-derived features are NaN for accounts without requests (or without a
known value of the column they are about).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FEATURE_COLUMNS", "distinct_stats", "ratio"]

FEATURE_COLUMNS: tuple[str, ...] = (
    "n_requests",
    "active_days",
    "req_per_active_hour",
    "n_ips",
    "ip_churn",
    "n_subnets",
    "n_devices",
    "device_churn",
    "hour_entropy",
    "template_top_share",
    "template_repetition",
    "n_templates",
    "reasoning_share",
    "topic_top_share",
    "mean_response_tokens",
    "email_disposable",
    "email_alias",
    "email_freemail",
    "payment_missing",
    "device_missing",
    "created_ts",
    "first_ts",
    "last_ts",
    "pivot_lag_hours",
    "signup_to_first_hours",
)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64, NaN where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def distinct_stats(pairs: pd.DataFrame, n_accounts: int) -> tuple[np.ndarray, np.ndarray]:
    """From (a, v, n) pairs: distinct values per account and the count of its top value."""
    a = pairs["a"].to_numpy(np.int64)
    distinct = np.bincount(a, minlength=n_accounts).astype(np.float64)
    top = np.zeros(n_accounts, dtype=np.float64)
    if len(pairs):
        mx = pairs.groupby("a", sort=False)["n"].max()
        top[mx.index.to_numpy()] = mx.to_numpy()
    return distinct, top


def flag(values: pd.Series) -> np.ndarray:
    """Nullable boolean → float64 0/1 with NaN for unknown."""
    return values.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
