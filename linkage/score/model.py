"""The scoring model: a standardised logistic regression, stored as JSON.

Why logistic regression: its log-odds are a *sum* of per-feature terms, so every
score decomposes exactly into evidence contributions (a match-weight waterfall)
and any counterfactual ("without the shared card") is one subtraction; fitted by
maximum likelihood on labelled worlds it is calibrated by construction on that
distribution (we report reliability in ``evaluate``).  The shipped model is fitted
on generator seeds that evaluation never uses (see ``linkage train`` and
``docs/MODEL.md``); a provider refits it on its own labels and feedback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkage.errors import ModelError
from linkage.settings import CoordinationSettings, ScoreSettings

MODEL_VERSION = 1


@dataclass(frozen=True)
class LinearModel:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    meta: dict[str, Any] = field(default_factory=dict)

    # -- scoring -------------------------------------------------------------
    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ModelError(f"model needs features {missing} that the pipeline did not produce")
        return X[list(self.features)].to_numpy(dtype=float)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature log-odds contributions relative to the training mean (n x p)."""
        Z = (self._matrix(X) - self.mean) / self.scale
        return Z * self.coef

    def logit(self, X: pd.DataFrame) -> np.ndarray:
        return self.contributions(X).sum(axis=1) + self.intercept

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.logit(X))

    # -- persistence ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MODEL_VERSION,
            "kind": "standardised-logistic-regression",
            "features": list(self.features),
            "mean": [round(float(x), 8) for x in self.mean],
            "scale": [round(float(x), 8) for x in self.scale],
            "coef": [round(float(x), 8) for x in self.coef],
            "intercept": round(float(self.intercept), 8),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearModel:
        try:
            if int(d.get("version", 0)) > MODEL_VERSION:
                raise ModelError(f"model version {d.get('version')} is newer than this linkage")
            feats = tuple(d["features"])
            arrs = [np.asarray(d[k], dtype=float) for k in ("mean", "scale", "coef")]
            if any(len(x) != len(feats) for x in arrs):
                raise ModelError("model arrays do not match its feature list")
            return cls(
                feats,
                arrs[0],
                np.where(arrs[1] > 0, arrs[1], 1.0),
                arrs[2],
                float(d["intercept"]),
                dict(d.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed model: {exc}") from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> LinearModel:
        """Load a model JSON; ``None`` = the model shipped with the package."""
        try:
            if path is None:
                text = resources.files("linkage.score").joinpath("model.json").read_text()
            else:
                text = Path(path).read_text()
        except FileNotFoundError:
            raise ModelError(
                f"scoring model not found: {path or 'linkage/score/model.json'}"
            ) from None
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ModelError(f"scoring model {path} is not JSON: {exc}") from None


def fit_residual(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    base: tuple[str, ...],
    base_intercept: float,
    features: tuple[str, ...],
    C: float = 0.1,
    sample_weight: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
    signs: dict[str, int] | None = None,
) -> LinearModel:
    """Labels *on top of* a fixed base score: ``logit = sum(base) + base_intercept + b + Z @ beta``.

    The ``base`` columns enter with coefficient 1 exactly as they are (the out-of-the-box
    coordination terms, already in nats); ``beta`` on the standardised ``features`` and
    the intercept shift ``b`` are fitted by weighted maximum likelihood with an L2 penalty
    ``||beta||^2 / (2 C n)`` that pulls the model back to the base score: with few labels
    it stays the unsupervised score, with many it learns what the labels say.

    ``signs`` (feature -> +1 / -1) constrains a coefficient's sign: what first principles
    say a cue means (concealment can only raise the odds of a farm) is not left to the
    habits of the training worlds.
    """
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        raise ModelError("training data needs both farm and legit accounts")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    w = w / w.sum()
    offset = X[list(base)].to_numpy(dtype=float).sum(axis=1) + base_intercept
    M = X[list(features)].to_numpy(dtype=float)
    mean = M.mean(axis=0)
    scale = M.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    Z = (M - mean) / scale
    lam = 1.0 / (C * max(len(y), 1))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, beta = theta[0], theta[1:]
        z = offset + b + Z @ beta
        p = sigmoid(z)
        # weighted log-loss, stable form
        ll = np.logaddexp(0.0, z) - y * z
        # the intercept shift is not penalised: farms are rare, and pulling it toward 0 kept
        # the base rate wrong (own seed 2 with half the labels: AP 0.135 -> 0.024)
        f = float(w @ ll) + 0.5 * lam * (float(beta @ beta))
        r = w * (p - y)
        g = np.concatenate([[r.sum()], Z.T @ r + lam * beta])
        return f, g

    signs = signs or {}
    bounds = [(None, None)] + [
        (0.0, None) if signs.get(f, 0) > 0 else (None, 0.0) if signs.get(f, 0) < 0 else (None, None)
        for f in features
    ]
    res = minimize(loss, np.zeros(1 + Z.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds)
    b, beta = float(res.x[0]), res.x[1:]
    k = len(base)
    return LinearModel(
        (*base, *features),
        np.r_[np.zeros(k), mean],
        np.r_[np.ones(k), scale],
        np.r_[np.ones(k), beta],
        base_intercept + b,
        {"kind": "residual-on-coordination", "C": C, **(meta or {})},
    )


def shrink_residual(
    model: LinearModel, weight: float, *, n_base: int, base_intercept: float
) -> LinearModel:
    """The residual of ``model`` (every coefficient after the first ``n_base`` base terms,
    and the intercept shift) scaled by ``weight``: ``0`` is the base score alone, ``1``
    the fitted model, ``0.5`` the mean of the two log-odds (two judges, one vote each)."""
    coef = np.asarray(model.coef, dtype=float).copy()
    coef[n_base:] *= weight
    intercept = base_intercept + weight * (model.intercept - base_intercept)
    meta = {**model.meta, "shrink": weight}
    return LinearModel(model.features, model.mean, model.scale, coef, intercept, meta)


def coordination_model(settings: CoordinationSettings | None = None) -> LinearModel:
    """The out-of-the-box model: the coordination terms summed as they are (no training).

    Every term is already in nats of log-odds (``linkage.score.coordination``), so the
    model is the identity on them plus the prior (``settings.prior``).
    """
    from linkage.score.terms import TERMS

    prior = (settings or CoordinationSettings()).prior
    k = len(TERMS)
    return LinearModel(
        TERMS,
        np.zeros(k),
        np.ones(k),
        np.ones(k),
        prior,
        {"kind": "coordination", "trained_on": []},
    )


def load_model(settings: ScoreSettings) -> LinearModel:
    """The model a run uses: ``settings.model_path`` if given, else ``settings.model``:
    ``coordination`` (default) = the first-principles score alone, ``trained`` = the
    shipped ``model.json``."""
    if settings.model_path is not None:
        return LinearModel.load(settings.model_path)
    if settings.model == "trained":
        return LinearModel.load(None)
    return coordination_model(settings.coordination)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def fit(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    features: tuple[str, ...],
    C: float = 1.0,
    sample_weight: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> LinearModel:
    """Fit the model by L2-regularised maximum likelihood (sklearn)."""
    from sklearn.linear_model import LogisticRegression

    M = X[list(features)].to_numpy(dtype=float)
    mean = M.mean(axis=0)
    scale = M.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    Z = (M - mean) / scale
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise ModelError("training data needs both farm and legit accounts")
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit(Z, y, sample_weight=sample_weight)
    return LinearModel(
        tuple(features), mean, scale, lr.coef_[0].copy(), float(lr.intercept_[0]), dict(meta or {})
    )
