"""The stand-alone FRAUDAR peer: DuckDB incidence straight from the files, compiled peel.

Its incidence must be the one ``build_incidence`` makes from the same pairs
(computed here in pandas), and its scores those of the in-engine ``run_fraudar``
on those pairs: the two variants differ only in where the pairs come from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.baselines._common import build_incidence
from linkage.baselines._files import incidence_from_files
from linkage.baselines.fraudar import detect_files, run_fraudar, run_fraudar_files
from linkage.errors import DatasetError
from linkage.fixtures import make_world, write_world
from linkage.store import load_run
from tests.baselines import _reference_fraudar as ref

SOURCES = (  # (table, column, kind), as documented in linkage.baselines._files
    ("requests", "ip", "ip"),
    ("requests", "device_fingerprint", "device"),
    ("accounts", "signup_ip", "ip"),
    ("accounts", "device_fingerprint", "device"),
    ("accounts", "payment_fingerprint", "payment"),
    ("accounts", "email", "email"),
)


def _norm(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.strip(" ").str.lower()
    return out.mask(out == "")


def pandas_edges(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The peer's (account, kind, value) pairs, computed independently in pandas."""
    parts = []
    for table, column, kind in SOURCES:
        df = tables.get(table)
        if df is not None and column in df.columns:
            parts.append(
                pd.DataFrame(
                    {
                        "account_id": df["account_id"].astype(str),
                        "kind": kind,
                        "value": _norm(df[column]),
                    }
                )
            )
    ids = tables.get("identifiers")
    if ids is not None:
        parts.append(
            pd.DataFrame(
                {
                    "account_id": ids["account_id"].astype(str),
                    "kind": "x:" + _norm(ids["kind"]),
                    "value": _norm(ids["value"]),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).dropna()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pd.DataFrame], Path]:
    tables = make_world(scale=0.03, seed=4)
    out = tmp_path_factory.mktemp("fraudar-world")
    write_world(tables, out, fmt="parquet")
    return tables, out


def _check_against_pandas(tables: dict[str, pd.DataFrame], path: Path) -> None:
    edges = pandas_edges(tables)
    features = pd.DataFrame(index=pd.Index(tables["accounts"]["account_id"].astype(str)))
    inc = build_incidence(edges, features)
    deg = inc.identifier_degree()
    keep = deg[inc.cols] >= 2
    used, cols_c = np.unique(inc.cols[keep], return_inverse=True)

    got = incidence_from_files(path)
    assert got.accounts.tolist() == inc.accounts.tolist()
    assert got.rows.tolist() == inc.rows[keep].tolist()
    assert got.cols.tolist() == cols_c.tolist()
    assert got.degree.tolist() == deg[used].tolist()
    assert got.n_pairs == len(inc.rows)

    frame, _ = run_fraudar_files(path)
    want = run_fraudar(edges=edges, features=features).set_index("account_id")
    have = frame.set_index("account_id").loc[want.index]
    assert (have["score"].to_numpy() == want["score"].to_numpy()).all()
    assert (have["level"].to_numpy() == want["level"].to_numpy()).all()
    assert have["cluster_id"].fillna("").tolist() == want["cluster_id"].fillna("").tolist()
    assert (want["level"] == "block").sum() > 0  # the world has farms FRAUDAR finds


def test_parquet_incidence_and_scores_match_pandas(world) -> None:
    tables, path = world
    _check_against_pandas(tables, path)


def test_csv_and_shuffled_rows_give_the_same_answer(world, tmp_path: Path) -> None:
    tables, path = world
    rng = np.random.default_rng(0)
    shuffled = {
        name: df.sample(frac=1.0, random_state=int(rng.integers(1 << 31)))
        for name, df in tables.items()
    }
    write_world(shuffled, tmp_path, fmt="csv")
    a, _ = run_fraudar_files(path)
    b, _ = run_fraudar_files(tmp_path)
    pd.testing.assert_frame_equal(a, b)
    _check_against_pandas(shuffled, tmp_path)


