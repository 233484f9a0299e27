"""The `linkage` command line, run as a user would (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def linkage(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "linkage.cli", *args], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"linkage {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_help_lists_every_command() -> None:
    out = linkage("--help").stdout
    for cmd in ("detect", "evaluate", "explain", "score-signups", "make-world", "train", "serve"):
        assert cmd in out


def test_demo_flow(tmp_path: Path) -> None:
    world = tmp_path / "world"
    linkage("make-world", "--scale", "0.02", "--seed", "5", "--out", str(world), "--format", "csv")
    assert (world / "accounts.csv").is_file() and (world / "labels.csv").is_file()
    run = tmp_path / "run"
    det = linkage("detect", str(world), "--out", str(run))
    assert "accounts" in det.stdout and (run / "clusters.jsonl").is_file()
    ev = linkage("evaluate", str(world), "--run", str(run), "--json", str(tmp_path / "eval.json"))
    assert "AP" in ev.stdout
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert 0 <= next(iter(rep.values()))["ap"] <= 1
    first = json.loads((run / "clusters.jsonl").read_text().splitlines()[0])
    ex = linkage("explain", str(run), first["cluster_id"])
    assert first["cluster_id"] in ex.stdout and "contribution" in ex.stdout
    linkage("score-signups", str(world), "--run", str(run), "--out", str(tmp_path / "s.csv"))
    assert (tmp_path / "s.csv").read_text().startswith("account_id,score,level,cluster_id,evidence")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["detect", "/nonexistent/dir", "--out", "/tmp/x"], "not found"),
        (["explain", "/nonexistent/run", "c1"], "run directory not found"),
        (["detect", ".", "--out", "/tmp/x", "--method", "magic"], "unknown method"),
    ],
)
def test_user_errors_are_one_line_not_a_traceback(args: list[str], needle: str) -> None:
    proc = linkage(*args, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_bad_rows_are_quarantined_and_counted(tmp_path: Path) -> None:
    world = tmp_path / "w"
    world.mkdir()
    (world / "accounts.csv").write_text(
        "account_id,created_at,email,signup_ip\n"
        "a,2026-01-01T00:00:00Z,a@x.com,1.2.3.4\n"
        "b,2026-01-01T00:00:00Z,b@x.com,1.2.3.4\n"
        ",2026-01-01T00:00:00Z,c@x.com,1.2.3.4\n"
    )
    (world / "requests.csv").write_text(
        "account_id,ts,ip,prompt,response_tokens,model\n"
        "a,2026-01-02T00:00:00Z,1.2.3.4,hi,10,m1\n"
        "b,not-a-time,1.2.3.4,hi,10,m1\n"
        "ghost,2026-01-02T00:00:00Z,1.2.3.4,hi,10,m1\n"
    )
    linkage("detect", str(world), "--out", str(tmp_path / "run"))
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["counts"]["quarantined_rows"] == 3
    q = (tmp_path / "run" / "quarantine" / "requests.csv").read_text()
    assert "ghost" in q and "not-a-time" in q


def test_detect_template_cache_reuses_sketches_and_changes_nothing(tmp_path: Path) -> None:
    """`--template-cache DIR`: the first run fills the cache, the second reads it, and both
    write the same run as a run without it (the manifest records the cache directory)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "tiny"
    cache = tmp_path / "tpl-cache"
    linkage("-q", "detect", str(example), "--out", str(tmp_path / "plain"))
    for name in ("first", "second"):
        linkage("-q", "detect", str(example), "--out", str(tmp_path / name),
                "--template-cache", str(cache))  # fmt: skip
        assert any(cache.iterdir())
    for name in ("first", "second"):
        for f in ("accounts.csv", "clusters.jsonl"):
            assert (tmp_path / name / f).read_bytes() == (tmp_path / "plain" / f).read_bytes()
    man = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert man["settings"]["identifiers"]["templates"]["cache_dir"] == str(cache)
