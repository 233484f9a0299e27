"""Cell parsers: examples and hypothesis properties (never raise, right values)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.ingest import (
    STRING_DTYPE,
    clean_strings,
    load_dataset,
    parse_flags,
    parse_ints,
    parse_ips,
    parse_timestamps,
)

from .conftest import small_tables, write_dataset

T0 = pd.Timestamp("2024-03-01T12:00:00Z")


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00+00:00",
        "2024-03-01T14:00:00+02:00",
        "2024-03-01T07:30:00-04:30",
        "2024-03-01T14:00:00+0200",
        "2024-03-01 12:00:00",
        "2024-03-01T12:00:00",
        "2024-03-01T12:00",
        "2024-03-01T12:00:00.000Z",
        "  2024-03-01T12:00:00Z ",
        "1709294400",
        "1709294400000",
        "1709294400.0",
    ],
)
def test_timestamp_forms(text: str) -> None:
    ts, bad = parse_timestamps(pd.Series([text]))
    assert not bad[0]
    assert ts[0] == T0
    assert str(ts.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    "text", ["now", "today", "2024-03", "Mar 1 2024", "2024-13-01", "x", "1e5"]
)
def test_timestamp_garbage_is_bad(text: str) -> None:
    ts, bad = parse_timestamps(pd.Series([text, "", None]))
    assert bad.tolist() == [True, False, False]
    assert ts.isna().all()


def test_timestamp_native_and_numeric_columns() -> None:
    naive = pd.Series(pd.to_datetime(["2024-03-01 12:00:00"]))
    aware = naive.dt.tz_localize("Europe/Paris")
    assert parse_timestamps(naive)[0][0] == T0
    assert parse_timestamps(aware)[0][0] == T0 - pd.Timedelta(hours=1)
    secs = pd.Series([1709294400, None], dtype="Int64")
    ms = pd.Series([1709294400000], dtype="int64")
    fl = pd.Series([1709294400.5])
    assert parse_timestamps(secs)[0][0] == T0 and pd.isna(parse_timestamps(secs)[0][1])
    assert parse_timestamps(ms)[0][0] == T0
    assert parse_timestamps(fl)[0][0] == T0 + pd.Timedelta(milliseconds=500)


def test_parquet_native_timestamps_and_epoch(tmp_path: Path) -> None:
    t = small_tables()
    req = t["requests"].copy()
    req["ts"] = pd.to_datetime(req["ts"], utc=True, format="ISO8601")
    acc = t["accounts"].copy()
    acc["created_at"] = (
        pd.to_datetime(acc["created_at"], utc=True, format="ISO8601").astype("int64") // 10**6
    )  # epoch milliseconds
    ident = t["identifiers"].copy()
    ident["ts"] = pd.to_datetime(ident["ts"], utc=True).dt.tz_localize(None)  # naive
    ref = load_dataset(write_dataset(tmp_path / "ref", t, ".parquet"))
    t.update(requests=req, accounts=acc, identifiers=ident)
    ds = load_dataset(write_dataset(tmp_path / "typed", t, ".parquet"))
    pd.testing.assert_series_equal(ds.requests["ts"], ref.requests["ts"])
    pd.testing.assert_series_equal(ds.accounts["created_at"], ref.accounts["created_at"])
    pd.testing.assert_series_equal(ds.identifiers["ts"], ref.identifiers["ts"])


def test_ips() -> None:
    out, bad = parse_ips(
        pd.Series(["1.2.3.4", "2001:DB8:0::1", "::ffff:10.0.0.1", "01.2.3.4", "1.2.3", None, ""])
    )
    assert out.tolist()[:3] == ["1.2.3.4", "2001:db8::1", "10.0.0.1"]
    assert out[3:].isna().all()
    assert bad.tolist() == [False, False, False, True, True, False, False]
    assert out.dtype == STRING_DTYPE


def test_ints_and_flags() -> None:
    ints, bad = parse_ints(pd.Series(["0", "12", "-1", "1.5", "x", "", "3.0"]))
    assert ints.tolist()[:2] == [0, 12] and ints[6] == 3
    assert bad.tolist() == [False, False, True, True, True, False, False]
    flags, fbad = parse_flags(pd.Series(["0", "1", " 1 ", "2", "", "TRUE", None]))
    assert fbad.tolist() == [False, False, False, True, True, False, True]
    assert flags[~fbad].tolist() == [0, 1, 1, 1]
    assert parse_flags(pd.Series([0.0, 1.0, 0.5]))[1].tolist() == [False, False, True]


def test_clean_strings() -> None:
    s = clean_strings(pd.Series([" a ", "", "   ", None, 5]))
    assert s.tolist()[0] == "a" and s.tolist()[4] == "5"
    assert s.isna().tolist() == [False, True, True, True, False]
    verbatim = clean_strings(pd.Series([" a\n", " \t "]), strip=False)
    assert verbatim[0] == " a\n" and pd.isna(verbatim[1])


# ------------------------------------------------------------------ hypothesis

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.text(max_size=40), max_size=8))
def test_timestamps_never_raise(texts: list[str]) -> None:
    ts, bad = parse_timestamps(pd.Series(texts, dtype=object))
    assert len(ts) == len(texts) == len(bad)
    assert (ts.isna().to_numpy() | ~bad).all()  # bad cells are unknown


@FAST
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.one_of(
            st.none(),
            st.just(UTC),
            st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
        ),
    ),
    st.sampled_from(["T", " "]),
    st.booleans(),
)
def test_valid_iso_timestamps_parse_to_the_right_instant(
    dt: datetime, sep: str, zulu: bool
) -> None:
    text = dt.isoformat(sep=sep)
    if zulu and dt.tzinfo is UTC:
        text = text.replace("+00:00", "Z")
    expected = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    ts, bad = parse_timestamps(pd.Series([text]))
    assert not bad[0], text
    assert ts[0] == pd.Timestamp(expected), text


@FAST
@given(st.integers(1_000_000_000, 7_000_000_000), st.sampled_from([1, 1000]))
def test_epoch_digits_parse(seconds: int, scale: int) -> None:
    # realistic epochs (2001-2191): the unit is chosen by magnitude, s or ms
    ts, bad = parse_timestamps(pd.Series([str(seconds * scale)]))
    assert not bad[0]
    assert ts[0] == pd.Timestamp(seconds, unit="s", tz="UTC")


@FAST
@given(st.lists(st.text(max_size=45), max_size=8))
def test_ips_never_raise_on_text(texts: list[str]) -> None:
    out, bad = parse_ips(pd.Series(texts, dtype=object))
    assert len(out) == len(texts)
    assert (out.isna().to_numpy() | ~bad).all()


@FAST
@given(st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), min_size=1, max_size=8))
def test_valid_ips_round_trip(ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    out, bad = parse_ips(pd.Series([ip.exploded.upper() for ip in ips]))
    assert not bad.any()
    for got, ip in zip(out, ips, strict=True):
        want = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        assert ipaddress.ip_address(got) == want
        assert got == str(want)


# Text that survives CSV: pyarrow rejects lone surrogates; "\r" alone is a line end.
_CSV_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
    min_size=1,
    max_size=60,
).filter(lambda s: not s.isspace())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_CSV_TEXT, min_size=1, max_size=12))
def test_csv_round_trip_of_arbitrary_prompts(tmp_path: Path, prompts: list[str]) -> None:
    t = small_tables()
    n = len(prompts)
    t["requests"] = pd.DataFrame(
        {
            "account_id": ["a1"] * n,
            "ts": ["2024-01-01T00:00:00Z"] * n,
            "ip": [""] * n,
            "prompt": prompts,
            "response_tokens": ["1"] * n,
            "model": ["m"] * n,
            "note": prompts,
        }
    )
    d = tmp_path / f"rt{abs(hash(tuple(prompts)))}"
    ds = load_dataset(write_dataset(d, {"accounts": t["accounts"], "requests": t["requests"]}))
    assert ds.requests["prompt"].tolist() == prompts  # verbatim
    assert ds.requests["note"].tolist() == [p.strip() for p in prompts]  # other text: stripped


def test_large_unique_ip_mapping_is_vectorised() -> None:
    rng = np.random.default_rng(0)
    pool = np.array([f"10.0.{i // 256}.{i % 256}" for i in range(500)] + ["bad"], dtype=object)
    values = pd.Series(pool[rng.integers(0, len(pool), 20_000)])
    out, bad = parse_ips(values)
    assert bad.sum() == (values == "bad").sum()
    assert (out[~bad] == values[~bad]).all()


def test_isin_on_arrow_text_matches_pandas() -> None:
    from linkage.ingest.parse import STRING_DTYPE
    from linkage.ingest.validate import _isin

    values = pd.Series(["a", None, "é", "b", "a", "", "zz"], dtype=STRING_DTYPE)
    for known in (
        pd.Index(["a", "é", ""], dtype=STRING_DTYPE),
        pd.Index(["a", "é", None], dtype=object),
        pd.Index([], dtype=object),
    ):
        want = values.isin(known.dropna()).to_numpy() & values.notna().to_numpy()
        assert (_isin(values, known) == want).all()
    assert _isin(values, pd.Index(["a", "é"])).tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,
    ]
    obj = values.astype(object)  # not Arrow-backed: the pandas path
    assert (_isin(obj, pd.Index(["a"])) == (obj == "a").to_numpy()).all()
