"""The service store: schema, import with stable ids and lineage, atomicity, feedback, keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from linkage.errors import RunError, StoreError
from linkage.store.db import SCHEMA_VERSION, Store
from linkage.store.models import ClusterRow, LineageRow, MembershipRow, RunRow
from tests.store.run_factory import make_run, members


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (RunRow, ClusterRow, MembershipRow, LineageRow)
        }


def _lineage(store: Store, run_id: int) -> set[tuple[str, str | None, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(LineageRow.cluster_id, LineageRow.parent_cluster_id, LineageRow.relation).where(
                LineageRow.run_id == run_id
            )
        ).all()
    return {tuple(r) for r in rows}


def test_schema_created_and_reopened(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    assert s.schema_version() == SCHEMA_VERSION
    s.close()
    s2 = Store(_url(tmp_path))  # idempotent open / migrate
    assert s2.schema_version() == SCHEMA_VERSION
    assert s2.latest_run() is None


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_import_first_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r1", {"c0": members("a", 4), "c1": members("b", 3)}, loners=["z1"])
    s = Store(_url(tmp_path))
    res = s.import_run(run)
    assert res.n_accounts == 8 and res.n_clusters == 2
    assert sorted(res.cluster_ids.values()) == ["cl-000001", "cl-000002"]
    assert res.cluster_ids["c0"] == "cl-000001"  # larger cluster numbered first
    assert res.lineage == {"new": 2}
    latest = s.latest_run()
    assert latest is not None and latest["path"] == str(run.resolve())
    c = s.get_cluster("cl-000001")
    assert c is not None and c["size"] == 4 and c["source_id"] == "c0"
    assert [e["kind"] for e in c["evidence"]] == ["shared_payment", "shared_ip"]  # by contribution
    acc = s.get_account("z1")
    assert acc is not None and acc["cluster_id"] is None and acc["level"] == "clear"


def test_stable_ids_continued_split_merged_new(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    r1 = s.import_run(
        make_run(
            tmp_path / "r1",
            {
                "x": members("a", 6),  # will continue (5 of 6 stay together)
                "y": members("b", 6),  # will split 3/3 -> nobody keeps the id
                "m1": members("m", 4),  # m1 and m2 merge
                "m2": members("n", 3),
            },
        )
    )
    ids1 = r1.cluster_ids
    # run 2 numbers its clusters differently
    r2 = s.import_run(
        make_run(
            tmp_path / "r2",
            {
                "k0": [*members("a", 5), "new1"],
                "k1": members("b", 3),
                "k2": members("b", 3, start=3),
                "k3": members("m", 4) + members("n", 3),
                "k4": ["f1", "f2", "f3"],
            },
        )
    )
    ids2 = r2.cluster_ids
    assert ids2["k0"] == ids1["x"]  # continued keeps its id
    assert ids2["k1"] != ids1["y"] and ids2["k2"] != ids1["y"]  # even split: fresh ids
    assert ids2["k3"] == ids1["m1"]  # merge keeps the id of the larger overlap
    assert ids2["k4"] not in ids1.values()
    lin = _lineage(s, r2.run_id)
    assert (ids1["x"], ids1["x"], "continued") in lin
    assert (ids2["k1"], ids1["y"], "split") in lin and (ids2["k2"], ids1["y"], "split") in lin
    assert (ids1["m1"], ids1["m1"], "continued") in lin
    assert (ids1["m1"], ids1["m2"], "merged") in lin
    assert (ids2["k4"], None, "new") in lin
    # the old split cluster is still readable (last seen in run 1) and shows its children
    old = s.get_cluster(ids1["y"])
    assert old is not None and old["current"] is False
    assert {ch["relation"] for ch in old["lineage"]["children"]} == {"split"}


def test_uneven_split_keeps_id_for_majority(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    ids1 = s.import_run(make_run(tmp_path / "r1", {"y": members("b", 10)})).cluster_ids
    r2 = s.import_run(
        make_run(tmp_path / "r2", {"p": members("b", 7), "q": members("b", 3, start=7)})
    )
    assert r2.cluster_ids["p"] == ids1["y"]
    assert (r2.cluster_ids["q"], ids1["y"], "split") in _lineage(s, r2.run_id)


def test_banned_farm_regrew(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    r1 = s.import_run(
        make_run(
            tmp_path / "r1",
            {"farm": members("f", 6), "ok": members("o", 3)},
            levels={"farm": "block", "ok": "clear"},
        )
    )
    farm = r1.cluster_ids["farm"]
    # run 2: the farm was banned and is gone
    r2 = s.import_run(make_run(tmp_path / "r2", {"ok": members("o", 3)}))
    assert farm not in r2.cluster_ids.values()
    # run 3: two survivors of the farm with fresh accounts
    r3 = s.import_run(
        make_run(
            tmp_path / "r3", {"z": ["f0", "f1", "g1", "g2", "g3", "g4"], "ok": members("o", 3)}
        )
    )
    new_id = r3.cluster_ids["z"]
    assert new_id != farm
    lin = _lineage(s, r3.run_id)
    assert (new_id, farm, "regrew") in lin
    c = s.get_cluster(new_id)
    assert c is not None
    regrew = [p for p in c["lineage"]["parents"] if p["relation"] == "regrew"]
    assert regrew and regrew[0]["parent_cluster_id"] == farm
    assert regrew[0]["overlap"] == pytest.approx(2 / 6, abs=1e-6)


def test_confirmed_farm_feedback_counts_as_banned(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    r1 = s.import_run(
        make_run(tmp_path / "r1", {"farm": members("f", 4)}, levels={"farm": "review"})
    )
    farm = r1.cluster_ids["farm"]
    s.add_feedback(
        target_type="cluster",
        target_id=farm,
        verdict="confirmed_farm",
        who="ana",
        why="manual review",
    )
    r2 = s.import_run(make_run(tmp_path / "r2", {"z": ["f0", "h1", "h2"]}))
    assert (r2.cluster_ids["z"], farm, "regrew") in _lineage(s, r2.run_id)


def test_import_is_atomic_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Store(_url(tmp_path))
    s.import_run(make_run(tmp_path / "r1", {"c0": members("a", 4)}))
    before = _counts(s)

    def boom(self: Store, stage: str) -> None:
        if stage == "lineage":
            raise RuntimeError("crash after every row was written")

    monkeypatch.setattr(Store, "_import_checkpoint", boom)
    with pytest.raises(RuntimeError):
        s.import_run(make_run(tmp_path / "r2", {"c0": members("a", 4), "c1": members("b", 5)}))
    assert _counts(s) == before
    monkeypatch.undo()
    res = s.import_run(make_run(tmp_path / "r2", {"c0": members("a", 4), "c1": members("b", 5)}))
    assert res.run_id == 2  # a clean retry works


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from linkage.store.db import Store

def hang(self, stage):
    if stage == "memberships":
        Path(sys.argv[3]).write_text("in memberships")
        time.sleep(120)

Store._import_checkpoint = hang
Store(sys.argv[1]).import_run(sys.argv[2])
"""


