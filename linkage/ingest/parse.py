"""Vectorised cell parsers: strings, timestamps, IPs, integers, 0/1 flags.

Every parser takes a :class:`pandas.Series` of *any* dtype and returns
``(parsed, bad)`` where ``bad`` is a boolean numpy array marking cells that held
a value which could not be parsed (empty cells are never ``bad``: they are
simply unknown).  None of them loops over rows in Python; :func:`parse_ips`
loops over the *unique* values only, because :mod:`ipaddress` is the reference
validator and has no vectorised form.  None of them raises on arbitrary text.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: The string dtype of every string column ingest produces: pandas' default
#: ``"str"`` dtype (pyarrow storage, missing = NaN, ``.isna()`` works).
STRING_DTYPE = pd.StringDtype(storage="pyarrow", na_value=np.nan)
#: The timestamp dtype of every timestamp column ingest produces.
TS_DTYPE = "datetime64[ns, UTC]"

# ISO 8601 as the contract allows it: a full date, optional time (T or space),
# optional fraction, optional Z or numeric offset.  Anything else ("now",
# "today", "2024", "Jan 1") is refused *before* pandas sees it.
_ISO_RE = (
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2}|[+-]\d{2})?$"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_EPOCH_RE = r"^[+-]?\d{1,20}(?:\.\d*)?$"
# Epoch magnitude → unit (per value): seconds below 1e11 (year 5138), then ms, µs, ns.
_EPOCH_LIMITS = ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3))
_NS_MAX = np.iinfo(np.int64).max


def _arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The Arrow data behind a string Series (zero-copy for Arrow-backed dtypes)."""
    arr = values.array
    if hasattr(arr, "__arrow_array__"):
        return arr.__arrow_array__()
    return pa.array(values, from_pandas=True)


def clean_strings(values: pd.Series, *, strip: bool = True) -> pd.Series:
    """Return ``values`` as :data:`STRING_DTYPE`, whitespace-stripped, blank → missing.

    ``strip=False`` keeps the text verbatim (prompts) and only turns cells that are
    empty or all-whitespace into missing.
    """
    if values.dtype != STRING_DTYPE:
        values = values.astype(STRING_DTYPE)
    if strip:
        values = values.str.strip()
        blank = (values == "").to_numpy(dtype=bool, na_value=False)
    else:
        blank = ((values == "") | values.str.isspace()).to_numpy(dtype=bool, na_value=False)
    if blank.any():
        values = values.mask(blank)
    return values


def _empty_ts(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NaT, index=index, dtype=TS_DTYPE)


