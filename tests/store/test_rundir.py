"""A run directory is checked whole before the store takes it (files, counts, checksums)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkage.errors import RunError
from linkage.store.db import Store
from linkage.store.models import ClusterRow, MembershipRow, RunRow
from linkage.store.rundir import CHECKED_FILES, sha256_file, verify_run, write_manifest
from tests.store.run_factory import make_run, members

CLUSTERS = {"farm": members("f", 6), "pair": members("p", 2)}


def _run(tmp_path: Path, name: str = "run") -> Path:
    return make_run(tmp_path / name, CLUSTERS, levels={"farm": "block"}, loners=["z1"])


def _rows(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (RunRow, ClusterRow, MembershipRow)
        )


def test_write_run_records_bytes_rows_and_sha256_of_each_file(tmp_path: Path) -> None:
    run = _run(tmp_path)
    files = json.loads((run / "manifest.json").read_text())["files"]
    assert set(files) == set(CHECKED_FILES)
    assert files["accounts.csv"]["rows"] == 9 and files["clusters.jsonl"]["rows"] == 2
    for name, rec in files.items():
        assert rec["sha256"] == sha256_file(run / name)
        assert rec["bytes"] == (run / name).stat().st_size
    # detect rewrites the manifest with its timings afterwards: the files block stays
    write_manifest(run, {"settings": {}, "counts": {"accounts": 9}, "timings": {"total": 1.0}})
    assert json.loads((run / "manifest.json").read_text())["files"] == files
    assert verify_run(run).checked == "checksums"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("empty_clusters", "clusters.jsonl has 0 bytes"),
        ("truncated_accounts", "accounts.csv has"),
        ("tampered_accounts", "accounts.csv does not match its sha256"),
        ("missing_index", "signup_index.parquet is missing"),
    ],
)
def test_a_damaged_run_is_refused_with_the_reason_and_the_store_is_unchanged(
    tmp_path: Path, damage: str, reason: str
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    good = store.import_run(_run(tmp_path, "good"))
    before = _rows(store)
    bad = _run(tmp_path, "bad")
    acc = bad / "accounts.csv"
    if damage == "empty_clusters":
        (bad / "clusters.jsonl").write_text("")
    elif damage == "truncated_accounts":
        data = acc.read_bytes()
        acc.write_bytes(data[: len(data) - 7])  # cut mid-line
    elif damage == "tampered_accounts":
        acc.write_text(acc.read_text().replace(",block", ",clear", 1))  # same size
    else:
        (bad / "signup_index.parquet").unlink()
    with pytest.raises(RunError, match="failed verification") as exc:
        store.import_run(bad)
    assert reason in str(exc.value)
    assert _rows(store) == before
    assert store.latest_run()["run_id"] == good.run_id


def test_a_run_without_checksums_is_checked_on_its_counts(tmp_path: Path) -> None:
    """A run from before checksums: still refused when empty or cut short."""
    run = _run(tmp_path)
    man = json.loads((run / "manifest.json").read_text())
    del man["files"]
    (run / "manifest.json").write_text(json.dumps(man))
    assert verify_run(run).checked == "counts"
    lines = (run / "accounts.csv").read_text().splitlines()
    (run / "accounts.csv").write_text("\n".join(lines[:4]) + "\n")  # 3 of 9 accounts
    with pytest.raises(RunError, match=r"3 rows, manifest counts\.accounts says 9"):
        verify_run(run)
    (run / "accounts.csv").write_text(lines[0] + "\n")
    with pytest.raises(RunError, match="no accounts"):
        verify_run(run)


def test_importing_the_same_run_twice_adds_one_run(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run = _run(tmp_path)
    first = store.import_run(run)
    again = store.import_run(run)
    assert first.created and not again.created
    assert again.run_id == first.run_id and again.cluster_ids == first.cluster_ids
    assert "already in the store" in again.describe()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RunRow)).scalar_one() == 1
