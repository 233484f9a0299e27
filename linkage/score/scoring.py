"""Stage 5: scores and levels for every account and every cluster.

* account score = the model's calibrated probability on the account's features
  (its own traffic plus its cluster's), so a hijacked or mixed member is judged
  partly on its own behaviour: it neither drags a legit cluster down nor hides in
  a farm;
* cluster score = the median of its members' scores (robust to a few odd
  members, camouflage accounts or hijacked ones);
* feedback from analysts overrides: an upheld appeal / false positive keeps that
  account ``clear``; a confirmed farm account is ``block`` (the graph stage also
  makes its identifiers weigh more, which moves its neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from linkage.detect.leiden import Clustering
from linkage.score.model import LinearModel, coordination_model
from linkage.settings import ScoreSettings

CLEAR_VERDICTS = ("appeal_upheld", "false_positive")
FARM_VERDICTS = ("confirmed_farm",)


def level_of(score: np.ndarray | pd.Series, settings: ScoreSettings) -> np.ndarray:
    s = np.asarray(score, dtype=float)
    return np.where(
        s >= settings.block_threshold,
        "block",
        np.where(s >= settings.review_threshold, "review", "clear"),
    )


def corroboration_cap(
    score: np.ndarray, corroboration: np.ndarray, settings: ScoreSettings
) -> np.ndarray:
    """Scores with no corroborating family scaled below review, with one below block.

    The cap scales rather than clips: order is kept inside each class, and a capped class
    cannot pass its cap.
    """
    eps = 1e-3
    cap = np.where(
        corroboration < 1,
        settings.review_threshold - eps,
        np.where(corroboration < 2, settings.block_threshold - eps, 1.0),
    )
    return np.asarray(score, dtype=float) * cap


def first_principles_gate(
    score: np.ndarray, X: pd.DataFrame, settings: ScoreSettings
) -> np.ndarray:
    """Scores of accounts the first-principles score alone keeps below review, scaled
    below block (order kept); a no-op for a model that is the first-principles score or
    when ``X`` lacks its terms."""
    base = coordination_model(settings.coordination)
    if not set(base.features) <= set(X.columns):
        return score
    p0 = base.predict(X)
    if settings.cap_by_corroboration and "corroboration" in X.columns:
        p0 = corroboration_cap(p0, X["corroboration"].to_numpy(dtype=float), settings)
    cap = np.where(p0 < settings.review_threshold, settings.block_threshold - 1e-3, 1.0)
    return np.asarray(score, dtype=float) * cap


@dataclass
class Scores:
    accounts: pd.DataFrame  # account_id, cluster_id, score, level, logit, override
    clusters: pd.DataFrame  # cluster_id, size, score, level
    contributions: np.ndarray  # (n_accounts x n_features) log-odds contributions
    features: pd.DataFrame  # the model input (index account_id)


def latest_verdicts(feedback: pd.DataFrame | None) -> pd.Series:
    """account_id -> the verdict that applies (:func:`linkage.store.verdicts.resolve`).

    Within a target the latest by ``ts`` wins; with a ``target_type`` column (the
    store's :meth:`feedback_frame`, cluster verdicts expanded to members) an account's
    own verdict wins over its cluster's, as in every view of the service.
    """
    from linkage.store.verdicts import resolve

    if feedback is None or feedback.empty:
        return pd.Series(dtype=object)
    fb = feedback.dropna(subset=["account_id", "verdict"]).copy()
    if "ts" in fb.columns:
        fb = fb.sort_values("ts", kind="stable")
    if "target_type" not in fb.columns:
        return fb.groupby("account_id")["verdict"].last()
    own = fb[fb["target_type"] != "cluster"].groupby("account_id")["verdict"].last()
    bulk = fb[fb["target_type"] == "cluster"].groupby("account_id")["verdict"].last()
    out = {}
    for a in own.index.union(bulk.index):
        r = resolve(own.get(a), bulk.get(a))
        if r is not None:
            out[a] = r.verdict
    return pd.Series(out, dtype=object).rename_axis("account_id").rename("verdict")


def score_accounts(
    X: pd.DataFrame,
    clustering: Clustering,
    *,
    model: LinearModel,
    settings: ScoreSettings,
    feedback: pd.DataFrame | None = None,
) -> Scores:
    contrib = model.contributions(X)
    logit = contrib.sum(axis=1) + model.intercept
    score = 1.0 / (1.0 + np.exp(-np.clip(logit, -40, 40)))
    override = np.full(len(X), "", dtype=object)
    if settings.cap_by_corroboration and "corroboration" in X.columns:
        score = corroboration_cap(score, X["corroboration"].to_numpy(dtype=float), settings)
    if settings.block_needs_first_principles:
        score = first_principles_gate(score, X, settings)

    verdicts = latest_verdicts(feedback)
    if len(verdicts):
        v = verdicts.reindex(X.index)
        clear = v.isin(CLEAR_VERDICTS).to_numpy()
        farm = v.isin(FARM_VERDICTS).to_numpy()
        cap = max(settings.review_threshold - 0.01, 0.0)  # clearly below the review line
        score = np.where(clear, np.minimum(score, cap), score)
        score = np.where(farm, np.maximum(score, settings.block_threshold), score)
        override[clear] = "appeal_upheld"
        override[farm] = "confirmed_farm"

    cid = np.array([*clustering.cluster_ids, None], dtype=object)[clustering.cluster]
    accounts = pd.DataFrame(
        {
            "account_id": X.index.astype(str),
            "cluster_id": pd.array(cid, dtype="string"),
            "score": score,
            "logit": logit,
            "level": level_of(score, settings),
            "override": override,
        }
    )
    clustered = accounts.dropna(subset=["cluster_id"])
    clusters = (
        clustered.groupby("cluster_id", sort=True)["score"]
        .agg(size="size", score="median")
        .reset_index()
    )
    clusters["level"] = level_of(clusters["score"], settings)
    return Scores(accounts=accounts, clusters=clusters, contributions=contrib, features=X)
