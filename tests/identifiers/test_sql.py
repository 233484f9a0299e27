"""The SQL request aggregation (linkage.identifiers.sql) agrees with the pandas path.

One generated world, three ways: ``extract`` (pandas), DuckDB over the ingested
frame, DuckDB scanning the parquet file directly.  Plus hand-made edge cases for
the text the scan path sees before ingest (offset timestamps, blank and mixed-case
fingerprints, negative tokens, orphan rows, a missing column), and, where pyspark
and Java are installed, the same SQL on Spark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("duckdb")

from fixtures import make_world, write_world
from linkage import Settings
from linkage.dataset import Dataset
from linkage.identifiers import Identifiers, extract, normalize_fingerprint
from linkage.identifiers.sql import (
    HOUR_COLUMNS,
    OUTPUT_SQL,
    aggregate_requests_duckdb,
    features_from_aggregates,
)
from linkage.ingest import load_dataset

Agg = dict[str, pd.DataFrame]
PAIR_KEYS = ["account_id", "kind", "value"]
# Features the SQL outputs determine exactly (req_per_active_hour: see test below).
SAME_FEATURES = [
    "n_requests",
    "active_days",
    "mean_response_tokens",
    "n_ips",
    "ip_churn",
    "n_devices",
    "device_churn",
    "first_ts",
    "last_ts",
    "hour_entropy",
    "pivot_lag_hours",
]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sql_world")
    write_world(make_world(scale=0.02, seed=3), out, fmt="parquet")
    return out


@pytest.fixture(scope="module")
def ds(world_dir: Path) -> Dataset:
    return load_dataset(world_dir)


@pytest.fixture(scope="module")
def ids(ds: Dataset) -> Identifiers:
    return extract(ds, settings=Settings().identifiers)


@pytest.fixture(scope="module")
def agg(ds: Dataset) -> Agg:
    return aggregate_requests_duckdb(ds.requests)


@pytest.fixture(scope="module")
def agg_scan(world_dir: Path) -> Agg:
    return aggregate_requests_duckdb(str(world_dir / "requests.parquet"))


def _pandas_pairs(requests: pd.DataFrame) -> pd.DataFrame:
    """Reference: GROUP BY (account, value) per request-derived kind, in pandas."""
    values = {
        "ip": requests["ip"].astype("string"),
        "device": normalize_fingerprint(requests["device_fingerprint"]),
        "model": requests["model"].astype("string"),
    }
    parts = []
    for kind, value in values.items():
        frame = pd.DataFrame(
            {
                "account_id": requests["account_id"].astype("string"),
                "value": value,
                "ts": requests["ts"],
            }
        ).dropna()
        g = frame.groupby(["account_id", "value"])["ts"].agg(["size", "min", "max"]).reset_index()
        parts.append(
            pd.DataFrame(
                {
                    "account_id": g["account_id"],
                    "kind": kind,
                    "value": g["value"],
                    "n": g["size"].astype(np.int64),
                    "first_ts": g["min"],
                    "last_ts": g["max"],
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["kind"] = out["kind"].astype("string")
    return out


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_world_exercises_every_kind(ds: Dataset, agg: Agg) -> None:
    pairs = agg["request_pairs"]
    assert set(pairs["kind"]) == {"ip", "device", "model"}
    assert ds.requests["device_fingerprint"].isna().any()  # blanks excluded, not a value
    assert len(agg["account_activity"]) == ds.requests["account_id"].nunique()
    assert (
        agg["account_activity"][list(HOUR_COLUMNS)].sum(axis=1)
        == agg["account_activity"]["n_requests"]
    ).all()


def test_request_pairs_equal_pandas_groupby(ds: Dataset, agg: Agg) -> None:
    expected = _sorted(_pandas_pairs(ds.requests), PAIR_KEYS)
    got = _sorted(agg["request_pairs"], PAIR_KEYS)
    pd.testing.assert_frame_equal(got, expected.astype(got.dtypes.to_dict()))


def test_request_pairs_are_the_request_half_of_extract_edges(agg: Agg, ids: Identifiers) -> None:
    """extract's ip/device edges = SQL request pairs ∪ sign-up observations (n = 1 each)."""
    for kind in ("ip", "device"):
        edges = ids.edges[ids.edges["kind"] == kind].set_index(["account_id", "value"])
        pairs = agg["request_pairs"]
        pairs = pairs[pairs["kind"] == kind].set_index(["account_id", "value"])
        assert pairs.index.isin(edges.index).all()
        both = pairs.join(edges.add_suffix("_edge"), how="left")
        extra = both["n_edge"] - both["n"]
        assert extra.isin([0, 1]).all(), kind  # at most the sign-up observation on top
        assert (both["first_ts_edge"] <= both["first_ts"]).all()
        assert (both["last_ts_edge"] >= both["last_ts"]).all()
        unchanged = extra == 0
        assert (both.loc[unchanged, "first_ts_edge"] == both.loc[unchanged, "first_ts"]).all()
        assert (both.loc[unchanged, "last_ts_edge"] == both.loc[unchanged, "last_ts"]).all()
        signup_only = edges[~edges.index.isin(pairs.index)]
        assert (signup_only["n"] == 1).all(), kind
        assert (signup_only["first_ts"] == signup_only["last_ts"]).all()


