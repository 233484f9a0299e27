"""End to end: a generated world through every stage, against its labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.evaluate import evaluate, legit_flag_rate_max
from linkage.ingest import load_dataset
from linkage.pipeline import run_detect
from linkage.settings import Settings
from linkage.store import load_run


def test_run_directory_follows_the_contract(small_world: Path, small_run: Path) -> None:
    ds = load_dataset(small_world)
    run = load_run(small_run)
    acc = run.accounts
    assert list(acc.columns) == ["account_id", "cluster_id", "score", "level"]
    assert set(acc["account_id"]) == set(ds.accounts["account_id"])  # every input account
    assert acc["score"].between(0, 1).all()
    assert set(acc["level"]) <= {"clear", "review", "block"}
    clustered = acc.dropna(subset=["cluster_id"])
    for c in run.clusters:
        assert set(c) >= {"cluster_id", "size", "score", "level", "members", "evidence"}
        assert c["size"] == len(c["members"]) >= 2
        assert set(c["members"]) == set(
            clustered.loc[clustered["cluster_id"] == c["cluster_id"], "account_id"]
        )
        contributions = [e["contribution"] for e in c["evidence"]]
        assert contributions == sorted(contributions, reverse=True)
        for e in c["evidence"]:
            assert set(e) == {"kind", "summary", "contribution", "details"}
    man = json.loads((small_run / "manifest.json").read_text())
    assert Settings.model_validate(man["settings"]) == Settings()
    assert set(man["timings"]) >= {
        "ingest",
        "identifiers",
        "graph",
        "detect",
        "score",
        "explain",
        "write",
        "total",
    }
    assert man["inputs"]["requests"]["sha256"]


def test_evidence_points_back_to_raw_rows(small_world: Path, small_run: Path) -> None:
    ds = load_dataset(small_world)
    run = load_run(small_run)
    flagged = [c for c in run.clusters if c["level"] != "clear"]
    assert flagged, "the small world has farms: some cluster must be flagged"
    checked = 0
    for c in flagged:
        for e in c["evidence"]:
            for t in e["details"].get("templates", []):
                rows = ds.requests.set_index("_row").loc[t["request_rows"]]
                assert set(rows["account_id"]) <= set(c["members"])
                checked += 1
            for ident in e["details"].get("identifiers", []):
                assert ident["members"] >= 2 and ident["holders"] >= ident["members"]
            assert 0 <= e["details"].get("score_without", 0.5) <= 1
    assert checked > 0


def test_quality_on_an_unseen_world(small_world: Path, small_run: Path) -> None:
    """Real quality numbers on a seed the shipped model never saw."""
    labels = load_dataset(small_world).labels
    rep = evaluate(load_run(small_run).accounts, labels)
    assert rep.ap >= 0.85
    assert rep.roc_auc >= 0.95
    assert legit_flag_rate_max(rep, level="block") <= 0.02
    assert rep.flag_recall >= 0.8


def test_rules_baseline_runs_through_the_same_cli_path(small_world: Path, tmp_path: Path) -> None:
    man = run_detect(small_world, tmp_path, settings=Settings(), method="rules")
    run = load_run(tmp_path)
    assert man["method"] == "rules"
    assert len(run.accounts) == man["counts"]["accounts"]
    assert run.accounts["score"].between(0, 1).all()


def test_row_permutation_gives_the_same_result(
    small_world: Path, small_run: Path, tmp_path: Path
) -> None:
    shuffled = tmp_path / "world"
    shuffled.mkdir()
    for f in small_world.iterdir():
        frame = pd.read_parquet(f)
        frame.sample(frac=1.0, random_state=3).to_parquet(shuffled / f.name, index=False)
    run_detect(shuffled, tmp_path / "run", settings=Settings())
    a = load_run(small_run).accounts.set_index("account_id").sort_index()
    b = load_run(tmp_path / "run").accounts.set_index("account_id").sort_index()
    assert (a["cluster_id"].fillna("") == b["cluster_id"].fillna("")).all()
    assert np.allclose(a["score"], b["score"], atol=1e-9)


def test_feedback_changes_the_outcome(small_world: Path, small_run: Path, tmp_path: Path) -> None:
    acc = load_run(small_run).accounts
    blocked = acc[acc["level"] == "block"]["account_id"].iloc[:3].tolist()
    clear = acc[acc["level"] == "clear"]["account_id"].iloc[:2].tolist()
    fb = pd.DataFrame(
        {
            "account_id": blocked + clear,
            "verdict": ["appeal_upheld"] * len(blocked) + ["confirmed_farm"] * len(clear),
            "ts": pd.Timestamp("2026-01-01", tz="UTC"),
            "who": "analyst@example.com",
            "why": "test",
        }
    )
    run_detect(small_world, tmp_path, settings=Settings(), feedback=fb)
    after = load_run(tmp_path).accounts.set_index("account_id")
    assert (after.loc[blocked, "level"] == "clear").all()
    assert (after.loc[clear, "level"] == "block").all()


def test_missing_required_table_is_one_clear_error(tmp_path: Path) -> None:
    from linkage.errors import LinkageError

    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text(
        "account_id,created_at,email,signup_ip\na,2026-01-01T00:00:00Z,a@x.com,1.2.3.4\n"
    )
    with pytest.raises(LinkageError, match="requests"):
        run_detect(data, tmp_path / "out", settings=Settings())
