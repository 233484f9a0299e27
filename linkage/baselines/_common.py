"""Shared plumbing of the peer methods: input checks, the account × identifier
incidence, and the common output frame.

Every peer is made invariant to the *order* of its input rows: accounts are
numbered by sorted ``account_id`` and identifiers by sorted ``(kind, value)``,
so a permutation of ``edges`` or ``features`` rows yields the same scores,
levels and cluster ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

LEVELS: tuple[str, ...] = ("clear", "review", "block")
EDGE_COLUMNS: tuple[str, ...] = ("account_id", "kind", "value")
OUTPUT_COLUMNS: tuple[str, ...] = ("account_id", "score", "level", "cluster_id")


@dataclass(frozen=True)
class Incidence:
    """Deduplicated account × identifier incidence in sorted, order-free numbering.

    ``rows[e]`` is the account position (into ``accounts``) and ``cols[e]`` the
    identifier position (into ``identifiers``) of edge ``e``; every pair appears once.
    """

    accounts: np.ndarray  # sorted account ids (object array of str)
    identifiers: np.ndarray  # sorted "kind\x1fvalue" keys (object array of str)
    rows: np.ndarray  # int64, account position per edge
    cols: np.ndarray  # int64, identifier position per edge

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)

    @property
    def n_identifiers(self) -> int:
        return len(self.identifiers)

    def identifier_degree(self) -> np.ndarray:
        """Number of distinct accounts seen with each identifier."""
        return np.bincount(self.cols, minlength=self.n_identifiers).astype(np.int64)


def account_index(features: pd.DataFrame) -> pd.Index:
    """The accounts to score, as strings; refuses duplicate ids."""
    if not isinstance(features, pd.DataFrame):
        raise TypeError("features must be a DataFrame indexed by account_id")
    idx = pd.Index(features.index.astype(str), name="account_id")
    if idx.has_duplicates:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise ValueError(f"features index has duplicate account ids, e.g. {dup}")
    return idx


def build_incidence(edges: pd.DataFrame, features: pd.DataFrame) -> Incidence:
    """Account × identifier incidence restricted to the accounts in ``features``.

    Edges with an unknown account, kind or value are ignored (unknown is never
    "shared"); repeated (account, kind, value) rows collapse to one.
    """
    idx = account_index(features)
    accounts = np.asarray(sorted(idx), dtype=object)
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise ValueError(f"edges lacks columns {missing}")
    e = edges.loc[
        edges["account_id"].notna() & edges["kind"].notna() & edges["value"].notna(),
        list(EDGE_COLUMNS),
    ]
    rows = pd.Index(accounts).get_indexer(e["account_id"].astype(str))
    keep = rows >= 0
    keys = (e["kind"].astype(str) + "\x1f" + e["value"].astype(str)).to_numpy(dtype=object)[keep]
    rows = rows[keep].astype(np.int64)
    codes, uniques = pd.factorize(keys, sort=True)
    cols = np.asarray(codes, dtype=np.int64)
    n_id = len(uniques)
    if len(rows):
        pair = np.unique(rows * max(n_id, 1) + cols)
        rows, cols = pair // max(n_id, 1), pair % max(n_id, 1)
    return Incidence(
        accounts=accounts,
        identifiers=np.asarray(uniques, dtype=object),
        rows=rows.astype(np.int64),
        cols=cols.astype(np.int64),
    )


def result_frame(
    features: pd.DataFrame,
    accounts: np.ndarray,
    score: np.ndarray,
    level: np.ndarray,
    cluster_id: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per account of ``features.index`` (in that order).

    ``accounts``/``score``/``level``/``cluster_id`` are aligned arrays in any order
    (normally the sorted numbering); ``cluster_id`` entries may be ``None``.
    """
    idx = account_index(features)
    if cluster_id is None:
        cluster_id = np.full(len(accounts), None, dtype=object)
    frame = pd.DataFrame(
        {
            "score": np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0),
            "level": np.asarray(level, dtype=object),
            "cluster_id": np.asarray(cluster_id, dtype=object),
        },
        index=pd.Index(accounts, name="account_id"),
    )
    out = frame.reindex(idx)
    out["score"] = out["score"].fillna(0.0).astype(np.float64)
    out["level"] = out["level"].fillna("clear").astype(object)
    out["cluster_id"] = out["cluster_id"].astype("string")
    out = out.reset_index()
    return out[list(OUTPUT_COLUMNS)]


def levels_from_thresholds(score: np.ndarray, review: float, block: float) -> np.ndarray:
    """``block`` at ``score >= block``, ``review`` at ``score >= review``, else ``clear``."""
    s = np.asarray(score, dtype=np.float64)
    return np.where(s >= block, "block", np.where(s >= review, "review", "clear")).astype(object)


def cluster_labels(membership: np.ndarray, eligible: np.ndarray, prefix: str) -> np.ndarray:
    """Stable cluster ids ``{prefix}-{k}`` for the eligible clusters of ``membership``.

    Clusters are numbered by their first member in sorted account order, so ids
    do not depend on the input row order; ineligible clusters get ``None``.
    """
    membership = np.asarray(membership)
    out = np.full(len(membership), None, dtype=object)
    labels, first = np.unique(membership, return_index=True)
    order = np.argsort(first, kind="stable")
    k = 0
    name: dict[int, str] = {}
    eligible_set = set(np.asarray(eligible).tolist())
    for lab in labels[order].tolist():
        if lab in eligible_set:
            name[lab] = f"{prefix}-{k}"
            k += 1
    if name:
        mapped = pd.Series(membership).map(name)
        out = mapped.to_numpy(dtype=object)
        out[pd.isna(out)] = None
    return out


def cluster_records(result: pd.DataFrame) -> list[dict[str, Any]]:
    """``clusters.jsonl`` records of a peer's output (one per ``cluster_id``, sorted by id).

    Each: ``cluster_id, size, score`` (median member score, 6 decimals), ``level``
    (the members' most common level), ``members`` (sorted ids) and no ``evidence``
    (peers explain nothing).
    """
    records = []
    clustered = result.dropna(subset=["cluster_id"])
    for cid, grp in clustered.groupby("cluster_id", sort=True):
        records.append(
            {
                "cluster_id": str(cid),
                "size": len(grp),
                "score": round(float(grp["score"].median()), 6),
                "level": str(grp["level"].mode().iloc[0]),
                "members": sorted(grp["account_id"].astype(str).tolist()),
                "evidence": [],
            }
        )
    return records
