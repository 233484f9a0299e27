"""Smoke test of the benchmark script (not a timed test: it only checks that it works)."""

from __future__ import annotations

import json

import pytest

from bench.run import STAGES, main


@pytest.mark.slow
def test_bench_runs_and_writes_expected_json(tmp_path):
    out = tmp_path / "results"
    res = main(
        [
            "--scales", "0.05",
            "--signups", "500",
            "--cache", str(tmp_path / "worlds"),
            "--out", str(out),
            "--runs", str(tmp_path / "runs"),
        ]
    )  # fmt: skip
    saved = json.loads((out / "latest.json").read_text())
    assert saved["scales"].keys() == res["scales"].keys() == {"0.05"}
    assert list(out.glob("bench-*.json"))
    assert "| scale |" in (out / "latest.md").read_text()

    for key in ("created_at", "commit", "machine", "scales", "targets"):
        assert key in saved
    for key in ("cpu_count", "cpu_model", "ram_gb", "python", "numpy", "pandas", "igraph"):
        assert key in saved["machine"]

    sc = saved["scales"]["0.05"]
    assert sc["floor"]["arrow_read_s"] > 0
    assert set(sc["runs"]) == {"graph", "rules"}
    graph = sc["runs"]["graph"]
    assert graph["returncode"] == 0
    for stage in STAGES:
        assert graph["timings"][stage] >= 0, stage
    assert graph["timings"]["total"] > 0
    assert graph["wall_s"] >= graph["timings"]["total"]
    assert graph["peak_rss_mb"] > 50
    # the child's own peak (VmHWM) never exceeds what wait4 reports (which also carries the
    # peak of this process, the child was spawned from)
    assert graph["ru_maxrss_mb"] >= graph["peak_rss_mb"]
    for method, run in sc["runs"].items():
        q = run["quality"]
        assert 0.0 <= q["ap"] <= 1.0, method
        assert 0.0 <= q["roc_auc"] <= 1.0, method
        assert 0.0 <= q["max_legit_block_rate"] <= 1.0, method
        assert run["timings"]["total"] > 0, method

    lat = sc["signup"]["in_process"]
    assert lat["n"] == 500
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["p999_ms"] <= lat["max_ms"]
    assert sum(lat["levels"].values()) == 500

    statuses = {t["target"]: t["status"] for t in saved["targets"]}
    assert len(statuses) == 5
    assert set(statuses.values()) <= {"PASS", "FAIL", "SKIP"}
