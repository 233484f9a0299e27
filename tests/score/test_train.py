"""``linkage train``: labels or analysts' verdicts on top of the out-of-the-box model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.errors import LinkageError
from linkage.pipeline import train_from_feedback
from linkage.score.model import load_model
from linkage.settings import Settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from linkage.fixtures.io import write_world
    from linkage.fixtures.world import make_world

    d = tmp_path_factory.mktemp("world") / "w"
    write_world(make_world(scale=0.03, seed=3), d, fmt="parquet")
    return d


@pytest.mark.slow
def test_verdicts_train_a_model_that_scores_every_account_and_says_why(world: Path) -> None:
    labels = pd.read_parquet(world / "labels.parquet")
    grouped = labels[labels["group"].fillna("") != ""]
    verdict = np.where(grouped["is_farm"] == 1, "confirmed_farm", "false_positive")
    fb = pd.DataFrame({"account_id": grouped["account_id"], "verdict": verdict})
    settings = Settings()
    model = train_from_feedback(world, fb, settings=settings)
    cv = model.meta["cv"]
    assert model.meta["labels"] == "feedback" and model.meta["n_farm"] > 0
    assert cv["n_groups"] >= 4 and "None" in cv["cv_ap"]  # "no residual" was a candidate
    base = load_model(settings.score)
    if cv["C"] is None:  # no residual won on held-out clusters: the base itself
        assert model.features == base.features and np.allclose(model.coef, base.coef)
    else:
        assert set(base.features) <= set(model.features)
    # only one class of verdicts: a clear message, not a fit
    with pytest.raises(LinkageError, match="needs both"):
        train_from_feedback(world, fb[verdict == "false_positive"], settings=settings)
