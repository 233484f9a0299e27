"""Fit the scoring model on labelled datasets (``linkage train``).

Each dataset goes through the same stages as ``detect`` (so the features are
exactly those the model will see), labels are joined by account, accounts of
*grey* populations (coordinated but not extraction: neither class) and unlabelled
accounts are left out, and a standardised logistic regression is fitted.  Every
dataset gets the same total weight, so a large world does not drown a small one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from linkage.errors import LinkageError
from linkage.score.coordination import TERMS
from linkage.score.features import FEATURES
from linkage.score.model import LinearModel, fit_residual
from linkage.settings import Settings

# the supervised model builds on the out-of-the-box one: its coordination terms enter as
# they are (coefficient 1), and labels fit a penalised residual on the account and cluster
# features (see linkage.score.model.fit_residual)
SUPERVISED_FEATURES: tuple[str, ...] = (*TERMS, *FEATURES)
DEFAULT_C = 0.1


def training_frame(
    dataset: str | Path, *, settings: Settings, progress: Callable[[str], None] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    from linkage.pipeline import prepare

    prep = prepare(dataset, settings=settings, progress=progress, keep_prompts=False)
    labels = prep.dataset.labels
    if labels is None:
        raise LinkageError(f"{dataset} has no labels table: training needs labels")
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
    return prep.X.loc[keep], joined.loc[keep, "is_farm"].astype(int).to_numpy()


def train_model(
    datasets: Sequence[str | Path],
    *,
    settings: Settings,
    C: float = DEFAULT_C,
    progress: Callable[[str], None] | None = None,
) -> LinearModel:
    frames, ys, ws = [], [], []
    for d in datasets:
        X, y = training_frame(d, settings=settings, progress=progress)
        frames.append(X)
        ys.append(y)
        ws.append(np.full(len(y), 1.0 / max(len(y), 1)))
    X = pd.concat(frames)
    y = np.concatenate(ys)
    w = np.concatenate(ws)
    w = w / w.mean()
    meta = {
        "trained_on": [str(d) for d in datasets],
        "n_accounts": len(y),
        "n_farm": int(y.sum()),
        "C": C,
        "settings": settings.model_dump(mode="json"),
    }
    return fit_on_coordination(X, y, C=C, sample_weight=w, meta=meta)


def fit_on_coordination(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    C: float = DEFAULT_C,
    sample_weight: np.ndarray | None = None,
    meta: dict | None = None,
) -> LinearModel:
    from linkage.score.coordination import PRIOR

    return fit_residual(
        X,
        y,
        base=TERMS,
        base_intercept=PRIOR,
        features=FEATURES,
        C=C,
        sample_weight=sample_weight,
        meta=meta,
    )


def fit_frame(
    prep: object, mask: np.ndarray, y: np.ndarray, *, settings: Settings, C: float = DEFAULT_C
) -> LinearModel:
    """Fit on the accounts ``mask`` selects of an already prepared run (``y`` = their labels)."""
    X = prep.X.loc[mask]  # type: ignore[attr-defined]
    return fit_on_coordination(X, y, C=C, meta={"n_accounts": len(y), "n_farm": int(np.sum(y))})
