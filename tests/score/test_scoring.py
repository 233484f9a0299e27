"""Scores, levels and feedback overrides on a real (small) graph."""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkage.detect import detect_clusters
from linkage.graph import build_graph
from linkage.score import LinearModel, account_features, model_inputs, score_accounts
from linkage.score.features import FEATURES
from linkage.settings import DetectSettings, GraphSettings, ScoreSettings


def _setup():
    rows = []
    for i in range(8):
        rows += [
            (f"f{i}", "payment", "vcard", 1),
            (f"f{i}", "template", "t1", 50),
            (f"f{i}", "ip", f"dc{i % 2}", 40),
        ]
    for i in range(200):
        rows += [(f"u{i}", "ip", f"home{i}", 10), (f"u{i}", "device", "popular", 1)]
    # background: families (pairs on one card and home IP), as in any real population;
    # modularity's null is the whole graph's, so the planted group is a small share of it
    for i in range(300):
        for j in (0, 1):
            rows += [(f"h{i}_{j}", "payment", f"fam{i}", 1), (f"h{i}_{j}", "ip", f"famip{i}", 5)]
    e = pd.DataFrame(rows, columns=["account_id", "kind", "value", "n"])
    accounts = pd.Index(sorted(e["account_id"].unique()))
    ag = build_graph(e, accounts, settings=GraphSettings())
    cl = detect_clusters(ag, settings=DetectSettings())
    feats = pd.DataFrame(index=accounts, data={"n_requests": 10.0, "hour_entropy": 3.0})
    return ag, cl, model_inputs(ag, cl, feats)[0]


def test_features_are_finite_for_every_account() -> None:
    ag, cl, X = _setup()
    assert list(account_features(ag, cl, pd.DataFrame(index=ag.accounts)).columns) == list(FEATURES)
    assert set(FEATURES) <= set(X.columns)
    assert len(X) == ag.n_accounts and np.isfinite(X.to_numpy()).all()
    # the planted group is one cluster and only it
    f_clusters = cl.cluster[ag.accounts.get_indexer([f"f{i}" for i in range(8)])]
    assert len(set(f_clusters.tolist())) == 1 and f_clusters[0] >= 0
    assert (X.loc[[f"f{i}" for i in range(8)], "c_link_payment"] > 0).all()
    assert (X.filter(like="u", axis=0)["clustered"] == 0).all()


def test_feedback_overrides_levels() -> None:
    _, cl, X = _setup()
    s = ScoreSettings()
    base = score_accounts(X, cl, model=LinearModel.load(), settings=s)
    fb = pd.DataFrame(
        {
            "account_id": ["f0", "u1"],
            "verdict": ["appeal_upheld", "confirmed_farm"],
            "ts": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )
    after = score_accounts(
        X, cl, model=LinearModel.load(), settings=s, feedback=fb
    ).accounts.set_index("account_id")
    assert after.loc["f0", "level"] == "clear" and after.loc["f0", "score"] < s.review_threshold
    assert after.loc["u1", "level"] == "block"
    b = base.accounts.set_index("account_id")
    others = after.index.difference(["f0", "u1"])
    assert np.allclose(after.loc[others, "score"], b.loc[others, "score"])
    # later feedback supersedes earlier
    fb2 = pd.concat(
        [
            fb,
            pd.DataFrame(
                {
                    "account_id": ["u1"],
                    "verdict": ["false_positive"],
                    "ts": pd.Timestamp("2026-02-01", tz="UTC"),
                }
            ),
        ]
    )
    again = score_accounts(
        X, cl, model=LinearModel.load(), settings=s, feedback=fb2
    ).accounts.set_index("account_id")
    assert again.loc["u1", "level"] == "clear"


def test_cluster_score_is_the_median_member() -> None:
    _ag, cl, X = _setup()
    sc = score_accounts(X, cl, model=LinearModel.load(), settings=ScoreSettings())
    members = sc.accounts.dropna(subset=["cluster_id"])
    for cid, grp in members.groupby("cluster_id"):
        row = sc.clusters.set_index("cluster_id").loc[cid]
        assert row["size"] == len(grp)
        assert np.isclose(row["score"], grp["score"].median())
