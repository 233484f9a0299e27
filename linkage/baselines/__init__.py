"""Peer methods every evaluation shows beside the engine.

- ``rules``: the mission's per-account rules (requests/hour, topic
  concentration, template repetition, long answers) — no linkage;
- ``components``: connected components of shared identifiers — naive linkage;
- ``louvain``: Louvain on the shared-identifier account projection;
- ``fraudar``: FRAUDAR dense blocks (Hooi et al., KDD 2016) on the account ×
  identifier bipartite graph.

All take the identifiers-stage frames (``edges``: ``account_id, kind, value,
…``; ``features``: indexed by ``account_id``, one row per account) and return
one row per account of ``features.index``:
``account_id, score ([0, 1], higher = more suspicious), level
(clear|review|block), cluster_id (string or <NA>)``.  Results do not depend
on the order of input rows.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from linkage.baselines.components import run_components
from linkage.baselines.fraudar import run_fraudar
from linkage.baselines.louvain import run_louvain
from linkage.baselines.rules import run_rules

__all__ = ["BASELINES", "run_baseline"]

BASELINES: tuple[str, ...] = ("rules", "components", "louvain", "fraudar")

_RUNNERS: dict[str, Callable[..., pd.DataFrame]] = {
    "rules": run_rules,
    "components": run_components,
    "louvain": run_louvain,
    "fraudar": run_fraudar,
}


def run_baseline(
    name: str, *, edges: pd.DataFrame, features: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """Run the peer method ``name`` (one of :data:`BASELINES`).

    Returns ``account_id, score, level, cluster_id``, one row per account of
    ``features.index`` in that order.
    """
    try:
        runner = _RUNNERS[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}"
        ) from None
    return runner(edges=edges, features=features, seed=seed)
