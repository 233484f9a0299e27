"""The out-of-the-box coordination score (issue 13): small worlds, corroboration, missing signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.fixtures.ring import ring_world
from linkage.pipeline import prepare, run_detect, score_prepared
from linkage.score.coordination import family_of
from linkage.score.terms import TERMS
from linkage.settings import Settings


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory: pytest.TempPathFactory):
    world = ring_world(tmp_path_factory.mktemp("ring"))
    out = tmp_path_factory.mktemp("ring-run")
    run_detect(world, out, settings=Settings())
    return world, out


def test_ring_of_three_among_thirty_is_one_flagged_cluster(ring_run):
    _, out = ring_run
    acc = pd.read_csv(out / "accounts.csv", dtype={"cluster_id": "string"})
    ring = acc[acc["account_id"].isin(["a00", "a01", "a02"])]
    others = acc[~acc["account_id"].isin(["a00", "a01", "a02"])]
    assert ring["cluster_id"].notna().all()
    assert ring["cluster_id"].nunique() == 1
    cid = ring["cluster_id"].iloc[0]
    assert (acc["cluster_id"] == cid).sum() == 3  # exactly the three
    assert set(ring["level"]) <= {"review", "block"}
    assert (others["level"] == "clear").all()


def test_ring_evidence_names_the_shared_identifiers(ring_run):
    import json

    _, out = ring_run
    clusters = [json.loads(line) for line in (out / "clusters.jsonl").read_text().splitlines()]
    ring = next(c for c in clusters if set(c["members"]) == {"a00", "a01", "a02"})
    kinds = [e["kind"] for e in ring["evidence"]]
    assert kinds[0] == "coordination"  # ordered by contribution, strongest first
    coord = ring["evidence"][0]
    values = {i["value"] for i in coord["details"]["identifiers"]}
    assert {"card_shared", "203.0.113.7"} <= values
    assert coord["details"]["corroborating_families"] >= 2
    contribs = [e["contribution"] for e in ring["evidence"]]
    assert contribs == sorted(contribs, reverse=True)


def _prep(world, **score):
    s = Settings(score=Settings().score.model_copy(update=score))
    return prepare(world, settings=s), s


def test_unclustered_accounts_stay_below_review_and_one_family_below_block(ring_run):
    world, _ = ring_run
    prep, s = _prep(world)
    sc = score_prepared(prep, settings=s)
    corr = prep.X["corroboration"].to_numpy()
    score = sc.accounts["score"].to_numpy()
    assert (score[corr < 1] < s.score.review_threshold).all()
    assert (score[corr < 2] < s.score.block_threshold).all()
    # without the cap the same accounts keep their order (the cap scales, it does not shuffle)
    s2 = Settings(score=s.score.model_copy(update={"cap_by_corroboration": False}))
    raw = score_prepared(prep, settings=s2).accounts["score"].to_numpy()
    single = corr < 1
    assert np.array_equal(
        np.argsort(raw[single], kind="stable"), np.argsort(score[single], kind="stable")
    )


def test_missing_signals_move_no_score_and_are_named(tmp_path):
    """No requests at all: extraction and churn are absent (0), and the manifest says so."""
    world = ring_world(tmp_path / "w")
    req = pd.read_csv(world / "requests.csv")
    req.iloc[0:0].to_csv(world / "requests.csv", index=False)
    manifest = run_detect(world, tmp_path / "run", settings=Settings())
    missing = manifest["signals_missing"]
    assert "conceal_fingerprint_churn" in missing
    assert any(m.startswith("extraction:") for m in missing)
    prep, _ = _prep(world)
    assert (prep.X["extraction"] == 0).all()
    assert (prep.X["conceal_fingerprint_churn"] == 0).all()


def test_every_extra_identifier_kind_is_its_own_family():
    assert family_of("x:wallet") == "x:wallet"
    assert family_of("x:friend") != family_of("x:wallet")
    assert family_of("ip") == family_of("subnet") == "network"
    assert family_of("something_new") == "other:something_new"


def test_terms_are_bounded(ring_run):
    world, _ = ring_run
    prep, _ = _prep(world)
    T = prep.X[list(TERMS)]
    assert T["coordination"].between(-2, 2).all()
    for c in TERMS:
        if c.startswith("conceal_"):
            assert T[c].between(0, 1).all(), c
        if c.startswith("open_"):
            assert T[c].between(-1, 0).all(), c
    assert T["extraction"].between(-6, 2).all()


@pytest.mark.slow
def test_the_ring_is_the_same_cluster_among_thousands(ring_run, small_world, tmp_path):
    """The same three accounts come out as exactly one cluster in a 30-account world and
    inside a generated world of thousands (the information null does not depend on size)."""
    world, _ = ring_run
    merged = tmp_path / "merged"
    merged.mkdir()
    for table in ("accounts", "requests"):
        big = pd.read_parquet(small_world / f"{table}.parquet")
        ring = pd.read_csv(world / f"{table}.csv", dtype=str)
        ring = ring[ring["account_id"].isin(["a00", "a01", "a02"])]
        both = pd.concat([big.astype(str), ring], ignore_index=True)
        both.replace({"nan": "", "None": "", "<NA>": "", "NaT": ""}).to_csv(
            merged / f"{table}.csv", index=False
        )
    out = tmp_path / "run"
    run_detect(merged, out, settings=Settings())
    acc = pd.read_csv(out / "accounts.csv", dtype={"cluster_id": "string"})
    assert len(acc) > 1000
    ring = acc[acc["account_id"].isin(["a00", "a01", "a02"])]
    assert ring["cluster_id"].notna().all() and ring["cluster_id"].nunique() == 1
    assert (acc["cluster_id"] == ring["cluster_id"].iloc[0]).sum() == 3
    assert set(ring["level"]) <= {"review", "block"}
