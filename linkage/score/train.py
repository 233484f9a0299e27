"""Fit the scoring model on labelled datasets (``linkage train``).

Each dataset goes through the same stages as ``detect`` (so the features are
exactly those the model will see: :func:`linkage.pipeline.train_model` prepares them
and hands the prepared runs here), labels are joined by account, accounts of
*grey* populations (coordinated but not extraction: neither class) and unlabelled
accounts are left out, and a penalised residual is fitted on top of the
out-of-the-box model (:mod:`linkage.score.labels`): by default its penalty, "no
residual" included, is chosen by cross-validation over the labelled groups, so
labels never make the score worse than the out-of-the-box one beyond noise.
Every group carries the same weight, so a large campaign does not drown small ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from linkage.errors import LinkageError
from linkage.score.features import FEATURES
from linkage.score.model import LinearModel, fit_residual
from linkage.score.terms import TERMS
from linkage.settings import Settings

# the supervised model builds on the out-of-the-box one: its coordination terms enter as
# they are (coefficient 1), and labels fit a penalised residual on the account and cluster
# features (see linkage.score.model.fit_residual)
SUPERVISED_FEATURES: tuple[str, ...] = (*TERMS, *FEATURES)
DEFAULT_C = 0.1


def labelled_frame(prep: Any, name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The labelled, non-grey accounts of a prepared run (:class:`linkage.pipeline.Prepared`
    of dataset ``name``): ``(X, y, group)``.

    ``group`` is the labels' ``group`` column, or ``acct:<id>`` for an account without one.
    """
    labels = prep.dataset.labels
    if labels is None:
        raise LinkageError(f"{name} has no labels table: training needs labels")
    lab = (
        labels.assign(account_id=labels["account_id"].astype(str))
        .drop_duplicates("account_id")
        .set_index("account_id")
    )
    joined = lab.reindex(prep.X.index)
    pop = (
        joined["population"].astype("string").fillna("")
        if "population" in joined.columns
        else pd.Series("", index=joined.index)
    )
    keep = joined["is_farm"].notna().to_numpy() & ~pop.str.startswith("grey").to_numpy()
    grp = (
        joined["group"].astype("string")
        if "group" in joined.columns
        else pd.Series(pd.NA, index=joined.index, dtype="string")
    )
    acct = pd.Series("acct:" + joined.index.astype(str), index=joined.index)
    grp = grp.where(grp.notna() & (grp != ""), acct).astype(str)
    y = pd.to_numeric(joined.loc[keep, "is_farm"], errors="coerce").astype(int).to_numpy()
    return prep.X.loc[keep], y, grp.loc[keep].to_numpy(dtype=object)


def fit_labelled(
    runs: Iterable[tuple[str, Any]],
    *,
    settings: Settings,
    C: float | str | None = "auto",
    progress: Callable[[str], None] | None = None,
) -> LinearModel:
    """The out-of-the-box model plus a residual learnt from the labels of ``runs``
    (``(dataset name, prepared run)``, consumed one at a time).

    ``C="auto"`` (default) chooses the penalty by cross-validation over labelled groups
    (groups of different datasets are different groups), "no residual" included; a
    number fixes it; ``None`` keeps the out-of-the-box model.
    """
    from linkage.score.labels import fit_with_labels
    from linkage.score.model import load_model

    frames, ys, gs, names = [], [], [], []
    for i, (name, prep) in enumerate(runs):
        X, y, g = labelled_frame(prep, name)
        names.append(name)
        frames.append(X)
        ys.append(y)
        gs.append(np.asarray([f"{i}:{x}" for x in g], dtype=object))
    X = pd.concat(frames)
    y = np.concatenate(ys)
    groups = np.concatenate(gs)
    if len(np.unique(y)) < 2:
        raise LinkageError("training data needs both farm and legit accounts")
    meta = {
        "trained_on": names,
        "settings": settings.model_dump(mode="json"),
    }
    base = load_model(settings.score)
    model, cv = fit_with_labels(X, y, groups, base=base, C=C, seed=settings.seed, meta=meta)
    if progress:
        progress(f"train: {cv.reason}")
    return _described(model, base, meta, y, cv)


