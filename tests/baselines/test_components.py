"""Connected components glue anything that shares anything: one NAT IP is enough."""

from __future__ import annotations

import pytest

from linkage.baselines import run_baseline
from linkage.baselines.components import BLOCK_SIZE, REVIEW_SIZE
from tests.baselines._graphs import two_groups_with_nat


def test_one_nat_ip_glues_two_groups() -> None:
    edges, features = two_groups_with_nat(with_nat=True)
    out = run_baseline("components", edges=edges, features=features).set_index("account_id")
    members = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert out.loc[members, "cluster_id"].nunique() == 1
    assert out.loc[members, "score"].tolist() == pytest.approx([1 - 1 / 10] * 10)
    assert BLOCK_SIZE <= 10
    assert (out.loc[members, "level"] == "block").all()
    assert out.loc["loner", "score"] == 0.0
    assert out.loc["loner", "level"] == "clear"


def test_without_nat_two_components() -> None:
    edges, features = two_groups_with_nat(with_nat=False)
    out = run_baseline("components", edges=edges, features=features).set_index("account_id")
    a = out.loc[[f"a{i}" for i in range(5)]]
    b = out.loc[[f"b{i}" for i in range(5)]]
    assert a["cluster_id"].nunique() == 1
    assert b["cluster_id"].nunique() == 1
    assert a["cluster_id"].iloc[0] != b["cluster_id"].iloc[0]
    assert a["score"].tolist() == pytest.approx([1 - 1 / 5] * 5)
    assert REVIEW_SIZE <= 5 < BLOCK_SIZE
    assert (a["level"] == "review").all()


def test_score_monotone_in_size() -> None:
    with_nat, f = two_groups_with_nat(with_nat=True)
    without, _ = two_groups_with_nat(with_nat=False)
    big = run_baseline("components", edges=with_nat, features=f).set_index("account_id")
    small = run_baseline("components", edges=without, features=f).set_index("account_id")
    assert big.loc["a1", "score"] > small.loc["a1", "score"] > 0
