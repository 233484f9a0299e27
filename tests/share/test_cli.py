"""``linkage share`` end to end, in a real process (errors: one line, exit 2)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def linkage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linkage.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_keygen_export_import_status(tiny_run: Path, tmp_path: Path) -> None:
    key = tmp_path / "ab.key"
    assert linkage("share", "keygen", key).returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = linkage("share", "keygen", key)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    bundle = tmp_path / "a_to_b.json"
    exp = linkage(
        "share", "export", tiny_run, "--key-file", key, "--out", bundle, "--producer", "A"
    )
    assert exp.returncode == 0, exp.stderr
    assert "1 indicator(s) of 1 shared cluster(s)" in exp.stderr
    assert json.loads(bundle.read_text())["type"] == "bundle"
    store = f"sqlite:///{tmp_path / 'store.db'}"
    imp = linkage(
        "share",
        "import",
        bundle,
        "--run",
        tiny_run,
        "-k",
        key,
        "-p",
        "provider A",
        "--store",
        store,
    )
    assert imp.returncode == 0, imp.stderr
    assert "recorded 1 indicator(s) of provider A in the store" in imp.stderr
    assert json.loads(imp.stdout)["active"] == 1
    replay = linkage("share", "import", bundle, "--run", tiny_run, "-k", key, "-p", "provider A")
    assert replay.returncode == 2 and "replay" in replay.stderr and "Traceback" not in replay.stderr
    status = json.loads(linkage("share", "status", tiny_run).stdout)
    assert status[0]["partner"] == "provider A" and status[0]["active"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = linkage("share", "import", bad, "--run", tiny_run, "-k", key, "-p", "B")
    assert out.returncode == 2 and "not JSON" in out.stderr
