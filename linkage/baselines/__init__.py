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

from importlib import import_module

import pandas as pd

from linkage.baselines._common import cluster_records

__all__ = ["BASELINES", "cluster_records", "run_baseline"]

BASELINES: tuple[str, ...] = ("rules", "components", "louvain", "fraudar")

# imported on first use: importing one peer (e.g. the stand-alone FRAUDAR run in a
# fresh process by the benchmark) must not pay for the others' imports (igraph
# pulls in matplotlib, ~1 s)
_RUNNERS: dict[str, tuple[str, str]] = {
    "rules": ("linkage.baselines.rules", "run_rules"),
    "components": ("linkage.baselines.components", "run_components"),
    "louvain": ("linkage.baselines.louvain", "run_louvain"),
    "fraudar": ("linkage.baselines.fraudar", "run_fraudar"),
}


def run_baseline(
    name: str, *, edges: pd.DataFrame, features: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """Run the peer method ``name`` (one of :data:`BASELINES`).

    Returns ``account_id, score, level, cluster_id``, one row per account of
    ``features.index`` in that order.
    """
    try:
        module, func = _RUNNERS[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}"
        ) from None
    runner = getattr(import_module(module), func)
    return runner(edges=edges, features=features, seed=seed)
