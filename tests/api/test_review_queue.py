"""``GET /v1/review-queue``: the CLI's ranking, from the store, labelled clusters left out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import Env


def cli_queue(run_dir: Path, *extra: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "linkage.cli", "review-queue", str(run_dir), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line)["cluster_id"] for line in proc.stdout.splitlines()]


@pytest.mark.slow
def test_api_and_cli_rank_the_same_clusters_and_leave_out_labelled_ones(
    env: Env, tmp_path: Path
) -> None:
    r = env.client.get("/v1/review-queue", headers=env.h("read"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] is not None and body["labelled"] == 0
    api_order = [i["source_id"] for i in body["items"]]
    assert api_order == cli_queue(env.run_dir)
    # the top-scored farm first, then the most uncertain cluster
    assert api_order == ["farm", "mid", "pair", "office"]
    assert body["items"][0]["reason"].startswith("top of the ranking")
    assert body["items"][1]["reason"].startswith("uncertain")
    assert {i["cluster_id"] for i in body["items"]} == {env.ids[c] for c in api_order}

    # a verdict on a member of "mid" takes it out of both queues
    fb = {
        "target_type": "account",
        "target_id": "m1",
        "verdict": "confirmed_farm",
        "who": "analyst@example.com",
        "why": "reviewed",
    }
    assert env.client.post("/v1/feedback", json=fb, headers=env.h("feedback")).status_code == 201
    after = env.client.get("/v1/review-queue?top=2", headers=env.h("read")).json()
    assert after["labelled"] == 1 and len(after["items"]) == 2
    assert "mid" not in [i["source_id"] for i in after["items"]]
    (tmp_path / "fb.csv").write_text("account_id,verdict\nm1,confirmed_farm\n")
    cli_after = cli_queue(env.run_dir, "--feedback", str(tmp_path / "fb.csv"), "--top", "2")
    assert [i["source_id"] for i in after["items"]] == cli_after


def test_review_queue_needs_a_read_key(env: Env) -> None:
    assert env.client.get("/v1/review-queue").status_code == 401
    assert env.client.get("/v1/review-queue", headers=env.h("score")).status_code == 403