def fit_feedback(
    prep: Any,
    name: str,
    feedback: pd.DataFrame,
    *,
    settings: Settings,
    C: float | str | None = "auto",
    progress: Callable[[str], None] | None = None,
) -> LinearModel:
    """The out-of-the-box model plus a residual learnt from analysts' verdicts on a
    prepared run (:class:`linkage.pipeline.Prepared` of dataset ``name``).

    ``confirmed_farm`` = farm, ``appeal_upheld`` / ``false_positive`` = legit (the latest
    verdict per account, :func:`linkage.score.labels.feedback_labels`); the groups of the
    cross-validation are the accounts' clusters in this run (reviewed together, alike by
    construction), and the residual is standardised on every account of the dataset.
    """
    from linkage.score.labels import feedback_labels, fit_with_labels
    from linkage.score.model import load_model

    cl = prep.clustering
    ids = np.array([*cl.cluster_ids, None], dtype=object)[cl.cluster]
    cluster_of = pd.Series(ids, index=prep.X.index.astype(str)).dropna()
    mask, y, groups = feedback_labels(feedback, prep.X.index, cluster_of)
    if len(np.unique(y)) < 2:
        raise LinkageError(
            f"the feedback names {int(y.sum())} confirmed farm and {int((y == 0).sum())} cleared "
            f"accounts of {name}: training needs both (verdicts confirmed_farm and "
            "appeal_upheld / false_positive on accounts of this dataset)"
        )
    meta = {"trained_on": [name], "labels": "feedback"}
    base = load_model(settings.score)
    model, cv = fit_with_labels(
        prep.X.loc[mask], y, groups, base=base, C=C, reference=prep.X, seed=settings.seed, meta=meta
    )
    if progress:
        progress(f"train: {cv.reason}")
    return _described(model, base, meta, y, cv)


def _described(model: LinearModel, base: LinearModel, meta: dict, y: np.ndarray, cv) -> LinearModel:
    """``model``, or when no residual won, the base with what it was fitted on and why."""
    if model is not base:
        return model
    return LinearModel(
        base.features,
        base.mean,
        base.scale,
        base.coef,
        base.intercept,
        {**base.meta, **meta, "n_accounts": len(y), "n_farm": int(y.sum()), "cv": cv.to_dict()},
    )


def fit_on_coordination(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    C: float = DEFAULT_C,
    sample_weight: np.ndarray | None = None,
    meta: dict | None = None,
    prior: float | None = None,
) -> LinearModel:
    """A residual on the first-principles terms (``prior``: their intercept, the default
    settings' if None)."""
    from linkage.settings import CoordinationSettings

    return fit_residual(
        X,
        y,
        base=TERMS,
        base_intercept=CoordinationSettings().prior if prior is None else prior,
        features=FEATURES,
        C=C,
        sample_weight=sample_weight,
        meta=meta,
    )


def fit_frame(
    prep: object,
    mask: np.ndarray,
    y: np.ndarray,
    *,
    settings: Settings,
    C: float | str | None = "auto",
    groups: np.ndarray | None = None,
) -> LinearModel:
    """Labels on the accounts ``mask`` selects of an already prepared run (``y`` = their
    labels, ``groups`` = their labelled groups; default: the accounts' clusters, an
    unclustered account its own group): the out-of-the-box model plus the residual the
    group cross-validation keeps (see :func:`linkage.score.labels.fit_with_labels`)."""
    from linkage.score.labels import fit_with_labels
    from linkage.score.model import load_model

    X = prep.X.loc[mask]  # type: ignore[attr-defined]
    if groups is None:
        cl = prep.clustering  # type: ignore[attr-defined]
        ids = np.array([*cl.cluster_ids, None], dtype=object)[cl.cluster][mask]
        acct = np.asarray(X.index.astype(str), dtype=object)
        groups = np.where(pd.isna(ids), "acct:" + acct, "cluster:" + ids.astype(str))
    model, _ = fit_with_labels(
        X,
        np.asarray(y, dtype=int),
        groups,
        base=load_model(settings.score),
        C=C,
        reference=prep.X,  # type: ignore[attr-defined]
        seed=settings.seed,
    )
    return model
