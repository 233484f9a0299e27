"""Row rules: what is quarantined, what is set unknown, and how it is accounted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.dataset import Dataset
from linkage.errors import SchemaError
from linkage.ingest import load_dataset, summarize, validate_signups
from linkage.settings import IngestSettings

from .conftest import small_tables, write_dataset


def _dirty_tables() -> dict[str, pd.DataFrame]:
    t = small_tables()
    acc = t["accounts"]
    extra = pd.DataFrame(
        {
            "account_id": ["  ", "a2", "a4", "a5"],  # blank id; duplicate of a2
            "created_at": ["2024-01-01", "2024-01-01", "yesterday", "2024-01-01"],
            "email": ["e@x", "dup@x", "a4@x", "a5@x"],
            "signup_ip": ["1.1.1.1", "1.1.1.1", "999.1.1.1", "not-an-ip"],
            "device_fingerprint": ["", "", "", ""],
            "payment_fingerprint": ["", "", "", ""],
            "user_agent": ["", "", "", ""],
        }
    )
    t["accounts"] = pd.concat([acc, extra], ignore_index=True)
    req = t["requests"]
    bad_req = pd.DataFrame(
        {
            "account_id": ["ghost", "", "a1", "a1", "a4"],
            "ts": ["2024-02-01T00:00:00Z", "2024-02-01", "not a time", "", "2024-02-01"],
            "ip": ["1.2.3.4", "1.2.3.4", "1.2.3.4", "1.2.3.4", "300.0.0.1"],
            "device_fingerprint": ["", "", "", "", ""],
            "prompt": ["p", "p", "p", "p", "p"],
            "response_tokens": ["1", "1", "1", "1", "-5"],
            "model": ["m", "m", "m", "m", "m"],
        }
    )
    t["requests"] = pd.concat([req, bad_req], ignore_index=True)
    t["identifiers"] = pd.concat(
        [
            t["identifiers"],
            pd.DataFrame(
                {
                    "account_id": ["ghost", "a1"],
                    "kind": ["x", ""],
                    "value": ["v", "v"],
                    "ts": ["", ""],
                }
            ),
        ],
        ignore_index=True,
    )
    t["labels"] = pd.concat(
        [
            t["labels"],
            pd.DataFrame(
                {
                    "account_id": ["a1", "a4", "ghost", "a5"],
                    "is_farm": ["0", "2", "1", ""],
                    "group": ["", "", "", ""],
                    "population": ["", "", "", ""],
                }
            ),
        ],
        ignore_index=True,
    )
    return t


@pytest.fixture
def dirty(tmp_path: Path) -> tuple[Dataset, Path]:
    qdir = tmp_path / "q"
    ds = load_dataset(write_dataset(tmp_path / "ds", _dirty_tables()), quarantine_dir=qdir)
    return ds, qdir


def test_accounting_never_loses_rows(dirty: tuple[Dataset, Path]) -> None:
    ds, _ = dirty
    for name, t in ds.report.tables.items():
        assert t.rows_read == t.rows_kept + t.rows_quarantined, name
        assert len(getattr(ds, name)) == t.rows_kept
    r = ds.report.tables
    assert (r["accounts"].rows_read, r["accounts"].rows_quarantined) == (7, 2)
    assert (r["requests"].rows_read, r["requests"].rows_quarantined) == (10, 4)
    assert r["identifiers"].rows_quarantined == 2
    assert r["labels"].rows_quarantined == 4


def test_accounts_rules(dirty: tuple[Dataset, Path]) -> None:
    ds, qdir = dirty
    acc = ds.accounts
    assert acc["account_id"].tolist() == ["a1", "a2", "a3", "a4", "a5"]
    assert acc["email"][1] == "y.z+1@gmail.com"  # the first a2 is kept
    a4 = acc.set_index("account_id").loc["a4"]
    assert pd.isna(a4["created_at"]) and pd.isna(a4["signup_ip"])
    assert pd.isna(acc.set_index("account_id").loc["a5", "signup_ip"])
    assert acc["_row"].tolist() == [0, 1, 2, 5, 6]
    counts = ds.report.problem_counts
    assert counts["accounts/account_id/empty account_id"] == 1
    assert counts["accounts/account_id/duplicate account_id (first occurrence kept)"] == 1
    assert counts["accounts/created_at/unparseable timestamp, set unknown"] == 1
    assert counts["accounts/signup_ip/not a valid IPv4/IPv6 address, set unknown"] == 2
    assert ds.report.tables["accounts"].fields_nulled == 3
    q = pd.read_csv(qdir / "accounts.csv", dtype=str, keep_default_na=False)
    assert q["_row"].tolist() == ["5", "6"]  # editor lines: header is line 1
    assert q["_problem"].tolist() == [
        "account_id: empty account_id",
        "account_id: duplicate account_id (first occurrence kept)",
    ]
    assert q["email"].tolist() == ["e@x", "dup@x"]  # original columns kept


def test_requests_rules(dirty: tuple[Dataset, Path]) -> None:
    ds, qdir = dirty
    req = ds.requests
    assert req["_row"].tolist() == [0, 1, 2, 3, 4, 9]
    last = req.iloc[-1]
    assert pd.isna(last["ip"]) and pd.isna(last["response_tokens"])  # set unknown, row kept
    c = ds.report.problem_counts
    assert c["requests/account_id/account_id not in accounts"] == 1
    assert c["requests/account_id/empty account_id"] == 1
    assert c["requests/ts/unparseable timestamp"] == 1
    assert c["requests/ts/empty ts"] == 1
    assert c["requests/response_tokens/not an integer >= 0, set unknown"] == 1
    q = pd.read_csv(qdir / "requests.csv", dtype=str, keep_default_na=False)
    # editor lines: header line 1, data rows 5..8 start on lines 9..12 because the
    # prompt "multi\nline\nprompt" of row 2 spans three lines
    assert q["_row"].tolist() == ["9", "10", "11", "12"]
    assert q["_problem"][0] == "account_id: account_id not in accounts"
    assert q["ts"][2] == "not a time"
    assert ds.report.quarantine_files["requests"] == str(qdir / "requests.csv")


def test_identifiers_and_labels_rules(dirty: tuple[Dataset, Path]) -> None:
    ds, qdir = dirty
    assert ds.identifiers is not None and ds.labels is not None
    assert ds.identifiers["account_id"].tolist() == ["a1", "a2"]
    c = ds.report.problem_counts
    assert c["identifiers/kind/empty kind"] == 1
    assert c["labels/is_farm/is_farm not 0/1"] == 2
    assert c["labels/account_id/account_id not in accounts or signups"] == 1
    assert c["labels/account_id/duplicate account_id (first occurrence kept)"] == 1
    assert ds.labels["account_id"].tolist() == ["a1", "a2", "a3", "s1"]
    assert ds.labels["is_farm"].tolist() == [1, 1, 0, 0]
    q = pd.read_csv(qdir / "labels.csv", dtype=str, keep_default_na=False)
    assert set(q["_row"]) == {"6", "7", "8", "9"}  # data rows 4..7 = lines 6..9
    assert set((qdir).iterdir()) == {
        qdir / "accounts.csv",
        qdir / "requests.csv",
        qdir / "identifiers.csv",
        qdir / "labels.csv",
    }


def test_all_problems_of_a_row_are_joined(tmp_path: Path) -> None:
    t = small_tables()
    t["requests"].loc[0, ["account_id", "ts", "ip"]] = ["ghost", "bad", "bad-ip"]
    qdir = tmp_path / "q"
    load_dataset(write_dataset(tmp_path / "ds", t), quarantine_dir=qdir)
    q = pd.read_csv(qdir / "requests.csv", dtype=str)
    parts = q["_problem"][0].split("; ")
    assert parts == [
        "ts: unparseable timestamp",
        "ip: not a valid IPv4/IPv6 address, set unknown",
        "account_id: account_id not in accounts",
    ]


def test_nothing_quarantined_writes_nothing(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    ds = load_dataset(write_dataset(tmp_path / "ds", small_tables()), quarantine_dir=qdir)
    assert not qdir.exists() and ds.report.quarantine_files == {}


def test_problem_sample_is_capped_but_counts_are_complete(tmp_path: Path) -> None:
    t = small_tables()
    n = 50
    t["requests"] = pd.DataFrame(
        {
            "account_id": ["a1"] * n,
            "ts": ["garbage"] * n,
            "ip": ["x"] * n,
            "prompt": ["p"] * n,
            "response_tokens": ["1"] * n,
            "model": ["m"] * n,
        }
    )
    ds = load_dataset(write_dataset(tmp_path, t), settings=IngestSettings(max_problems_listed=7))
    assert len(ds.report.problems) == 7
    assert ds.report.problem_counts["requests/ts/unparseable timestamp"] == n
    assert ds.report.problem_counts["requests/ip/not a valid IPv4/IPv6 address, set unknown"] == n
    first_ts = next(p for p in ds.report.problems if p.column == "ts")
    assert first_ts.value == "garbage" and first_ts.row == 2  # line 2: the first data line
    text = summarize(ds.report)
    assert "50  requests/ts/unparseable timestamp  (first at line 2)" in text
    assert "quarantined rows were not written" in text
    assert len(ds.requests) == 0 and ds.report.tables["requests"].rows_quarantined == n


def test_permutation_gives_same_kept_set(tmp_path: Path) -> None:
    t = _dirty_tables()
    t["accounts"] = t["accounts"].drop_duplicates("account_id")  # order-free duplicate rule
    base = load_dataset(write_dataset(tmp_path / "a", t))
    rng = np.random.default_rng(1)
    shuffled = {k: v.iloc[rng.permutation(len(v))] for k, v in t.items()}
    perm = load_dataset(write_dataset(tmp_path / "b", shuffled))
    for name in ("accounts", "requests", "identifiers", "labels"):
        cols = [c for c in getattr(base, name).columns if c != "_row"]
        a = getattr(base, name)[cols].sort_values(cols[:2]).reset_index(drop=True)
        b = getattr(perm, name)[cols].sort_values(cols[:2]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, obj=name)
    assert base.report.problem_counts == perm.report.problem_counts


def test_empty_columns_work(tmp_path: Path) -> None:
    t = small_tables()
    t["requests"]["ip"] = ""
    t["requests"]["prompt"] = ""
    t["accounts"]["signup_ip"] = ""
    t["accounts"]["created_at"] = ""
    ds = load_dataset(write_dataset(tmp_path, t, ".csv"))
    assert ds.requests["ip"].isna().all() and ds.requests["prompt"].isna().all()
    assert ds.accounts["created_at"].isna().all()
    assert str(ds.accounts["created_at"].dtype) == "datetime64[ns, UTC]"
    assert len(ds.requests) == 5 and ds.report.problem_counts == {}


def test_empty_tables(tmp_path: Path) -> None:
    t = small_tables()
    t["requests"] = t["requests"].iloc[:0]
    for suffix in (".csv", ".parquet"):
        ds = load_dataset(write_dataset(tmp_path / suffix[1:], t, suffix))
        assert len(ds.requests) == 0
        assert str(ds.requests["ts"].dtype) == "datetime64[ns, UTC]"


def test_validate_signups() -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["n1", " ", "n1"],
            "created_at": ["2024-05-01T00:00:00+02:00", "2024-05-01", "bad"],
            "email": ["a@b.c", "b@b.c", "c@b.c"],
            "signup_ip": ["::ffff:1.2.3.4", "1.2.3.4", "1.2.3.4"],
        }
    )
    kept, problems = validate_signups(frame)
    assert kept["account_id"].tolist() == ["n1"]
    assert kept["signup_ip"][0] == "1.2.3.4"
    assert kept["created_at"][0] == pd.Timestamp("2024-04-30T22:00:00Z")
    assert kept["payment_fingerprint"].isna().all()
    messages = {p.message for p in problems}
    assert "empty account_id" in messages
    assert "duplicate account_id (first occurrence kept)" in messages
    assert frame["account_id"][1] == " "  # caller's frame untouched
    with pytest.raises(SchemaError) as err:
        validate_signups(frame.drop(columns=["email"]))
    assert err.value.problems[0].column == "email"
