"""Stage 5: features -> calibrated scores and levels."""

from linkage.score.features import FEATURES, account_features, model_inputs
from linkage.score.model import LinearModel, fit, sigmoid
from linkage.score.scoring import Scores, level_of, score_accounts

__all__ = [
    "FEATURES",
    "LinearModel",
    "Scores",
    "account_features",
    "fit",
    "level_of",
    "model_inputs",
    "score_accounts",
    "sigmoid",
]
