"""Labels on top of the out-of-the-box model: a residual only when held-out groups say so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from linkage.errors import ModelError
from linkage.score.labels import (
    choose_C,
    feedback_labels,
    fit_on_base,
    fit_with_labels,
    group_folds,
)
from linkage.score.model import LinearModel


def _base() -> LinearModel:
    """A stand-in out-of-the-box model: log-odds = a - 1 (feature ``a`` only)."""
    return LinearModel(("a",), np.zeros(1), np.ones(1), np.ones(1), -1.0, {"kind": "toy"})


def planted_world(
    *, n_groups: int, seed: int, consistent: bool, size: int = 12
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Groups of ``size`` accounts, a third of them farms. ``a`` is a weak cue the base
    reads; ``b`` separates farms from legit groups the same way in every group when
    ``consistent``, else with a sign drawn per group (a cue that looks real inside the
    labelled groups and means nothing on new ones); ``n1``, ``n2`` are noise."""
    rng = np.random.default_rng(seed)
    rows, ys, gs = [], [], []
    for g in range(n_groups):
        farm = int(g % 3 == 0)
        sign = 1.0 if consistent else rng.choice([-1.0, 1.0])
        shift = rng.normal(0, 1.5)  # groups differ from each other
        for _ in range(size):
            rows.append(
                {
                    "a": 0.6 * farm + rng.normal(0, 1),
                    "b": sign * 2.0 * (farm - 0.5) + shift * (not consistent) + rng.normal(0, 0.7),
                    "n1": rng.normal(0, 1),
                    "n2": rng.normal(0, 1) + shift,
                }
            )
            ys.append(farm)
            gs.append(f"g{g}")
    return pd.DataFrame(rows), np.asarray(ys), np.asarray(gs, dtype=object)


def test_no_residual_is_the_base_itself_and_a_residual_adds_to_its_logit() -> None:
    X, y, _ = planted_world(n_groups=12, seed=0, consistent=True)
    base = _base()
    assert fit_on_base(X, y, base=base, C=None) is base
    m = fit_on_base(X, y, base=base, C=1.0)
    assert set(m.features) == {"a", "b", "n1", "n2"}  # one merged term per feature
    assert np.allclose(m.contributions(X).sum(axis=1) + m.intercept, m.logit(X))
    # a vanishing C is no residual at all
    tiny = fit_on_base(X, y, base=base, C=1e-9)
    assert np.allclose(tiny.logit(X), base.logit(X), atol=1e-3)
    with pytest.raises(ModelError, match="both"):
        fit_on_base(X, np.zeros(len(y)), base=base, C=1.0)


def test_group_folds_never_split_a_group_and_spread_farm_groups() -> None:
    _, y, g = planted_world(n_groups=30, seed=1, consistent=True)
    folds = group_folds(g, y, n_folds=5)
    per_group = pd.Series(folds).groupby(g).nunique()
    assert (per_group == 1).all()
    farm_folds = pd.Series(folds[y == 1]).unique()
    assert len(farm_folds) == 5  # 10 farm groups dealt over the 5 folds
    assert np.array_equal(folds, group_folds(g, y, n_folds=5))  # deterministic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cv_keeps_a_residual_only_when_it_wins_on_held_out_groups(seed: int) -> None:
    base = _base()
    for consistent in (True, False):
        X, y, g = planted_world(n_groups=24, seed=seed, consistent=consistent)
        Xt, yt, _ = planted_world(n_groups=30, seed=100 + seed, consistent=consistent)
        model, cv = fit_with_labels(X, y, g, base=base)
        ap_base = average_precision_score(yt, base.logit(Xt))
        ap = average_precision_score(yt, model.logit(Xt))
        # never below the out-of-the-box score on new groups beyond noise
        assert ap >= ap_base - 0.02, (consistent, cv.reason)
        if consistent:  # a cue shared by every group is learnt
            assert cv.C is not None, cv.reason
            assert ap > ap_base + 0.1
        else:  # a cue whose sign each group draws is not
            assert cv.C is None, cv.reason
            assert model is base


def test_too_few_labelled_groups_mean_no_residual() -> None:
    X, y, g = planted_world(n_groups=3, seed=0, consistent=True)  # one farm group
    cv = choose_C(X, y, g, base=_base())
    assert cv.C is None and "fewer than two" in cv.reason


def test_analyst_verdicts_become_labels_grouped_by_cluster() -> None:
    accounts = pd.Index(["a1", "a2", "a3", "a4", "a5"])
    fb = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a3", "a5"],
            "verdict": [
                "confirmed_farm",
                "confirmed_farm",
                "confirmed_farm",
                "appeal_upheld",  # the later verdict wins
                "something_else",
            ],
            "ts": pd.to_datetime(
                ["2026-01-01", "2026-01-01", "2026-01-01", "2026-01-02", "2026-01-01"]
            ),
        }
    )
    cluster_of = pd.Series({"a1": "c1", "a2": "c1", "a3": "c2"})
    mask, y, g = feedback_labels(fb, accounts, cluster_of)
    assert mask.tolist() == [True, True, True, False, False]
    assert y.tolist() == [1, 1, 0]
    assert g.tolist() == ["cluster:c1", "cluster:c1", "cluster:c2"]
