"""A run's signup index as the signup scorer reads it.

The run writes ``signup_index`` (identifiers of clustered or flagged accounts, with
each identifier's holders across the whole history); :meth:`SignupIndex.of_run` turns
it into look-ups: per ``(kind, value)`` the clusters holding it, with how many of their
members hold it and how many accounts hold it at all (the vote ``members / holders``),
and per ``(kind, value, cluster)`` the share of those members that are blocked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from linkage.store.rundir import Run

__all__ = ["Hit", "SignupIndex"]

Key = tuple[str, str]
#: one cluster holding an identifier: (cluster id, weight, members holding it, holders)
Hit = tuple[str, float, int, int]


@dataclass(frozen=True)
class SignupIndex:
    """``hits``: ``(kind, value) -> clusters holding it``; ``blocked``: ``(kind, value,
    cluster) -> share of the cluster's holders that are blocked`` (only entries with a
    blocked holder); each cluster's score and level."""

    hits: Mapping[Key, tuple[Hit, ...]]
    blocked: Mapping[tuple[str, str, str], float]
    cluster_score: Mapping[str, float]
    cluster_level: Mapping[str, str]

    @classmethod
    def of_run(cls, run: Run) -> SignupIndex:
        clusters = {c["cluster_id"]: c for c in run.clusters}
        score = {cid: float(c["score"]) for cid, c in clusters.items()}
        level = {cid: str(c["level"]) for cid, c in clusters.items()}
        idx = run.signup_index
        if idx is None or idx.empty:
            return cls(hits={}, blocked={}, cluster_score=score, cluster_level=level)
        acc = run.accounts
        acc_cluster = pd.Series(
            acc["cluster_id"].to_numpy(dtype=object), index=acc["account_id"].astype(str).to_numpy()
        )
        idx = idx.copy()
        idx["account_id"] = idx["account_id"].astype(str)
        idx["cluster_id"] = acc_cluster.reindex(idx["account_id"].to_numpy()).to_numpy()
        if "holders" not in idx.columns:
            idx["holders"] = idx.groupby(["kind", "value"])["account_id"].transform("size")
        idx = idx[pd.notna(idx["cluster_id"])]
        return cls(
            hits=_hits(idx),
            blocked=_blocked_shares(idx, acc),
            cluster_score=score,
            cluster_level=level,
        )


def _hits(idx: pd.DataFrame) -> dict[Key, tuple[Hit, ...]]:
    g = (
        idx.groupby(["kind", "value", "cluster_id"], sort=True)
        .agg(weight=("weight", "max"), members=("account_id", "size"), holders=("holders", "max"))
        .reset_index()
    )
    index: dict[Key, list[Hit]] = defaultdict(list)
    for k, v, c, w, m, h in zip(
        g["kind"], g["value"], g["cluster_id"], g["weight"], g["members"], g["holders"], strict=True
    ):
        index[(str(k), str(v))].append((str(c), float(w), int(m), int(max(h, m))))
    # tuples of atomics are untracked by the cyclic GC (lists are not): ~60% fewer
    # objects for every full collection to walk while the scorer serves
    return {key: tuple(hits) for key, hits in index.items()}


def _blocked_shares(idx: pd.DataFrame, accounts: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """``(kind, value, cluster) -> share of the cluster's holders that are blocked`` (only
    entries with a blocked holder: the rest are 0)."""
    if "level" not in accounts.columns or idx.empty:
        return {}
    level = pd.Series(
        accounts["level"].astype(str).to_numpy(),
        index=accounts["account_id"].astype(str).to_numpy(),
    )
    blocked = (level.reindex(idx["account_id"].to_numpy()).to_numpy() == "block").astype(float)
    g = (
        idx.assign(blocked=blocked)
        .groupby(["kind", "value", "cluster_id"], sort=False)["blocked"]
        .mean()
    )
    g = g[g > 0]
    return {(str(k), str(v), str(c)): float(b) for (k, v, c), b in g.items()}
