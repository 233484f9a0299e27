"""The scoring model: exact decomposition, JSON round trip, calibration on a toy problem."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.errors import ModelError
from linkage.score import LinearModel, fit, level_of
from linkage.score.train import SUPERVISED_FEATURES as FEATURES
from linkage.settings import ScoreSettings


def test_shipped_model_covers_every_feature() -> None:
    m = LinearModel.load()
    assert m.features == FEATURES
    assert np.all(np.isfinite(m.coef)) and np.all(m.scale > 0)


def test_contributions_add_up_to_the_logit_and_json_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    y = (X["a"] + 0.5 * X["b"] + rng.normal(scale=0.5, size=400) > 0).astype(int).to_numpy()
    m = fit(X, y, features=("a", "b", "c"))
    assert np.allclose(m.contributions(X).sum(axis=1) + m.intercept, m.logit(X))
    m.save(tmp_path / "m.json")
    m2 = LinearModel.load(tmp_path / "m.json")
    assert np.allclose(m2.predict(X), m.predict(X), atol=1e-6)
    # calibration: predicted probability matches observed frequency in deciles (toy data)
    p = m.predict(X)
    bins = np.quantile(p, np.linspace(0, 1, 6))
    idx = np.clip(np.digitize(p, bins[1:-1]), 0, 4)
    for b in range(5):
        sel = idx == b
        assert abs(p[sel].mean() - y[sel].mean()) < 0.15


def test_malformed_models_are_clear_errors(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="not JSON"):
        LinearModel.load(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text(
        json.dumps({"features": ["a"], "mean": [], "scale": [], "coef": [], "intercept": 0})
    )
    with pytest.raises(ModelError):
        LinearModel.load(tmp_path / "short.json")
    with pytest.raises(ModelError, match="not found"):
        LinearModel.load(tmp_path / "missing.json")


def test_missing_feature_is_a_clear_error() -> None:
    m = LinearModel.load()
    with pytest.raises(ModelError, match="needs features"):
        m.predict(pd.DataFrame({"x": [1.0]}))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=50))
def test_scores_stay_in_unit_interval_and_levels_are_monotone(values: list[float]) -> None:
    m = LinearModel.load()
    X = pd.DataFrame(
        np.repeat(np.asarray(values)[:, None], len(FEATURES), axis=1), columns=list(FEATURES)
    )
    p = m.predict(X)
    assert np.all((p >= 0) & (p <= 1))
    s = ScoreSettings()
    order = {"clear": 0, "review": 1, "block": 2}
    lv = [order[x] for x in level_of(np.sort(p), s)]
    assert lv == sorted(lv)


def test_residual_fit_stays_on_the_base_score_without_evidence_and_learns_with_it() -> None:
    from linkage.score.model import fit_residual

    rng = np.random.default_rng(0)
    n = 4000
    base = rng.normal(size=n)
    signal = rng.normal(size=n)
    noise = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + 2.0 * signal)))).astype(int)
    X = pd.DataFrame({"b": base, "signal": signal, "noise": noise})
    strong = fit_residual(
        X, y, base=("b",), base_intercept=0.0, features=("signal", "noise"), C=1e-6
    )
    assert np.allclose(strong.coef[1:], 0.0, atol=1e-2)  # the penalty keeps the base score
    assert strong.coef[0] == 1.0 and strong.mean[0] == 0.0 and strong.scale[0] == 1.0
    learnt = fit_residual(
        X, y, base=("b",), base_intercept=0.0, features=("signal", "noise"), C=10.0
    )
    assert learnt.coef[1] > 1.5  # the labels' signal (2 nats per sd) is learnt
    assert abs(learnt.coef[2]) < 0.2
    # the base column still enters with coefficient 1 in the saved model
    again = LinearModel.from_dict(learnt.to_dict())
    assert np.allclose(again.predict(X), learnt.predict(X))
