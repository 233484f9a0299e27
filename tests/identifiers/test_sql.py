"""The generated SQL of the identifiers stage (linkage.identifiers.sql).

One generated world, two inputs (the raw Parquet files scanned by the engine, and
the ingested frames as Arrow tables) give the same tables; the edges equal an
independent pandas oracle built from the raw files; hand-made edge cases cover
the text the scan path sees before ingest (offset timestamps, blank and mixed-case
fingerprints, negative tokens, orphan rows, a missing column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linkage.engine import DuckDBEngine
from linkage.errors import LinkageError
from linkage.fixtures import make_world, write_world
from linkage.identifiers.kinds import KINDS, kind
from linkage.identifiers.sql import OUTPUTS, TS_NS_SQL, aggregation_sql, run_aggregation
from linkage.settings import IdentifierSettings

SETTINGS = IdentifierSettings()
EDGE_KEYS = ["account_id", "kind", "value"]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sql_world")
    write_world(make_world(scale=0.02, seed=3), out, fmt="parquet")
    return out


def _run(ids: list[str] | None = None, **inputs: object) -> dict[str, pd.DataFrame]:
    """Outputs as frames, ``account_code`` replaced by ``account_id`` (the codes are the
    ranks of the ids unless the inputs carry their own: then ``ids`` in code order)."""
    with DuckDBEngine(threads=2) as engine:
        out = run_aggregation(engine, settings=SETTINGS, **inputs)  # type: ignore[arg-type]
    if ids is None:
        accounts = inputs["accounts"]
        table = accounts if isinstance(accounts, pa.Table) else pq.read_table(accounts)
        ids = sorted(table.column("account_id").to_pylist())
    frames = {}
    for name, t in out.items():
        frame = t.to_pandas()
        frame.insert(0, "account_id", [ids[c] for c in frame.pop("account_code")])
        frames[name] = frame
    return frames


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def scan(world_dir: Path) -> dict[str, pd.DataFrame]:
    return _run(
        requests=str(world_dir / "requests.parquet"),
        accounts=str(world_dir / "accounts.parquet"),
        identifiers=str(world_dir / "identifiers.parquet"),
    )


def test_outputs_and_every_kind(scan: dict[str, pd.DataFrame]) -> None:
    assert list(scan) == list(OUTPUTS)
    kinds = set(scan["edges"]["kind"])
    expected = {k.name for k in KINDS if k.edges and k.name != "template"}
    assert expected <= kinds  # no template column in the raw files
    assert any(k.startswith("x:") for k in kinds)
    assert not scan["edges"].duplicated(EDGE_KEYS).any()
    assert set(scan["account_kinds"]["kind"]) == {"ip", "subnet", "device"}


def test_edges_equal_a_pandas_oracle(world_dir: Path, scan: dict[str, pd.DataFrame]) -> None:
    """ip/device edges: request rows and the sign-up observation, grouped in pandas."""
    req = pd.read_parquet(world_dir / "requests.parquet")
    acc = pd.read_parquet(world_dir / "accounts.parquet")
    ts = pd.to_datetime(req["ts"], utc=True, format="ISO8601")
    created = pd.to_datetime(acc["created_at"], utc=True, format="ISO8601")

    def ns(t: pd.Series) -> pd.Series:
        return pd.Series(t.to_numpy(dtype="datetime64[ns]").view(np.int64), index=t.index)

    for name, rcol, acol in (("ip", "ip", "signup_ip"), ("device", "device_fingerprint", None)):
        k = kind(name)
        norm = {v: k.normalize_one(v, SETTINGS) for v in pd.unique(req[rcol].dropna())}
        obs = pd.DataFrame(
            {"account_id": req["account_id"], "value": req[rcol].map(norm), "t": ns(ts)}
        )
        parts = [obs.assign(n=1)]
        acol = acol or k.accounts_column
        snorm = {v: k.normalize_one(v, SETTINGS) for v in pd.unique(acc[acol].dropna())}
        parts.append(
            pd.DataFrame(
                {"account_id": acc["account_id"], "value": acc[acol].map(snorm), "t": ns(created)}
            ).assign(n=1)
        )
        both = pd.concat(parts).dropna(subset=["value"])
        g = both.groupby(["account_id", "value"]).agg(
            n=("n", "sum"), first_ts=("t", "min"), last_ts=("t", "max")
        )
        got = scan["edges"][scan["edges"]["kind"] == name].set_index(["account_id", "value"])
        got = got[["n", "first_ts", "last_ts"]].sort_index()
        pd.testing.assert_frame_equal(got, g.sort_index(), check_dtype=False, obj=name)


def test_arrow_tables_equal_parquet_scan(world_dir: Path, scan: dict[str, pd.DataFrame]) -> None:
    tables = {
        name: pq.read_table(world_dir / f"{name}.parquet")
        for name in ("requests", "accounts", "identifiers")
    }
    got = _run(**tables)
    keys = {
        "edges": EDGE_KEYS,
        "account_kinds": ["account_id", "kind"],
        "account_activity": ["account_id"],
        "account_attributes": ["account_id"],
    }
    for name in OUTPUTS:
        pd.testing.assert_frame_equal(
            _sorted(got[name], keys[name]), _sorted(scan[name], keys[name]), obj=name
        )


def test_callers_account_codes_and_coded_columns(
    world_dir: Path, scan: dict[str, pd.DataFrame]
) -> None:
    """extract's mode: account codes = positions, request account as the code, a coded
    column (template-like) grouped as integers: same tables once mapped back."""
    accounts = pq.read_table(world_dir / "accounts.parquet")
    requests = pq.read_table(world_dir / "requests.parquet")
    ids = accounts.column("account_id").to_pylist()
    position = {a: i for i, a in enumerate(ids)}
    codes = pa.array([position.get(a, -1) for a in requests.column("account_id").to_pylist()])
    model, vocab = pd.factorize(requests.column("model").to_pandas())
    requests = (
        requests.drop_columns(["account_id"])
        .append_column("account_code", codes)
        .append_column("template", pa.array(model, mask=model < 0))
    )
    accounts = accounts.append_column("account_code", pa.array(range(len(ids))))
    got = _run(ids, requests=requests, accounts=accounts, coded=("template",))
    edges = got["edges"].sort_values(EDGE_KEYS, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        edges, _sorted(scan["edges"][~scan["edges"]["kind"].str.startswith("x:")], EDGE_KEYS)
    )
    coded = got["coded_edges"]
    assert set(coded["kind"]) == {"template"}
    by_model = requests.to_pandas()
    by_model = by_model[by_model["account_code"] >= 0]
    by_model["account_id"] = [ids[c] for c in by_model["account_code"]]
    expected = by_model.groupby(["account_id", "template"]).size()
    assert (
        coded.set_index(["account_id", "code"])["n"].sort_index().tolist()
        == expected.sort_index().tolist()
    )
    assert len(vocab) == coded["code"].nunique()


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
            "ip": ["10.0.0.1", " 10.0.0.1\t", "", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
            "device_fingerprint": ["FP_1", " fp_1", "  ", None, "fp_9", "fp_9"],
            "response_tokens": [10, -1, 20, 5, 5, 5],
        }
    )
    path = tmp_path / "requests.parquet"
    raw.to_parquet(path)
    accounts = pa.table(
        {
            "account_id": ["a", "b", "c"],
            "created_at": ["2024-03-01T00:00:00Z", None, "2024-03-01T00:00:00Z"],
            "email": ["X.Y+farm@GMail.com", "bad address", None],
        }
    )
    out = _run(requests=str(path), accounts=accounts)
    act = out["account_activity"].set_index("account_id")
    assert list(act.index) == ["a"]  # b: unparseable time; ghost: unknown; None: no account
    a = act.loc["a"]
    assert a["n_requests"] == 3 and a["n_tokens"] == 2 and a["sum_tokens"] == 30.0
    assert a["n_prompts"] == 0  # no reasoning column: unknown
    edges = out["edges"].set_index(["kind", "value"])
    assert edges.loc[("ip", "10.0.0.1"), "n"] == 2
    assert edges.loc[("subnet", "10.0.0.0/24"), "n"] == 2
    assert edges.loc[("device", "fp_1"), "n"] == 2
    t0 = pd.Timestamp("2024-03-02T01:10:00Z").value
    assert edges.loc[("ip", "10.0.0.1"), "first_ts"] == t0
    assert set(edges["account_id"]) == {"a"}  # b, c: no usable attribute
    # sign-up only kinds: n = 1 at created_at; gmail aliasing; freemail domain is no edge
    assert edges.loc[("email", "xy@gmail.com"), "n"] == 1
    assert edges.loc[("email", "xy@gmail.com"), "first_ts"] == pd.Timestamp("2024-03-01").value
    assert "email_domain" not in set(out["edges"]["kind"])
    attrs = out["account_attributes"].set_index("account_id")
    assert attrs.loc["a", "email_alias"] and attrs.loc["a", "email_freemail"]
    assert pd.isna(attrs.loc["c", "email_alias"])
    kinds = out["account_kinds"].set_index(["account_id", "kind"])
    assert kinds.loc[("a", "ip")].tolist() == [1, 2, 2]  # n_values, top_n, n_rows


def test_sql_is_the_same_text_for_both_dialects_but_the_time_parse() -> None:
    duck = aggregation_sql(settings=SETTINGS, dialect="duckdb")
    spark = aggregation_sql(settings=SETTINGS, dialect="spark")
    assert list(duck) == list(spark)
    for name in duck:
        a = duck[name].replace(TS_NS_SQL["duckdb"].format(x="ts"), "<ts>")
        a = a.replace(TS_NS_SQL["duckdb"].format(x="created_at"), "<created>")
        b = spark[name].replace(TS_NS_SQL["spark"].format(x="ts"), "<ts>")
        b = b.replace(TS_NS_SQL["spark"].format(x="created_at"), "<created>")
        b = b.replace("CREATE OR REPLACE TEMP VIEW", "CREATE OR REPLACE TEMP TABLE")
        a = a.replace("CREATE OR REPLACE TEMP VIEW", "CREATE OR REPLACE TEMP TABLE")
        a = a.replace(TS_NS_SQL["duckdb"].format(x="r.ts"), "<ts>")
        b = b.replace(TS_NS_SQL["spark"].format(x="r.ts"), "<ts>")
        assert a == b, name
    with pytest.raises(LinkageError, match="dialect"):
        aggregation_sql(settings=SETTINGS, dialect="oracle")


def test_aggregation_inputs_are_checked_like_a_signature() -> None:
    """``aggregation_steps`` takes its inputs as keyword-only arguments: an unknown or a
    missing one is a TypeError naming it."""
    import pytest

    from linkage.engine import open_engine
    from linkage.identifiers.sql import aggregation_steps
    from linkage.settings import IdentifierSettings

    engine = open_engine("duckdb")
    try:
        with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
            next(aggregation_steps(engine, requests=None, accounts=None, bogus=1))  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'accounts'"):
            next(aggregation_steps(engine, requests=None, settings=IdentifierSettings()))  # type: ignore[call-arg, arg-type]
    finally:
        engine.close()
