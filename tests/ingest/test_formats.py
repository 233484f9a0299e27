"""Every format reads to the same frames; header and file errors are reported at once."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.errors import DatasetError, LinkageError, SchemaError
from linkage.ingest import STRING_DTYPE, load_dataset, summarize

from .conftest import small_tables, write_dataset, write_table

SUFFIXES = [".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz"]


def _load(directory: Path, suffix: str):
    return load_dataset(write_dataset(directory, small_tables(), suffix))


def test_all_formats_give_identical_frames(tmp_path: Path) -> None:
    ref = _load(tmp_path / "csv", ".csv")
    for suffix in SUFFIXES[1:]:
        ds = _load(tmp_path / suffix.replace(".", "_"), suffix)
        for name in ("accounts", "requests", "identifiers", "labels", "signups"):
            pd.testing.assert_frame_equal(getattr(ds, name), getattr(ref, name), obj=name)


def test_types_and_values(tmp_path: Path) -> None:
    ds = _load(tmp_path, ".csv")
    acc, req = ds.accounts, ds.requests
    assert acc["account_id"].dtype == STRING_DTYPE
    assert str(acc["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(req["response_tokens"].dtype) == "Int64"
    assert ds.labels["is_farm"].dtype == np.int8
    assert req["_row"].dtype == np.int64 and req["_row"].tolist() == [0, 1, 2, 3, 4]
    assert acc["created_at"][1] == pd.Timestamp("2024-01-02T10:00:00Z")
    assert pd.isna(acc["device_fingerprint"][2])  # empty cell = unknown
    assert pd.isna(ds.identifiers["ts"][1])
    assert req["prompt"][2] == "multi\nline\nprompt"
    assert req["prompt"][3] == "emoji 🧠 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    assert ds.report.problem_counts == {}
    assert ds.files["accounts"].endswith("accounts.csv")
    assert "requests" in summarize(ds.report)


def test_optional_tables_absent_are_none(tmp_path: Path) -> None:
    t = small_tables()
    ds = load_dataset(write_dataset(tmp_path, {k: t[k] for k in ("accounts", "requests")}))
    assert ds.identifiers is None and ds.labels is None and ds.signups is None
    assert set(ds.report.tables) == {"accounts", "requests"}


def test_unknown_files_ignored_extra_columns_kept(tmp_path: Path) -> None:
    t = small_tables()
    t["accounts"]["tier"] = ["  free ", "pro", ""]
    write_dataset(tmp_path, t)
    (tmp_path / "README.txt").write_text("hello")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    ds = load_dataset(tmp_path)
    assert ds.accounts["tier"].tolist()[:2] == ["free", "pro"]
    assert pd.isna(ds.accounts["tier"][2])
    assert "other" not in ds.files


def test_two_files_for_one_table(tmp_path: Path) -> None:
    write_dataset(tmp_path, small_tables())
    write_table(small_tables()["accounts"], tmp_path / "accounts.parquet")
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    assert "accounts.csv" in str(err.value) and "accounts.parquet" in str(err.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope")


def test_missing_tables_and_columns_in_one_error(tmp_path: Path) -> None:
    t = small_tables()
    write_dataset(tmp_path, {"labels": t["labels"].drop(columns=["is_farm"])})
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    text = str(err.value)
    assert "'accounts' missing" in text and "'requests' missing" in text
    assert "is_farm" in text  # the column problem of another file, same error


def test_missing_columns_listed_together_with_found_and_hint(tmp_path: Path) -> None:
    t = small_tables()
    t["accounts"] = (
        t["accounts"].rename(columns={"account_id": "Account_ID"}).drop(columns=["email"])
    )
    t["requests"] = t["requests"].drop(columns=["ts", "model"])
    write_dataset(tmp_path, t)
    with pytest.raises(SchemaError) as err:
        load_dataset(tmp_path)
    probs = err.value.problems
    missing = {(p.file, p.column) for p in probs}
    assert missing == {
        ("accounts.csv", "account_id"),
        ("accounts.csv", "email"),
        ("requests.csv", "ts"),
        ("requests.csv", "model"),
    }
    text = str(err.value)
    assert "did you mean 'Account_ID'" in text
    assert "'signup_ip'" in text  # columns found are shown


def test_header_whitespace_stripped_and_optional_columns_added(tmp_path: Path) -> None:
    t = small_tables()
    t["accounts"] = t["accounts"].drop(columns=["payment_fingerprint", "user_agent"])
    t["accounts"].columns = [f" {c} " for c in t["accounts"].columns]
    ds = load_dataset(write_dataset(tmp_path, t))
    assert ds.accounts["payment_fingerprint"].isna().all()
    assert ds.accounts["account_id"].tolist() == ["a1", "a2", "a3"]
    assert ds.report.problem_counts["accounts/user_agent/column absent, added as unknown"] == 1
    warn = [p for p in ds.report.problems if p.column == "payment_fingerprint"]
    assert warn and warn[0].severity == "warning" and warn[0].row is None


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("requests.csv.gz", b"this is not gzip"),
        ("requests.parquet", b"PAR1 not really"),
        ("requests.csv", b""),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path: Path, name: str, payload: bytes) -> None:
    write_dataset(tmp_path, {"accounts": small_tables()["accounts"]})
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(LinkageError) as err:
        load_dataset(tmp_path)
    assert name in str(err.value)


def test_csv_bad_line_quarantined_with_its_line_number(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"accounts": small_tables()["accounts"]})
    good = "a1,2024-01-01,1.2.3.4,p,1,m\n" * 3
    (tmp_path / "requests.csv").write_text(
        "account_id,ts,ip,prompt,response_tokens,model\n" + good + "a1,2024\n"
    )
    ds = load_dataset(tmp_path)
    assert len(ds.requests) == 3
    bad = [p for p in ds.report.problems if p.table == "requests" and p.severity == "error"]
    assert [(p.row, p.message) for p in bad] == [(5, "wrong number of fields")]
    assert "requests.csv line 5" in str(bad[0])


def test_progress_messages(tmp_path: Path) -> None:
    msgs: list[str] = []
    load_dataset(write_dataset(tmp_path, small_tables(), ".parquet"), progress=msgs.append)
    assert "reading requests.parquet (5 rows)" in msgs


def test_gzip_jsonl_and_plain_equal_bytes(tmp_path: Path) -> None:
    # the .gz really is compressed (guards against the writer silently not compressing)
    write_dataset(tmp_path, small_tables(), ".csv.gz")
    assert gzip.decompress((tmp_path / "accounts.csv.gz").read_bytes()).startswith(b"account_id")


def test_bom_and_numeric_looking_ids_stay_strings(tmp_path: Path) -> None:
    t = small_tables()
    t["accounts"]["account_id"] = ["007", "2", "3"]
    t["requests"]["account_id"] = ["007", "007", "2", "3", "3"]
    write_dataset(tmp_path, {k: t[k] for k in ("accounts", "requests")})
    p = tmp_path / "accounts.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    ds = load_dataset(tmp_path)
    assert ds.accounts["account_id"].tolist() == ["007", "2", "3"]  # leading zero kept
    assert ds.accounts["account_id"].dtype == STRING_DTYPE
    assert len(ds.requests) == 5


def test_jsonl_mixed_types_and_typed_parquet(tmp_path: Path) -> None:
    lines = [
        '{"account_id": "a1", "created_at": "2024-01-01T00:00:00Z", "email": "x", "signup_ip": "1.2.3.4"}',
        '{"account_id": 2, "created_at": 1704067200, "email": null, "signup_ip": "bad"}',
    ]
    (tmp_path / "accounts.jsonl").write_text("\n".join(lines) + "\n")
    req = small_tables()["requests"].iloc[:1].copy()
    req["response_tokens"] = np.array([5], dtype=np.int64)
    write_table(req, tmp_path / "requests.parquet")
    ds = load_dataset(tmp_path)
    assert ds.accounts["account_id"].tolist() == ["a1", "2"]
    assert (ds.accounts["created_at"] == pd.Timestamp("2024-01-01T00:00:00Z")).all()
    assert pd.isna(ds.accounts["signup_ip"][1]) and pd.isna(ds.accounts["email"][1])
    assert ds.requests["response_tokens"].tolist() == [5]
