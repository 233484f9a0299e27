"""The review queue: uncertain, large, high-ranked and varied clusters first; labelled ones out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.score.model import LinearModel
from linkage.score.queue import (
    clusters_from_records,
    labelled_clusters,
    rank_clusters,
    review_queue,
)
from linkage.score.scoring import Scores


def table() -> pd.DataFrame:
    net = {"shared_network": 1.0}
    pay = {"shared_payment": 1.0}
    return pd.DataFrame(
        [
            {"cluster_id": "sure-farm", "size": 40, "score": 0.995, "profile": net},
            {"cluster_id": "sure-legit", "size": 40, "score": 0.004, "profile": net},
            {"cluster_id": "edge-net-a", "size": 10, "score": 0.55, "profile": net},
            {"cluster_id": "edge-net-b", "size": 10, "score": 0.50, "profile": net},
            {"cluster_id": "edge-pay", "size": 10, "score": 0.45, "profile": pay},
            {"cluster_id": "edge-small", "size": 2, "score": 0.52, "profile": pay},
        ]
    )


def test_uncertain_large_clusters_come_before_sure_ones() -> None:
    q = rank_clusters(table(), k=6, diversity=0.0, top_share=0.0)
    order = q["cluster_id"].tolist()
    assert order[:4] == ["edge-net-a", "edge-net-b", "edge-pay", "edge-small"]
    assert set(order[4:]) == {"sure-farm", "sure-legit"}  # a sure score teaches nothing
    assert q["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert (np.diff(q["priority"].to_numpy()) <= 1e-12).all()


def test_the_top_of_the_ranking_keeps_its_share_of_the_slots() -> None:
    q = rank_clusters(table(), k=6, diversity=0.0)
    assert q["cluster_id"].tolist() == [
        "sure-farm",  # slot 1: the highest score, however sure
        "edge-net-a",
        "edge-small",  # slot 3: the next highest score
        "edge-net-b",
        "edge-pay",
        "sure-legit",
    ]
    assert q["reason"].str.startswith("top of the ranking").tolist() == [
        True, False, True, False, False, True,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="top_share"):
        rank_clusters(table(), top_share=1.5)


def test_diversity_puts_other_evidence_before_a_second_look_alike() -> None:
    plain = rank_clusters(table(), k=3, diversity=0.0, top_share=0.0)["cluster_id"].tolist()
    varied = rank_clusters(table(), k=3, diversity=0.8, top_share=0.0)["cluster_id"].tolist()
    assert plain[:2] == ["edge-net-a", "edge-net-b"]
    assert varied[:2] == ["edge-net-a", "edge-pay"]  # payment evidence before a 2nd network one


def test_labelled_clusters_are_left_out_and_the_queue_is_deterministic() -> None:
    t = table()
    q = rank_clusters(t, labelled={"edge-net-a", "edge-pay"}, k=10)
    assert not {"edge-net-a", "edge-pay"} & set(q["cluster_id"])
    assert len(q) == 4
    shuffled = t.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = rank_clusters(shuffled, labelled={"edge-net-a", "edge-pay"}, k=10)
    pd.testing.assert_frame_equal(q, again)
    with pytest.raises(ValueError, match="diversity"):
        rank_clusters(t, diversity=2.0)
    assert rank_clusters(t.iloc[:0], k=5).empty


def test_verdicts_on_members_or_on_the_cluster_mark_it_labelled() -> None:
    cluster_of = pd.Series({"a1": "c1", "a2": "c1", "b1": "c2", "d1": "c4"})
    by_account = pd.DataFrame({"account_id": ["a2", "zz"], "verdict": ["false_positive"] * 2})
    assert labelled_clusters(cluster_of, by_account) == {"c1"}
    store_rows = pd.DataFrame(
        {
            "target_type": ["cluster", "account"],
            "target_id": ["c3", "b1"],
            "verdict": ["confirmed_farm", "appeal_upheld"],
        }
    )
    assert labelled_clusters(cluster_of, store_rows) == {"c2", "c3"}
    assert labelled_clusters(cluster_of, None) == set()


def test_in_memory_scores_and_written_records_give_the_same_queue() -> None:
    """The queue of a scoring in memory (the bench's analyst) equals the queue of its
    records as ``clusters.jsonl`` holds them (the CLI's and the API's)."""
    rng = np.random.default_rng(0)
    feats = ("coordination", "extraction", "open_org_domain")
    model = LinearModel(feats, np.zeros(3), np.ones(3), np.array([1.0, 1.0, 1.0]), -1.0)
    n = 30
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=list(feats))
    X.index = pd.Index([f"u{i}" for i in range(n)], name="account_id")
    cid = pd.array([f"c{i % 6}" if i < 27 else None for i in range(n)], dtype="string")
    contrib = model.contributions(X)
    score = 1 / (1 + np.exp(-(contrib.sum(axis=1) + model.intercept)))
    acc = pd.DataFrame({"account_id": X.index, "cluster_id": cid, "score": score})
    clusters = (
        acc.dropna(subset=["cluster_id"])
        .groupby("cluster_id")["score"]
        .agg(size="size", score="median")
        .reset_index()
    )
    clusters["level"] = "review"
    scores = Scores(accounts=acc, clusters=clusters, contributions=contrib, features=X)
    fb = pd.DataFrame({"account_id": ["u0"], "verdict": ["confirmed_farm"]})
    mem = review_queue(scores, model, feedback=fb, k=10)
    assert "c0" not in set(mem["cluster_id"]) and len(mem) == 5
    # the same clusters written as records: evidence = mean contribution per kind
    records = []
    for c, row in clusters.set_index("cluster_id").iterrows():
        m = (acc["cluster_id"] == c).fillna(False).to_numpy()
        mean = contrib[m].mean(axis=0)
        ev = [
            {"kind": "coordination", "contribution": mean[0]},
            {"kind": "extraction", "contribution": mean[1]},
            {"kind": "openness", "contribution": mean[2]},
            {"kind": "feedback", "contribution": 0.0},
        ]
        records.append(
            {"cluster_id": c, "size": row["size"], "score": row["score"], "evidence": ev}
        )
    from_records = rank_clusters(clusters_from_records(records), labelled={"c0"}, k=10)
    assert mem["cluster_id"].tolist() == from_records["cluster_id"].tolist()
    assert np.allclose(mem["priority"], from_records["priority"])
