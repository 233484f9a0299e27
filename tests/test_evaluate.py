"""Metrics against labels: known answers on hand-built score frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from linkage.evaluate import EvalReport, compare, evaluate, legit_flag_rate_max


def _frames(
    n_farm: int = 50, n_legit: int = 950, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"acc{i:05d}" for i in range(n_farm + n_legit)]
    is_farm = np.r_[np.ones(n_farm, int), np.zeros(n_legit, int)]
    labels = pd.DataFrame(
        {
            "account_id": ids,
            "is_farm": is_farm,
            "group": np.where(is_farm == 1, "farm-x", "acme"),
            "population": np.where(is_farm == 1, "farm", "legit"),
        }
    )
    rng = np.random.default_rng(seed)
    scores = pd.DataFrame({"account_id": ids, "score": rng.random(len(ids)), "level": "clear"})
    return scores, labels


def test_perfect_scores() -> None:
    scores, labels = _frames()
    scores["score"] = labels["is_farm"] * 0.5 + 0.25
    scores["level"] = np.where(labels["is_farm"] == 1, "block", "clear")
    r = evaluate(scores, labels)
    assert r.ap == pytest.approx(1.0)
    assert r.roc_auc == pytest.approx(1.0)
    assert r.recall_at_fpr == pytest.approx(1.0)
    assert r.block_precision == 1.0
    assert r.block_recall == 1.0
    assert legit_flag_rate_max(r) == 0.0
    assert [(g.group, g.block_recall) for g in r.groups] == [("farm-x", 1.0)]


def test_random_scores_ap_near_prevalence() -> None:
    scores, labels = _frames(n_farm=1000, n_legit=9000, seed=1)
    r = evaluate(scores, labels)
    assert r.ap == pytest.approx(0.1, abs=0.02)
    assert r.roc_auc == pytest.approx(0.5, abs=0.03)
    assert r.recall_at_fpr < 0.05
    assert math.isnan(r.block_precision)  # nothing blocked
    assert r.block_recall == 0.0


def test_recall_at_fpr_never_splits_ties() -> None:
    scores, labels = _frames(n_farm=10, n_legit=100)
    # every farm account ties with 5 legit accounts at the top: 5% FPR to get any recall
    scores["score"] = 0.1
    top = list(range(10)) + list(range(10, 15))
    scores.loc[top, "score"] = 0.9
    assert evaluate(scores, labels, fpr=0.01).recall_at_fpr == 0.0
    r = evaluate(scores, labels, fpr=0.05)
    assert r.recall_at_fpr == 1.0
    assert r.threshold_at_fpr == pytest.approx(0.9)


def test_grey_excluded_but_flag_rate_reported() -> None:
    scores, labels = _frames(n_farm=20, n_legit=80)
    scores["score"] = labels["is_farm"].astype(float)
    base = evaluate(scores, labels)
    grey_ids = [f"g{i}" for i in range(10)]
    grey_labels = pd.DataFrame(
        {"account_id": grey_ids, "is_farm": 0, "group": "", "population": "grey: reseller"}
    )
    grey_scores = pd.DataFrame(
        {"account_id": grey_ids, "score": 1.0, "level": ["block"] * 4 + ["review"] * 6}
    )
    r = evaluate(pd.concat([scores, grey_scores]), pd.concat([labels, grey_labels]))
    # grey accounts score highest but count neither as positives nor as negatives
    assert r.ap == base.ap == pytest.approx(1.0)
    assert r.recall_at_fpr == 1.0
    assert r.n_grey == 10
    assert r.n_evaluated == 100
    assert r.n_farm == 20
    grey = next(p for p in r.populations if p.population == "grey: reseller")
    assert grey.grey
    assert grey.block_rate == pytest.approx(0.4)
    assert grey.flag_rate == pytest.approx(1.0)
    assert legit_flag_rate_max(r) == 0.0  # grey is not a legit population


def test_hand_computed_rates_and_missing_labels() -> None:
    scores = pd.DataFrame(
        {
            "account_id": ["f1", "f2", "f3", "f4", "l1", "l2", "l3", "l4", "l5", "u1"],
            "score": [0.9, 0.8, 0.6, 0.1, 0.7, 0.2, 0.2, 0.1, 0.05, 0.99],
            "level": [
                "block",
                "block",
                "review",
                "clear",
                "block",
                "review",
                "clear",
                "clear",
                "clear",
                "block",
            ],
        }
    )
    labels = pd.DataFrame(
        {
            "account_id": ["f1", "f2", "f3", "f4", "l1", "l2", "l3", "l4", "l5", "z9"],
            "is_farm": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
            "group": ["op1", "op1", "op2", "op2", "uni", "uni", None, None, None, None],
            "population": [
                "farm",
                "farm",
                "farm",
                "farm",
                "campus",
                "campus",
                None,
                None,
                None,
                "x",
            ],
        }
    )
    r = evaluate(scores, labels)
    assert r.n_accounts == 10
    assert r.n_unlabelled == 1  # u1
    assert r.n_unscored == 1  # z9
    assert r.n_labelled == r.n_evaluated == 9
    assert r.block_precision == pytest.approx(2 / 3)
    assert r.block_recall == pytest.approx(2 / 4)
    assert r.flag_precision == pytest.approx(3 / 5)
    assert r.flag_recall == pytest.approx(3 / 4)
    pops = {p.population: p for p in r.populations}
    assert pops["campus"].block_rate == pytest.approx(0.5)
    assert pops["campus"].flag_rate == pytest.approx(1.0)
    assert pops["(none)"].n == 3 and pops["(none)"].flag_rate == 0.0
    assert pops["farm"].n_farm == 4
    groups = {g.group: g for g in r.groups}
    assert groups["op1"].block_recall == 1.0
    assert groups["op2"].block_recall == 0.0
    assert groups["op2"].flag_recall == pytest.approx(0.5)
    assert legit_flag_rate_max(r) == pytest.approx(0.5)
    assert legit_flag_rate_max(r, level="review") == pytest.approx(1.0)
    # ranking: farm scores 0.9 0.8 0.6 0.1, legit 0.7 0.2 0.2 0.1 0.05
    assert r.roc_auc == pytest.approx((5 + 5 + 4 + 1.5) / 20)


def test_serialisation_and_rendering() -> None:
    scores, labels = _frames(n_farm=5, n_legit=20)
    r = evaluate(scores, labels)
    d = r.to_dict()
    json.dumps(d, allow_nan=False)  # NaN became None
    assert d["block_precision"] is None
    assert d["populations"][0]["population"] == "farm"
    text = r.to_text()
    assert "AP" in text and "farm-x" in text and "legit" in text
    console = Console(record=True, width=120)
    console.print(r.to_table())
    assert "ROC AUC" in console.export_text()


def test_compare_lists_every_method() -> None:
    scores, labels = _frames()
    perfect = scores.assign(score=labels["is_farm"].astype(float))
    reports: dict[str, EvalReport] = {
        "engine": evaluate(perfect, labels),
        "rules": evaluate(scores, labels),
    }
    table = compare(reports)
    lines = table.splitlines()
    assert lines[0].startswith("| method")
    assert len(lines) == 4
    assert lines[2].startswith("| engine") and "1.000" in lines[2]
    assert lines[3].startswith("| rules ")


def test_bad_inputs_refused() -> None:
    scores, labels = _frames(n_farm=2, n_legit=3)
    with pytest.raises(ValueError, match="levels"):
        evaluate(scores.assign(level="maybe"), labels)
    with pytest.raises(ValueError, match="duplicate"):
        evaluate(pd.concat([scores, scores.iloc[:1]]), labels)
    with pytest.raises(ValueError, match="lacks"):
        evaluate(scores.drop(columns=["level"]), labels)


def test_pair_recall_counts_same_group_pairs_sharing_a_cluster():
    from linkage.evaluate import pair_recall

    # group g: 4 accounts, 3 in cluster a (3 pairs) + 1 unclustered -> 3 of 6 pairs
    g = pd.Series(["g", "g", "g", "g", None])
    c = pd.Series(["a", "a", "a", None, "a"])
    assert pair_recall(c, g) == pytest.approx(0.5)
    assert np.isnan(pair_recall(c, pd.Series([None] * 5)))
    # two groups split across two clusters: 1 + 1 of 1 + 1 pairs
    assert pair_recall(pd.Series(["a", "a", "b", "b"]), pd.Series(["x", "x", "y", "y"])) == 1.0
    assert pair_recall(pd.Series(["a", "b", "a", "b"]), pd.Series(["x", "x", "y", "y"])) == 0.0