def _epoch_to_ts(numbers: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numeric epoch values (s / ms / µs / ns chosen by magnitude) → UTC timestamps."""
    out = np.full(len(numbers), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    present = numbers.notna().to_numpy()
    if pd.api.types.is_integer_dtype(numbers.dtype) and not pd.api.types.is_bool_dtype(
        numbers.dtype
    ):
        raw = numbers.to_numpy(dtype=np.int64, na_value=0)
        mag = np.abs(raw.astype(np.float64))
        factor = np.ones(len(raw), dtype=np.int64)
        for limit, f in reversed(_EPOCH_LIMITS):
            factor[mag < limit] = f
        ok = present & (mag < _NS_MAX / factor)
        out[ok] = raw[ok] * factor[ok]
    else:
        raw_f = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        mag = np.abs(raw_f)
        factor_f = np.ones(len(raw_f), dtype=np.float64)
        for limit, f in reversed(_EPOCH_LIMITS):
            factor_f[mag < limit] = f
        with np.errstate(invalid="ignore", over="ignore"):
            ns = raw_f * factor_f
            ok = present & np.isfinite(ns) & (np.abs(ns) < 9.2e18)
        out[ok] = np.round(ns[ok]).astype(np.int64)
    ts = pd.Series(pd.to_datetime(out, utc=True, unit="ns"), index=numbers.index)
    bad = present & ~ok
    return ts.astype(TS_DTYPE), bad


def _iso_to_ts(text: pd.Series) -> pd.Series:
    """ISO strings (already regex-checked) → UTC; unparseable → NaT; never raises."""
    try:
        out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, TypeError, OverflowError):  # pragma: no cover - defensive
        # Fall back to one parse per *unique* value (pandas raised on a mix).
        uniq = pd.unique(text.dropna())
        parsed = {}
        for u in uniq:
            try:
                parsed[u] = pd.Timestamp(u)
            except (ValueError, TypeError, OverflowError):
                parsed[u] = pd.NaT
        mapped = text.map(parsed)
        out = pd.to_datetime(mapped, utc=True, errors="coerce")
    return out.astype(TS_DTYPE)


def _fast_ts(text: pd.Series) -> pd.Series | None:
    """Arrow's ISO 8601 cast for the common case of a column that is *all* offset-
    carrying or *all* naive timestamps; ``None`` when any cell needs the slow path."""
    arr = _arrow(text)
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            out = pc.cast(arr, target)
        except (pa.ArrowException, ValueError, TypeError):
            continue
        series = pd.Series(out.to_pandas(), index=text.index)
        if target.tz is None:
            series = series.dt.tz_localize("UTC")
        return series.astype(TS_DTYPE)
    return None


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse a timestamp column of any dtype to ``datetime64[ns, UTC]``.

    Accepts native datetime columns (tz-aware → converted, naive → UTC), numeric
    epoch columns, and strings: ISO 8601 with ``Z``, any offset, or none (naive =
    UTC), and digit strings (epoch, unit chosen per value by magnitude: s, ms, µs, ns).
    Returns ``(timestamps, bad)``; ``bad`` marks non-empty cells that did not parse.
    """
    index = values.index
    n = len(values)
    if n == 0:
        return _empty_ts(index), np.zeros(0, dtype=bool)
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        ts = values if isinstance(dtype, pd.DatetimeTZDtype) else values.dt.tz_localize("UTC")
        try:
            return ts.dt.tz_convert("UTC").astype(TS_DTYPE), np.zeros(n, dtype=bool)
        except (OverflowError, ValueError):  # outside the ns range
            values = ts.astype(str)
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return _epoch_to_ts(values)
    text = clean_strings(values)
    fast = _fast_ts(text)
    if fast is not None:
        return fast, np.zeros(n, dtype=bool)
    present = text.notna().to_numpy()
    out = _empty_ts(index)
    is_iso = text.str.fullmatch(_ISO_RE).to_numpy(dtype=bool, na_value=False)
    if is_iso.any():
        out[is_iso] = _iso_to_ts(text[is_iso])
    is_epoch = ~is_iso & text.str.fullmatch(_EPOCH_RE).to_numpy(dtype=bool, na_value=False)
    if is_epoch.any():
        nums = pd.to_numeric(text[is_epoch], errors="coerce")
        out[is_epoch], _ = _epoch_to_ts(nums)
    bad = present & out.isna().to_numpy()
    return out, bad


def _canonical_ip(text: str) -> str | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_ips(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Validate IPv4/IPv6 addresses; return canonical text (``ipaddress`` form).

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) become the IPv4 address, so
    the same client is one identifier.  Validation runs once per *unique* value
    and is mapped back with a vectorised take.  ``bad`` marks non-empty cells that
    are not addresses; they are missing in the output.
    """
    text = clean_strings(values)
    codes, uniques = pd.factorize(text)  # missing → code -1
    uniq = pd.Series(uniques, dtype=STRING_DTYPE)
    # Canonical dotted-quad IPv4 is valid as written: only the rest needs ipaddress.
    plain_v4 = uniq.str.fullmatch(_IPV4_RE).to_numpy(dtype=bool, na_value=False)
    canon = uniq.to_numpy(dtype=object, na_value=None)
    for i in np.flatnonzero(~plain_v4):  # loop over unique non-trivial values only
        canon[i] = _canonical_ip(canon[i])
    valid_u = np.array([c is not None for c in canon], dtype=bool)
    present = codes >= 0
    safe = np.where(present, codes, 0)
    if len(uniques) == 0:
        return pd.Series(np.nan, index=text.index, dtype=STRING_DTYPE), np.zeros(
            len(text), dtype=bool
        )
    ok = present & valid_u[safe]
    canon_s = pd.array(canon, dtype=STRING_DTYPE)
    out = pd.Series(canon_s.take(np.where(ok, safe, -1), allow_fill=True), index=text.index)
    return out, present & ~ok


def parse_ints(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse non-negative integers to nullable ``Int64``; others → missing, ``bad``."""
    n = len(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(STRING_DTYPE)
    if pd.api.types.is_numeric_dtype(values.dtype):
        nums = values
        present = values.notna().to_numpy()
    else:
        text = clean_strings(values)
        present = text.notna().to_numpy()
        try:  # fast path: every cell is an integer literal
            nums = pd.Series(pc.cast(_arrow(text), pa.int64()).to_pandas(), index=text.index)
            nums = nums.astype("Int64")
        except (pa.ArrowException, ValueError, TypeError):
            nums = pd.to_numeric(text, errors="coerce")
    f = nums.to_numpy(dtype=np.float64, na_value=np.nan) if n else np.zeros(0)
    with np.errstate(invalid="ignore"):
        ok = present & np.isfinite(f) & (f >= 0) & (f == np.floor(f)) & (f < 2.0**63)
    if pd.api.types.is_integer_dtype(nums.dtype):
        raw = nums.to_numpy(dtype=np.int64, na_value=0)
        ok = present & (raw >= 0)
    else:
        raw = np.where(ok, f, 0).astype(np.int64)
    out = pd.Series(pd.arrays.IntegerArray(raw, ~ok), index=values.index, dtype="Int64")
    return out, present & ~ok


_FLAG_TEXT = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0}


def parse_flags(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse a 0/1 flag to ``int8``; anything else (including empty) is ``bad``.

    Accepts 0/1 numbers, booleans and the texts ``0``, ``1``, ``true``, ``false``.
    Bad cells hold 0 in the output (their rows are quarantined by the caller).
    """
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        present = values.notna().to_numpy()
        vals = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = clean_strings(values).str.lower()
        present = text.notna().to_numpy()
        vals = text.map(_FLAG_TEXT).to_numpy(dtype=np.float64, na_value=np.nan)
    ok = present & ((vals == 0) | (vals == 1))
    out = pd.Series(np.where(ok, vals, 0).astype(np.int8), index=values.index)
    return out, ~ok
