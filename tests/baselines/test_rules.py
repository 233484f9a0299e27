"""The per-account rules fire on the extreme account and rank by percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.baselines import run_baseline
from linkage.baselines.rules import RULE_FEATURES
from tests.baselines._graphs import features_frame

NO_EDGES = pd.DataFrame(columns=["account_id", "kind", "value"])


def _population(n: int = 200) -> pd.DataFrame:
    return features_frame([f"acc{i:03d}" for i in range(n)], seed=5)


def test_extreme_account_blocked_and_top_scored() -> None:
    f = _population()
    f.loc["acc000", list(RULE_FEATURES)] = [1e6, 1.5, 1.5, 1e6]
    out = run_baseline("rules", edges=NO_EDGES, features=f).set_index("account_id")
    assert out.loc["acc000", "level"] == "block"
    assert out.loc["acc000", "score"] == pytest.approx(1.0)
    assert out["score"].idxmax() == "acc000"
    assert out["cluster_id"].isna().all()


def test_two_rules_review_one_rule_clear() -> None:
    f = _population()
    f.loc["acc001", list(RULE_FEATURES)] = [1e6, 1.5, 0.0, 0.0]
    f.loc["acc002", list(RULE_FEATURES)] = [0.0, 0.0, 1.5, 0.0]
    out = run_baseline("rules", edges=NO_EDGES, features=f).set_index("account_id")
    assert out.loc["acc001", "level"] == "review"
    assert out.loc["acc002", "level"] == "clear"
    # an un-tuned 95th-percentile rule: few accounts reach review on random data
    assert (out["level"] != "clear").mean() < 0.1


def test_unknown_ranks_zero_and_missing_column_tolerated() -> None:
    f = _population(50)
    f.loc["acc003", list(RULE_FEATURES)] = np.nan
    out = run_baseline("rules", edges=NO_EDGES, features=f).set_index("account_id")
    assert out.loc["acc003", "score"] == 0.0
    assert out.loc["acc003", "level"] == "clear"
    partial = f.drop(columns=["topic_top_share"])
    out2 = run_baseline("rules", edges=NO_EDGES, features=partial).set_index("account_id")
    assert out2["score"].max() <= 0.75 + 1e-12  # one of four ranks is always 0
    assert out2["score"].between(0, 1).all()


def test_score_is_mean_percentile_rank() -> None:
    f = pd.DataFrame(
        {c: [1.0, 2.0, 3.0, 4.0] for c in RULE_FEATURES},
        index=pd.Index(["a", "b", "c", "d"], name="account_id"),
    )
    out = run_baseline("rules", edges=NO_EDGES, features=f)
    assert out["score"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