def test_features_from_sql_equal_extract_features(ds: Dataset, agg: Agg, ids: Identifiers) -> None:
    feats = features_from_aggregates(agg, ds.accounts["account_id"])
    expected = ids.features
    assert feats.index.equals(expected.index)
    for col in SAME_FEATURES:
        np.testing.assert_allclose(
            feats[col].to_numpy(),
            expected[col].to_numpy(),
            rtol=1e-12,
            atol=0,
            equal_nan=True,
            err_msg=col,
        )
    # the world has accounts without requests and a released model: both paths exercised
    assert (feats["n_requests"] == 0).any() and feats["active_days"].isna().any()
    assert feats["pivot_lag_hours"].notna().any()


def test_active_hours_are_distinct_utc_clock_hours(ds: Dataset, agg: Agg, ids: Identifiers) -> None:
    """``active_hours`` counts clock hours; extract's req_per_active_hour buckets hours from
    the dataset's first request instead, so the two agree only where that makes no difference."""
    r = ds.requests
    expected = r.groupby(r["account_id"].astype("string"))["ts"].agg(
        lambda t: t.dt.floor("h").nunique()
    )
    act = agg["account_activity"].set_index("account_id")
    assert (act["active_hours"] == expected.reindex(act.index)).all()
    days = r.groupby(r["account_id"].astype("string"))["ts"].agg(
        lambda t: t.dt.floor("D").nunique()
    )
    assert (act["active_days"] == days.reindex(act.index)).all()
    ns = r["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    rel = (
        pd.Series((ns - ns.min()) // 3_600_000_000_000)
        .groupby(r["account_id"].astype("string").to_numpy())
        .nunique()
    )
    pandas_rate = act["n_requests"] / rel.reindex(act.index)
    np.testing.assert_allclose(
        pandas_rate.to_numpy(),
        ids.features.loc[act.index, "req_per_active_hour"].to_numpy(),
        rtol=1e-12,
    )


def test_model_first_seen_equals_pandas(ds: Dataset, agg: Agg) -> None:
    g = ds.requests.groupby(ds.requests["model"].astype("string"))["ts"].agg(["min", "size"])
    got = agg["model_first_seen"].set_index("model")
    assert list(got.index) == sorted(g.index)
    assert (got["first_ts"] == g.loc[got.index, "min"]).all()
    assert (got["n_requests"] == g.loc[got.index, "size"]).all()


def test_parquet_scan_equals_frame(agg: Agg, agg_scan: Agg) -> None:
    """The raw parquet (ts as ISO text, some with offsets) gives exactly the frame's result."""
    assert set(agg_scan) == set(agg) == set(OUTPUT_SQL)
    for name in agg:
        pd.testing.assert_frame_equal(agg_scan[name], agg[name], obj=name)


def test_view_mode_and_reused_connection(world_dir: Path, agg_scan: Agg) -> None:
    import duckdb

    con = duckdb.connect()
    path = str(world_dir / "requests.parquet")
    streamed = aggregate_requests_duckdb(path, con=con, materialize=False)
    again = aggregate_requests_duckdb(path, con=con)
    con.close()
    for name in agg_scan:
        pd.testing.assert_frame_equal(streamed[name], agg_scan[name], obj=name)
        pd.testing.assert_frame_equal(again[name], agg_scan[name], obj=name)


def test_scan_edge_cases(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b", "ghost", None],
            "ts": [
                "2024-03-01T23:30:00-02:00",  # = 2024-03-02 01:30 UTC
                "2024-03-02T01:10:00Z",
                "2024-03-02 01:50:00",  # naive = UTC
                "not a time",
                "2024-03-02T01:00:00Z",
                "2024-03-02T01:00:00Z",
            ],
            "ip": ["10.0.0.1", " 10.0.0.1 ", "", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
            "device_fingerprint": ["FP_1", " fp_1", "  ", None, "fp_9", "fp_9"],
            "model": ["m", "m", None, "m", "m", "m"],
            "response_tokens": [10, -1, 20, 5, 5, 5],
        }
    )
    path = tmp_path / "requests.parquet"
    raw.to_parquet(path)
    accounts = pd.DataFrame({"account_id": ["a", "b", "c"]})
    agg = aggregate_requests_duckdb(str(path), accounts=accounts)
    act = agg["account_activity"].set_index("account_id")
    assert list(act.index) == ["a"]  # b: unparseable time; ghost: unknown account; None: no account
    a = act.loc["a"]
    assert a["n_requests"] == 3 and a["active_days"] == 1 and a["active_hours"] == 1
    assert a["first_ts"] == pd.Timestamp("2024-03-02T01:10:00Z")
    assert a["last_ts"] == pd.Timestamp("2024-03-02T01:50:00Z")
    assert a["h01"] == 3 and a["mean_response_tokens"] == 15.0  # -1 is unknown
    assert (a["n_ips"], a["n_ip_rows"], a["n_devices"], a["n_device_rows"]) == (1, 2, 1, 2)
    pairs = agg["request_pairs"].set_index(["kind", "value"])["n"].to_dict()
    assert pairs == {("device", "fp_1"): 2, ("ip", "10.0.0.1"): 2, ("model", "m"): 2}
    assert agg["model_first_seen"]["first_ts"].tolist() == [pd.Timestamp("2024-03-02T01:10:00Z")]

    # without accounts every account is kept; a missing column reads as all unknown
    agg2 = aggregate_requests_duckdb(raw.drop(columns=["device_fingerprint"]))
    act2 = agg2["account_activity"].set_index("account_id")
    assert list(act2.index) == ["a", "ghost"]
    assert (act2["n_devices"] == 0).all()
    feats = features_from_aggregates(agg2, ["a", "c", "ghost"])
    assert feats.loc["c", "n_requests"] == 0 and np.isnan(feats.loc["c", "hour_entropy"])
    assert np.isnan(feats.loc["a", "n_devices"]) and feats.loc["a", "hour_entropy"] == 0.0
