"""Contract of every peer: shape, ranges, levels, order invariance, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.baselines import BASELINES, run_baseline
from tests.baselines._graphs import planted_block, two_cliques

LEVELS = {"clear", "review", "block"}


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A planted block plus two cliques plus accounts with no identifier at all."""
    e1, f1, _ = planted_block(n_accounts=120, n_identifiers=200, seed=3)
    e2, f2, _, _ = two_cliques()
    silent = pd.DataFrame(
        np.full((3, f1.shape[1]), np.nan),
        columns=f1.columns,
        index=pd.Index(["s0", "s1", "s2"], name="account_id"),
    )
    # an edge of an account that is not in features must be ignored
    stray = e2.iloc[:1].assign(account_id="not-an-account")
    return pd.concat([e1, e2, stray], ignore_index=True), pd.concat([f1, f2, silent])


def test_names_and_unknown_name() -> None:
    assert BASELINES == ("rules", "components", "louvain", "fraudar")
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("pagerank", edges=pd.DataFrame(), features=pd.DataFrame())


@pytest.mark.parametrize("name", BASELINES)
def test_output_contract(name: str, world: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    edges, features = world
    out = run_baseline(name, edges=edges, features=features)
    assert list(out.columns) == ["account_id", "score", "level", "cluster_id"]
    assert out["account_id"].tolist() == features.index.astype(str).tolist()
    assert out["score"].between(0, 1).all()
    assert out["score"].dtype == np.float64
    assert set(out["level"]) <= LEVELS
    assert out["cluster_id"].dtype == "string"
    assert out["score"].nunique() > 1  # not a constant
    if name != "rules":
        silent = out.set_index("account_id").loc[["s0", "s1", "s2"]]
        assert (silent["score"] == 0).all()
        assert (silent["level"] == "clear").all()
        assert silent["cluster_id"].isna().all()


@pytest.mark.parametrize("name", BASELINES)
def test_invariant_under_row_permutation(
    name: str, world: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    edges, features = world
    base = run_baseline(name, edges=edges, features=features, seed=7).set_index("account_id")
    rng = np.random.default_rng(11)
    e2 = edges.iloc[rng.permutation(len(edges))].reset_index(drop=True)
    f2 = features.iloc[rng.permutation(len(features))]
    perm = run_baseline(name, edges=e2, features=f2, seed=7).set_index("account_id")
    assert perm.index.tolist() == f2.index.tolist()
    pd.testing.assert_frame_equal(base, perm.loc[base.index])


@pytest.mark.parametrize("name", BASELINES)
def test_deterministic_for_a_seed(name: str, world: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    edges, features = world
    a = run_baseline(name, edges=edges, features=features, seed=1)
    b = run_baseline(name, edges=edges, features=features, seed=1)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("name", BASELINES)
def test_duplicate_feature_rows_refused(name: str) -> None:
    e, f, _, _ = two_cliques(3)
    with pytest.raises(ValueError, match="duplicate"):
        run_baseline(name, edges=e, features=pd.concat([f, f.iloc[:1]]))


@pytest.mark.parametrize("name", BASELINES)
def test_no_edges_at_all(name: str) -> None:
    _, f, _, _ = two_cliques(3)
    empty = pd.DataFrame(columns=["account_id", "kind", "value", "n", "first_ts", "last_ts"])
    out = run_baseline(name, edges=empty, features=f)
    assert len(out) == len(f)
    if name != "rules":
        assert (out["score"] == 0).all()
