"""Integer-coded columns: the small toolkit the identifiers stage is built on.

Every normaliser works on the *unique* values of a column and maps the result
back through integer codes (``pd.factorize``), so a 20M-row column with 100k
distinct values costs 100k normalisations plus one ``take``.  The template and
topic codes reach the SQL aggregation as integers (:mod:`linkage.identifiers.sql`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

NAT = np.iinfo(np.int64).min  # int64 view of NaT
NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
NS_PER_DAY = 24 * NS_PER_HOUR


def as_string_series(values: object) -> pd.Series:
    """``values`` as a pandas ``string`` Series (NA kept); no copy if it already is one."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is pd.NA:
        return s
    return s.astype("string")


def small_codes(codes: np.ndarray, n_values: int) -> np.ndarray:
    """Downcast factorize codes to int32 when they fit (halves memory on big columns)."""
    if n_values < np.iinfo(np.int32).max:
        return codes.astype(np.int32, copy=False)
    return codes


@dataclass
class Coded:
    """A column as ``codes`` (one per row, -1 = unknown) into ``values`` (unique strings)."""

    codes: np.ndarray
    values: np.ndarray  # object array of str

    @classmethod
    def of(cls, column: pd.Series) -> Coded:
        """Factorize a column (NA → -1)."""
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        values = np.asarray(uniques, dtype=object)
        return cls(small_codes(codes, len(values)), values)

    @classmethod
    def empty(cls, n_rows: int) -> Coded:
        return cls(np.full(n_rows, -1, dtype=np.int32), np.empty(0, dtype=object))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_values(self) -> int:
        return len(self.values)

    def known(self) -> np.ndarray:
        return self.codes >= 0

    def remap(self, lut: np.ndarray, values: np.ndarray) -> Coded:
        """New codes ``lut[code]`` (``lut`` has one entry per old value, -1 = becomes unknown)."""
        full = np.append(np.asarray(lut, dtype=np.int64), -1)  # index -1 → -1
        return Coded(small_codes(full[self.codes], len(values)), values)

    def map_values(self, func: Callable[[pd.Series], pd.Series]) -> Coded:
        """Apply a Series→Series normaliser to the unique values; equal results merge."""
        mapped = func(pd.Series(self.values, dtype="string"))
        lut, uniques = pd.factorize(mapped, use_na_sentinel=True)
        return self.remap(lut, np.asarray(uniques, dtype=object))

    def to_series(self, index: pd.Index) -> pd.Series:
        arr = pd.array(self.values, dtype="string")
        return pd.Series(arr.take(self.codes, allow_fill=True), index=index)


def map_unique(values: object, func: Callable[[str], str | None]) -> pd.Series:
    """Apply a per-value function to the unique non-NA values and map back (string dtype).

    ``func`` returns ``None`` for "unknown".  The loop runs over unique values only.
    """
    s = as_string_series(values)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    out = np.array([func(v) for v in uniques], dtype=object)
    arr = pd.array(out, dtype="string") if len(out) else pd.array([], dtype="string")
    return pd.Series(arr.take(codes, allow_fill=True), index=s.index, name=s.name)


def epoch_ns(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch (``NAT`` for unknown).

    Accepts tz-aware (any zone, any unit) or naive (read as UTC) datetimes.
    """
    if not (isinstance(ts.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(ts)):
        ts = pd.to_datetime(ts, utc=True, errors="coerce")
    return np.asarray(ts.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def ns_to_timestamp(ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 nanoseconds (``NAT`` = unknown) back to ``datetime64[ns, UTC]``."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("datetime64[ns]")).tz_localize(
        "UTC"
    )


def ns_to_seconds(ns: np.ndarray) -> np.ndarray:
    """int64 nanoseconds to float epoch seconds (NaN for ``NAT``)."""
    ns = np.asarray(ns, dtype=np.int64)
    out = ns.astype(np.float64) / NS_PER_S
    out[ns == NAT] = np.nan
    return out


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or an all-unknown string column when the file lacked it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(pd.NA, index=frame.index, dtype="string", name=name)