def test_peel_matches_the_heapq_oracle_on_the_file_incidence(world) -> None:
    from linkage.baselines.fraudar import column_weights, dense_blocks

    inc = incidence_from_files(world[1])
    w = column_weights(inc.degree)[inc.cols]
    blocks, whole = dense_blocks(inc.n_accounts, inc.rows, inc.cols, w)
    # the oracle takes an Incidence: every identifier here links (degree >= 2)
    from linkage.baselines._common import Incidence

    oracle = Incidence(
        accounts=inc.accounts,
        identifiers=np.arange(len(inc.degree)).astype(str).astype(object),
        rows=inc.rows,
        cols=inc.cols,
    )
    ref_blocks, ref_whole = ref.fraudar_blocks(oracle)
    assert whole == ref_whole
    assert [(b.density, b.accounts.tolist(), b.identifiers.tolist()) for b in blocks] == [
        (b.density, b.accounts.tolist(), b.identifiers.tolist()) for b in ref_blocks
    ]


def test_detect_files_writes_a_run_directory(world, tmp_path: Path) -> None:
    _, path = world
    manifest = detect_files(path, tmp_path / "run")
    run = load_run(tmp_path / "run")
    frame, _ = run_fraudar_files(path)
    assert run.accounts["account_id"].tolist() == frame["account_id"].tolist()
    assert np.allclose(run.accounts["score"], frame["score"].round(6), atol=0, rtol=0)
    assert set(manifest["timings"]) == {"identifiers", "detect", "write", "total"}
    assert manifest["method"] == "fraudar" and manifest["peak_rss_mb"] > 0
    on_disk = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert on_disk["counts"]["clusters"] == len(run.clusters) > 0
    assert sum(c["size"] for c in run.clusters) == int(frame["cluster_id"].notna().sum())


def _write(d: Path, **tables: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (d / f"{name}.csv").write_text(text, encoding="utf-8")
    return d


def test_account_order_is_python_order_and_strangers_are_ignored(tmp_path: Path) -> None:
    ids = ["Zed", "alpha", "Ärger", "ß", "10", "9", "a b", "éclair"]
    accounts = "account_id,email,payment_fingerprint\n" + "".join(
        f"{a},{'  Shared@X.org ' if i < 4 else f'u{i}@x.org'},{'CARD-1' if i % 2 else ''}\n"
        for i, a in enumerate(ids)
    )
    requests = (
        "account_id,ip\nZed,10.0.0.1\nalpha,10.0.0.1\nstranger,10.0.0.1\nstranger,10.0.0.2\n9,\n"
    )
    d = _write(tmp_path / "ds", accounts=accounts, requests=requests)
    inc = incidence_from_files(d)
    assert inc.accounts.tolist() == sorted(ids)
    pos = {a: i for i, a in enumerate(inc.accounts)}
    pairs = set(zip(inc.rows.tolist(), inc.cols.tolist(), strict=True))
    # linking identifiers in (kind, value) order: email "shared@x.org", ip 10.0.0.1,
    # payment "card-1" (trimmed, lower-cased); the stranger's rows link nobody
    assert inc.degree.tolist() == [4, 2, 4]
    assert {(pos["Zed"], 1), (pos["alpha"], 1)} <= pairs
    assert {r for r, c in pairs if c == 0} == {pos[a] for a in ids[:4]}
    assert {r for r, c in pairs if c == 2} == {pos[a] for i, a in enumerate(ids) if i % 2}
    assert inc.n_requests == 5


def test_partial_data_and_missing_accounts(tmp_path: Path) -> None:
    only_accounts = _write(
        tmp_path / "a", accounts="account_id,device_fingerprint\nx,d1\ny,d1\nz,\n"
    )
    inc = incidence_from_files(only_accounts)
    assert inc.degree.tolist() == [2] and inc.n_requests == 0
    frame, _ = run_fraudar_files(only_accounts)
    assert frame["account_id"].tolist() == ["x", "y", "z"]
    with pytest.raises(DatasetError, match="no accounts table"):
        incidence_from_files(_write(tmp_path / "b", requests="account_id,ip\nx,1.2.3.4\n"))
    nothing = _write(tmp_path / "c", accounts="account_id,email\nx,\ny,\n")
    frame, inc = run_fraudar_files(nothing)
    assert len(inc.rows) == 0 and (frame["level"] == "clear").all()


def test_unreadable_file_is_a_dataset_error(tmp_path: Path) -> None:
    d = _write(tmp_path / "bad", accounts="account_id,email\nx,a@b.c\n")
    (d / "requests.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="DuckDB could not read"):
        incidence_from_files(d)