@pytest.mark.slow
def test_import_killed_mid_transaction_leaves_store_unchanged(tmp_path: Path) -> None:
    url = _url(tmp_path)
    s = Store(url)
    s.import_run(make_run(tmp_path / "r1", {"c0": members("a", 4)}))
    before = _counts(s)
    s.close()
    big = make_run(tmp_path / "r2", {f"c{i}": members(f"u{i}_", 20) for i in range(200)})
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, url, str(big), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "import process ended early"
            assert time.monotonic() < deadline, "import never reached the memberships stage"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    s2 = Store(url)
    assert _counts(s2) == before
    assert s2.import_run(big).run_id == 2


def test_incomplete_run_dir_is_refused(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    (tmp_path / "bad").mkdir()
    with pytest.raises(RunError):
        s.import_run(tmp_path / "bad")
    assert s.latest_run() is None


def test_feedback_frame_expands_clusters(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    ids = s.import_run(
        make_run(tmp_path / "r1", {"c0": members("a", 3), "c1": members("b", 2)})
    ).cluster_ids
    s.add_feedback(
        target_type="cluster",
        target_id=ids["c0"],
        verdict="confirmed_farm",
        who="ana",
        why="same card",
    )
    s.add_feedback(
        target_type="account",
        target_id="b1",
        verdict="appeal_upheld",
        who="bo",
        why="is a university",
    )
    f = s.feedback_frame()
    assert list(f.columns) == ["account_id", "verdict", "ts", "who", "why", "target_type"]
    assert sorted(f.loc[f.verdict == "confirmed_farm", "account_id"]) == ["a0", "a1", "a2"]
    assert f.loc[f.account_id == "b1", "verdict"].tolist() == ["appeal_upheld"]
    assert str(f["ts"].dt.tz) == "UTC"
    acc = s.get_account("b1")
    assert acc is not None and acc["cleared"] is True and acc["effective_level"] == "clear"


def test_empty_feedback_frame_has_columns(tmp_path: Path) -> None:
    f = Store(_url(tmp_path)).feedback_frame()
    assert f.empty and list(f.columns) == [
        "account_id",
        "verdict",
        "ts",
        "who",
        "why",
        "target_type",
    ]
    assert isinstance(f, pd.DataFrame)


def test_api_keys_hashed_verified_revoked(tmp_path: Path) -> None:
    s = Store(_url(tmp_path))
    key, token = s.create_key("signup-flow", ["score"])
    assert token.startswith(f"lk_{key.id}_")
    got = s.verify_key(token)
    assert got is not None and got.scopes == frozenset({"score"}) and not got.allows("read")
    assert s.verify_key(token) is not None  # cached path
    assert s.verify_key(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert s.verify_key("lk_nothere_secret") is None
    assert s.verify_key("garbage") is None
    admin, _ = s.create_key("ops", ["admin"])
    assert admin.allows("feedback")
    s.close()
    secret = token.split("_", 2)[2]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    assert secret.encode() not in raw and token.encode() not in raw
    s = Store(_url(tmp_path))
    assert s.revoke_key(key.id) is True
    assert s.verify_key(token) is None
    assert s.revoke_key(key.id) is False
    assert [k.id for k in s.list_keys() if k.revoked_at is not None] == [key.id]


def test_bad_scope_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid scopes"):
        Store(_url(tmp_path)).create_key("x", ["root"])
