"""Per-account rules of the mission: the baseline the engine must beat.

Four features, each looked at alone, per account (no linkage at all):

=====================  ==============================  ==========================
rule                   feature column                  what it catches
=====================  ==============================  ==========================
requests per hour      ``req_per_active_hour``         volume
topic concentration    ``topic_top_share``             narrow capability mining
template repetition    ``template_repetition``         templated prompts
long answers           ``mean_response_tokens``        answer harvesting
=====================  ==============================  ==========================

Score: the mean of the four features' percentile ranks within the population
(``rank(pct=True)``, ties averaged; an unknown value ranks 0).  Continuous, so
AP and ROC are meaningful.

Levels (a standard, *un-tuned* rule, chosen before looking at any data): a rule
*fires* when its feature is strictly above the population's 95th percentile
(:data:`FIRE_QUANTILE`); ``review`` when at least 2 of the 4 fire, ``block`` when
at least 3 fire.  A missing feature column is treated as unknown for every
account (the rule never fires and ranks 0), so partial data still runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkage.baselines._common import account_index, result_frame

RULE_FEATURES: tuple[str, ...] = (
    "req_per_active_hour",
    "topic_top_share",
    "template_repetition",
    "mean_response_tokens",
)
FIRE_QUANTILE = 0.95
REVIEW_MIN_FIRED = 2
BLOCK_MIN_FIRED = 3


def run_rules(
    *, edges: pd.DataFrame | None = None, features: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """Score every account of ``features`` with the per-account rules.

    ``edges`` and ``seed`` are accepted for a uniform peer interface and unused
    (the rules are deterministic and look at no shared identifier).
    """
    del edges, seed
    idx = account_index(features)
    feats = pd.DataFrame(index=idx)
    for col in RULE_FEATURES:
        if col in features.columns:
            feats[col] = pd.to_numeric(features[col], errors="coerce").to_numpy(dtype=np.float64)
        else:
            feats[col] = np.nan
    feats = feats.replace([np.inf, -np.inf], np.nan)

    ranks = feats.rank(pct=True, method="average").fillna(0.0)
    score = ranks.mean(axis=1).to_numpy(dtype=np.float64)

    fired = np.zeros(len(feats), dtype=np.int64)
    for col in RULE_FEATURES:
        values = feats[col].to_numpy(dtype=np.float64)
        known = values[~np.isnan(values)]
        if known.size == 0:
            continue
        cut = np.quantile(known, FIRE_QUANTILE)
        fired += np.nan_to_num(values, nan=-np.inf) > cut
    level = np.where(
        fired >= BLOCK_MIN_FIRED,
        "block",
        np.where(fired >= REVIEW_MIN_FIRED, "review", "clear"),
    ).astype(object)
    return result_frame(features, np.asarray(idx, dtype=object), score, level)
