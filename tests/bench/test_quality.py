"""The quality suite's CI smoke: tiny worlds of both families, every method, both modes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.quality import METHODS, NO_LABELS_SAME_HALF, group_halves, main, relevel


@pytest.mark.slow
def test_quick_suite_writes_every_method_and_mode(tmp_path):
    out = tmp_path / "results"
    main(
        [
            "--quick",
            "--no-external",
            "--modes", "oob,labels,curve",
            "--cache", str(tmp_path / "cache"),
            "--out", str(out),
        ]
    )  # fmt: skip
    saved = json.loads((out / "quality.json").read_text())
    names = [d["name"] for d in saved["datasets"]]
    assert any(n.startswith("own") for n in names) and any(n.startswith("redteam") for n in names)
    for ds in saved["datasets"]:
        assert "error" not in ds, ds.get("error")
        assert set(ds["modes"]) == {"oob", "labels"}
        queue = [pt for pt in ds["curve"] if pt["strategy"] == "queue"]
        rand = [pt for pt in ds["curve"] if pt["strategy"].startswith("random")]
        groups = [pt["groups"] for pt in queue]
        assert groups[0] == 0 and groups == sorted(groups) and len(groups) >= 2
        assert set(groups[:-1]) <= {0, 5, 10, 20}  # the last point may be where the queue ran dry
        first = queue[0]
        assert first["accounts"] == 0  # zero groups: the out-of-the-box model itself
        assert 0.0 <= first["ap"] <= 1.0
        for pt in queue[1:]:  # labels never make the score worse beyond noise
            assert pt["ap"] >= first["ap"] - 0.02, pt
        assert rand and rand[0]["groups"] == 0 and abs(rand[0]["ap"] - first["ap"]) < 1e-9
        assert set(ds["modes"]["oob"]) == set(METHODS)
        # the labels' baseline: the default score on the same reporting half
        assert set(ds["modes"]["labels"]) <= {*METHODS, NO_LABELS_SAME_HALF}
        assert NO_LABELS_SAME_HALF in ds["modes"]["labels"]
        for per in ds["modes"].values():
            for s in per.values():
                for key in ("ap", "roc_auc", "block_recall", "pair_recall"):
                    v = s[key]
                    assert v is None or 0.0 <= v <= 1.0, (key, v)
    md = (out / "quality.md").read_text()
    assert md.count("| **linkage** |") == 2 * len(names)  # one row per dataset and mode
    assert "## Learning curve" in md


def test_group_halves_never_split_a_group():
    labels = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(40)],
            "is_farm": [1] * 20 + [0] * 20,
            "group": [f"g{i // 5}" for i in range(20)] + [""] * 20,
        }
    )
    half = group_halves(labels, seed=3)
    for _, ids in labels[labels["group"] != ""].groupby("group")["account_id"]:
        assert half.loc[ids].nunique() == 1
    assert set(half.unique()) == {0, 1}


def test_relevel_sets_thresholds_on_the_training_half():
    rng = np.random.default_rng(0)
    s_train = np.r_[rng.random(1000) * 0.5, 0.6 + rng.random(100) * 0.4]
    y_train = np.r_[np.zeros(1000, int), np.ones(100, int)]
    lv = relevel(s_train, y_train, s_train)
    assert (lv[y_train == 0] == "block").mean() <= 0.01
    assert (lv[y_train == 1] == "block").mean() > 0.9
