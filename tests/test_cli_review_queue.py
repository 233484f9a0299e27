"""``linkage review-queue RUN_DIR``: the queue from a run directory, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.run_factory import make_run, members


def linkage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linkage.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _run(tmp_path: Path) -> Path:
    return make_run(
        tmp_path / "run",
        {"a": members("a", 6), "b": members("b", 4), "c": members("c", 3)},
        scores={"a": 0.98, "b": 0.5, "c": 0.3},
        loners=["x1"],
    )


@pytest.mark.slow
def test_queue_lists_uncertain_clusters_first_and_skips_labelled_ones(tmp_path: Path) -> None:
    run = _run(tmp_path)
    out = linkage("review-queue", str(run), "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["cluster_id"] for r in rows] == ["a", "b", "c"]  # top score, uncertain, next
    assert rows[1]["reason"].startswith("uncertain") and rows[1]["uncertainty"] == 1.0
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert "3 clusters to label next" in " ".join(out.stderr.split())
    fb = tmp_path / "fb.jsonl"
    fb.write_text(json.dumps({"account_id": "b2", "verdict": "false_positive"}) + "\n")
    text = linkage("review-queue", str(run), "--feedback", str(fb), "--top", "5")
    assert text.returncode == 0, text.stderr
    assert [line.split("\t")[1] for line in text.stdout.splitlines()] == ["a", "c"]
    assert "1 already labelled left out" in " ".join(text.stderr.split())


@pytest.mark.slow
def test_bad_inputs_are_one_clear_message(tmp_path: Path) -> None:
    run = _run(tmp_path)
    bad = tmp_path / "fb.csv"
    bad.write_text("who,what\nx,y\n")
    for args, needle in (
        (["review-queue", str(tmp_path / "nope")], "not found"),
        (["review-queue", str(run), "--feedback", str(bad)], "needs the columns"),
        (["review-queue", str(run), "--feedback", str(tmp_path / "missing.csv")], "not found"),
    ):
        proc = linkage(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
