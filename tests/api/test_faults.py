"""Issue 16: writes are honest under store faults — 0 acknowledged-but-lost writes.

Each test drives the real app on a real SQLite file while the store breaks
(read-only filesystem, file deleted, disk full), records which writes were
acknowledged (2xx), then reopens the store and checks every one is there.
The read-only and full-disk cases mount a bind mount / a small tmpfs (this
workplace runs tests as root; ``mount`` failing fails the test loudly).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.store.db import Store
from linkage.store.models import FeedbackRow, SignupRow
from tests.api.conftest import Template, assert_error, build_env


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for m in reversed(made):
        subprocess.run(["umount", "-l", str(m)], check=False, capture_output=True)


def _copy_store(template: Template, into: Path) -> str:
    db = into / "store.db"
    shutil.copyfile(template.db, db)
    db.chmod(0o600)
    shutil.copyfile(f"{template.db}.keysecret", f"{db}.keysecret")
    return f"sqlite:///{db}"


def _write_burst(c: TestClient, keys: dict[str, str], tag: str, n: int) -> tuple[set, set, list]:
    """n signups and n verdicts; (acknowledged signup ids, acknowledged verdict targets, codes)."""
    sig, fb, codes = set(), set(), []
    hs = {"Authorization": f"Bearer {keys['score']}"}
    hf = {"Authorization": f"Bearer {keys['feedback']}"}
    for i in range(n):
        aid = f"{tag}-{i}"
        r = c.post(
            "/v1/signups/score", json={"account_id": aid, "signup_ip": "10.3.3.3"}, headers=hs
        )
        codes.append(r.status_code)
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            sig.add(aid)
        else:
            assert r.json()["error"]["code"] == "unavailable"
        body = {
            "target_type": "account",
            "target_id": "f0",
            "verdict": ("confirmed_farm", "false_positive")[i % 2],
            "who": "ana",
            "why": f"{tag} {i}",
        }
        r = c.post("/v1/feedback", json=body, headers=hf)
        codes.append(r.status_code)
        assert r.status_code in (201, 503), r.text
        if r.status_code == 201:
            fb.add(body["why"])
    return sig, fb, codes


def _recorded(url: str) -> tuple[set, set]:
    s = Store(url)
    with s.engine.connect() as conn:
        sig = set(conn.scalars(select(SignupRow.account_id)))
        fb = set(conn.scalars(select(FeedbackRow.why)))
    s.close()
    return sig, fb


def test_store_files_are_private(tmp_path: Path, template: Template) -> None:
    e = build_env(tmp_path, template)
    e.client.post("/v1/signups/score", json={"account_id": "p1"}, headers=e.h("score"))
    files = sorted(tmp_path.glob("store.db*"))
    assert {p.name for p in files} >= {
        "store.db",
        "store.db-wal",
        "store.db-shm",
        "store.db.keysecret",
    }
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    fresh = tmp_path / "new" / "x.db"
    fresh.parent.mkdir()
    old = os.umask(0o022)
    try:
        s = Store(f"sqlite:///{fresh}")
        s.create_key("k", ["read"])
        s.close()
    finally:
        os.umask(old)
    for p in fresh.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_deleted_store_file(tmp_path: Path, template: Template) -> None:
    e = build_env(tmp_path, template)
    before_sig, before_fb, _ = _write_burst(e.client, e.keys, "pre", 3)
    assert len(before_sig) == 3 and len(before_fb) == 3
    db = tmp_path / "store.db"
    saved = tmp_path / "saved.db"
    for suffix in ("", "-wal", "-shm"):  # what a backup would hold; then the file is deleted
        if Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", f"{saved}{suffix}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    sig, fb, codes = _write_burst(e.client, e.keys, "gone", 10)
    assert not sig and not fb and set(codes) == {503}  # nothing acknowledged
    assert e.client.get("/v1/clusters", headers=e.h("read")).status_code == 503
    assert_error(e.client.get("/readyz"), 503, "not_ready")
    assert not db.exists()  # no empty store silently recreated
    e.client.close()
    e.store.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{saved}{suffix}").exists():
            shutil.copyfile(f"{saved}{suffix}", f"{db}{suffix}")
    got_sig, got_fb = _recorded(e.url)
    assert before_sig <= got_sig and before_fb <= got_fb


def test_read_only_store(tmp_path: Path, template: Template, mounts: list[Path]) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    url_rw = _copy_store(template, rw)
    _mount("--bind", str(rw), str(ro))
    mounts.append(ro)
    _mount("-o", "remount,bind,ro", str(ro))
    app = create_app(ServiceSettings(store_url=f"sqlite:///{ro / 'store.db'}"))
    keys = dict(template.keys)
    with TestClient(app, raise_server_exceptions=False) as c:
        # reads still work, writes are refused, readiness says why
        assert (
            c.get("/v1/clusters", headers={"Authorization": f"Bearer {keys['read']}"}).status_code
            == 200
        )
        sig, fb, codes = _write_burst(c, keys, "ro", 20)
        assert not sig and not fb and set(codes) == {503}
        err = assert_error(
            c.get("/readyz", headers={"Authorization": f"Bearer {keys['admin']}"}), 503, "not_ready"
        )
        assert err["details"]["store"]["write"] is False and err["details"]["store"]["read"] is True
    app.state.store.close()
    assert _recorded(url_rw) == (set(), set())


def test_full_disk(tmp_path: Path, template: Template, mounts: list[Path]) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    size = template.db.stat().st_size + 600 * 1024
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk))
    mounts.append(disk)
    url = _copy_store(template, disk)
    app = create_app(ServiceSettings(store_url=url))
    keys = dict(template.keys)
    acked_sig: set = set()
    acked_fb: set = set()
    all_codes: list[int] = []
    with TestClient(app, raise_server_exceptions=False) as c:
        # fill the disk, then give back 64 KiB: some writes land, then none do
        with open(disk / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        os.truncate(disk / "filler", max(0, (disk / "filler").stat().st_size - 64 * 1024))
        for round_ in range(4):
            sig, fb, codes = _write_burst(c, keys, f"full{round_}", 25)
            acked_sig |= sig
            acked_fb |= fb
            all_codes += codes
        ready = c.get("/readyz")
    app.state.store.close()
    assert 503 in all_codes, "the disk never filled up"
    assert acked_sig or acked_fb, "no write landed before the disk filled"
    assert ready.status_code in (200, 503)
    (disk / "filler").unlink()
    got_sig, got_fb = _recorded(url)
    assert acked_sig <= got_sig, acked_sig - got_sig  # 0 acknowledged-but-lost
    assert acked_fb <= got_fb, acked_fb - got_fb


PERSONAL = {
    "email": "jane.private+x@example-personal.org",
    "signup_ip": "203.0.113.177",
    "device_fingerprint": "fp-private-device-9f3c",
    "payment_fingerprint": "card-private-tok-77a1",
}
WHY = "called her at home, she said the card is her mother's"


def test_no_personal_data_in_logs_of_a_store_fault(
    tmp_path: Path, template: Template, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG; a scored signup, then the store refuses signups and verdicts
    (a real SQLite error on the real write path): the logs name the failure, never the
    e-mail, IP, device, card or the verdict's text."""
    from sqlalchemy import text

    e = build_env(tmp_path, template)
    caplog.set_level(logging.DEBUG)
    ok = e.client.post(
        "/v1/signups/score", json={"account_id": "pd0", **PERSONAL}, headers=e.h("score")
    )
    assert ok.status_code == 200
    assert e.client.get("/v1/accounts/pd0", headers=e.h("read")).status_code == 200
    with e.store.engine.begin() as conn:
        for table in ("signups", "feedback"):
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'store refuses writes'); END"
                )
            )
    r = e.client.post(
        "/v1/signups/score", json={"account_id": "pd1", **PERSONAL}, headers=e.h("score")
    )
    assert_error(r, 503, "unavailable")
    body = {"target_type": "account", "target_id": "f0", "verdict": "false_positive"}
    r = e.client.post(
        "/v1/feedback", json={**body, "who": "ana", "why": WHY}, headers=e.h("feedback")
    )
    assert_error(r, 503, "unavailable")
    logged = caplog.text
    assert "store refuses writes" in logged  # the fault itself is logged
    for secret in (*PERSONAL.values(), WHY, "jane.private"):
        assert secret not in logged, secret
    e.client.close()
    e.store.close()
