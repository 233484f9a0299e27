"""The review queue: which clusters an analyst should label next, to learn fastest.

Labels improve the score through a residual on top of the out-of-the-box model, chosen
by cross-validation over labelled groups (:mod:`linkage.score.labels`). What the
residual can learn from one more label depends on three things, and the priority of a
cluster is their product, with a diversity correction for the batch:

1. **Uncertainty** ``u = 4 p (1 - p)`` of the cluster score ``p`` (uncertainty sampling,
   Lewis & Gale 1994; Settles 2009). A cluster the score already calls clearly a farm or
   clearly harmless teaches little: its label agrees with the score and moves no
   coefficient. A cluster near the decision boundary is where the score is most likely
   wrong, and one label there moves the boundary; it is also where an analyst's time is
   needed anyway (the ``review`` band).
2. **Impact** ``log(1 + size)``: a label on a cluster settles all its members at once,
   and ranking quality (AP) and the block decisions are counted in accounts. The log
   keeps a few giant clusters from taking every slot: the tenth member of a cluster adds
   less new information than the first member of another.
3. **Rank** ``1 / log2(1 + rank)`` of the cluster by score (a DCG discount): average
   precision is decided at the top of the ranking, so among equally uncertain clusters
   the one that sits higher costs more when it is wrong.
4. **Diversity** (maximal marginal relevance, Carbonell & Goldstein 1998): the first
   labels should not all be alike. Each cluster has an *evidence profile*, the
   contribution of every evidence kind to its score (the same vector ``clusters.jsonl``
   shows as ``evidence``), and the batch is built greedily, the next pick's priority
   scaled by ``1 - diversity * max cosine similarity`` to the profiles already picked. A
   batch that covers several kinds of evidence gives the cross-validation of the residual
   examples of different groups (a residual is only kept when it wins on held-out
   groups, see :func:`linkage.score.labels.choose_C`).

Uncertainty alone never asks about the clusters the score is surest of, and a residual
needs labelled farms as well as legit groups (the cross-validation keeps none with
fewer than two farm groups); the top of the ranking is also where blocks happen and
where AP is decided. So a share :data:`TOP_SHARE` of the slots (the first, then evenly
spread) goes to the highest-scored clusters not yet labelled: mixing the highest-risk
cases into exploratory sampling is what worked best for fraud analysts' labels in
practice (Carcillo et al., "Streaming active learning strategies for real-life credit
card fraud detection", 2018). On own worlds (scale 0.1, seed 2), uncertainty with a
mere floor under it labelled 20 groups and met one farm campaign.

Clusters already labelled (any member with an analyst verdict, or a verdict on the
cluster itself) are left out: their label is known. The queue is deterministic: ties
are broken by cluster id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DIVERSITY",
    "clusters_from_records",
    "clusters_from_scores",
    "labelled_clusters",
    "queue_from_run",
    "rank_clusters",
    "read_feedback",
    "review_queue",
]

#: Share of the queue's slots given to the highest-scored clusters, however sure their score.
TOP_SHARE = 0.4
#: Weight of the diversity term (0 = pure uncertainty x impact, 1 = never repeat a profile).
DIVERSITY = 0.5
_COLUMNS = ("rank", "cluster_id", "size", "score", "level", "priority", "uncertainty", "reason")


def _profile_matrix(profiles: Sequence[Mapping[str, float]]) -> np.ndarray:
    kinds = sorted({k for p in profiles for k in p})
    M = np.array([[float(p.get(k, 0.0)) for k in kinds] for p in profiles], dtype=float)
    if M.size == 0:
        return np.zeros((len(profiles), 1))
    M = np.where(np.isfinite(M), M, 0.0)
    norm = np.linalg.norm(M, axis=1, keepdims=True)
    return np.divide(M, norm, out=np.zeros_like(M), where=norm > 0)


def rank_clusters(
    clusters: pd.DataFrame,
    *,
    labelled: Iterable[str] = (),
    k: int = 20,
    diversity: float = DIVERSITY,
    top_share: float = TOP_SHARE,
) -> pd.DataFrame:
    """The queue from a cluster table: ``cluster_id, size, score`` (+ ``level``, ``profile``).

    ``profile`` is a mapping evidence kind -> contribution (nats) per cluster (missing:
    no diversity term for it). A share ``top_share`` of the slots (the first, then evenly
    spread) goes to the highest-scored cluster not yet in the queue; the others by
    priority. Returns at most ``k`` rows, best first, with the columns
    ``rank, cluster_id, size, score, level, priority, uncertainty, reason``.
    """
    if not 0 <= diversity <= 1:
        raise ValueError(f"diversity must be in [0, 1] (got {diversity})")
    if not 0 <= top_share <= 1:
        raise ValueError(f"top_share must be in [0, 1] (got {top_share})")
    done = {str(c) for c in labelled}
    c = clusters.copy()
    c["cluster_id"] = c["cluster_id"].astype(str)
    c = c.loc[~c["cluster_id"].isin(done)]
    c = c.loc[c["size"].astype(float) >= 1]
    if c.empty or k <= 0:
        return pd.DataFrame(columns=list(_COLUMNS))
    c = c.sort_values(["score", "cluster_id"], ascending=[False, True], kind="stable")
    c = c.reset_index(drop=True)
    p = np.clip(c["score"].to_numpy(dtype=float), 0.0, 1.0)
    u = 4.0 * p * (1.0 - p)
    impact = np.log1p(c["size"].to_numpy(dtype=float))
    position = 1.0 / np.log2(2.0 + np.arange(len(c)))
    prio = u * impact * position
    profiles = list(c["profile"]) if "profile" in c.columns else [{} for _ in range(len(c))]
    profiles = [dict(x) if isinstance(x, Mapping) else {} for x in profiles]
    P = _profile_matrix(profiles)
    picked: list[int] = []
    taken: list[float] = []
    maxsim = np.zeros(len(c))
    avail = np.ones(len(c), dtype=bool)
    why: list[str] = []
    for slot in range(min(k, len(c))):
        adj = prio * (1.0 - diversity * maxsim)
        cand = np.where(avail)[0]
        if math.ceil((slot + 1) * top_share) > math.ceil(slot * top_share):
            i = int(cand[0])  # the top of the ranking (rows are in score order)
            why.append("top of the ranking")
        else:
            i = int(cand[np.argmax(adj[cand])])  # first max: ties go to the higher score, id
            why.append("uncertain")
        picked.append(i)
        taken.append(float(adj[i]))
        avail[i] = False
        maxsim = np.maximum(maxsim, np.clip(P @ P[i], 0.0, 1.0))
    out = c.iloc[picked].copy()
    out["priority"] = taken
    out["uncertainty"] = u[picked]
    out["reason"] = [
        f"{w}: " + _reason(profiles[i], float(p[i]), int(c["size"].iloc[i]))
        for w, i in zip(why, picked, strict=True)
    ]
    if "level" not in out.columns:
        out["level"] = ""
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[list(_COLUMNS)].reset_index(drop=True)


def _reason(profile: Mapping[str, float], score: float, size: int) -> str:
    top = sorted(profile.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:2]
    ev = ", ".join(f"{k} {v:+.2f}" for k, v in top) if top else "no evidence"
    return f"score {score:.2f} (uncertainty {4 * score * (1 - score):.2f}), {size} accounts; {ev}"


# -- cluster tables from the places clusters live ------------------------------------


def _evidence_profile(evidence: Iterable[Mapping[str, Any]] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in evidence or []:
        kind = str(e.get("kind", ""))
        if not kind or kind == "feedback":
            continue
        try:
            out[kind] = out.get(kind, 0.0) + float(e.get("contribution") or 0.0)
        except (TypeError, ValueError):
            continue
    return out


def clusters_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The cluster table of ``clusters.jsonl`` records (or the store's cluster rows)."""
    rows = [
        {
            "cluster_id": str(r["cluster_id"]),
            "size": int(r.get("size") or 0),
            "score": float(r.get("score") or 0.0),
            "level": str(r.get("level") or ""),
            "profile": _evidence_profile(r.get("evidence")),
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=["cluster_id", "size", "score", "level", "profile"])


def clusters_from_scores(scores: Any, model: Any) -> pd.DataFrame:
    """The cluster table of an in-memory scoring (:class:`~linkage.score.scoring.Scores`).

    The evidence profile is the members' mean contribution per evidence kind, exactly
    as the explain stage writes it into ``clusters.jsonl``.
    """
    from linkage.score.features import EVIDENCE_KIND

    acc = scores.accounts
    cid = acc["cluster_id"].astype("string")
    ok = cid.notna().to_numpy()
    kinds = [EVIDENCE_KIND.get(f, "other") for f in model.features]
    C = pd.DataFrame(scores.contributions[ok], columns=list(model.features))
    by_kind = C.T.groupby(kinds).sum().T  # accounts x kinds
    by_kind["cluster_id"] = cid[ok].to_numpy()
    mean = by_kind.groupby("cluster_id", sort=True).mean()
    cl = scores.clusters.assign(cluster_id=scores.clusters["cluster_id"].astype(str))
    prof = mean.reindex(cl["cluster_id"])
    cl = cl.assign(profile=[dict(zip(prof.columns, row, strict=True)) for row in prof.to_numpy()])
    return cl[["cluster_id", "size", "score", "level", "profile"]].reset_index(drop=True)


def labelled_clusters(
    cluster_of: pd.Series, feedback: pd.DataFrame | None, *, verdicts: Iterable[str] | None = None
) -> set[str]:
    """Clusters with a verdict: on a member account (``account_id, verdict``) or on the
    cluster itself (``target_type == "cluster"``, ``target_id``). ``cluster_of``: account
    id -> cluster id. ``verdicts`` restricts which verdicts count (default: any)."""
    out: set[str] = set()
    if feedback is None or feedback.empty:
        return out
    fb = feedback
    if verdicts is not None and "verdict" in fb.columns:
        fb = fb.loc[fb["verdict"].isin(list(verdicts))]
    if "target_type" in fb.columns and "target_id" in fb.columns:
        out |= set(fb.loc[fb["target_type"] == "cluster", "target_id"].astype(str))
        acc = fb.loc[fb["target_type"] == "account", "target_id"]
    elif "account_id" in fb.columns:
        acc = fb["account_id"]
    else:
        acc = pd.Series(dtype=str)
    cl = pd.Series(cluster_of)
    cl.index = cl.index.astype(str)
    hit = cl.reindex(acc.dropna().astype(str).unique()).dropna()
    out |= {str(x) for x in hit}
    return out


def review_queue(
    scores: Any,
    model: Any,
    *,
    labelled: Iterable[str] = (),
    feedback: pd.DataFrame | None = None,
    k: int = 20,
    diversity: float = DIVERSITY,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """The queue of an in-memory scoring: :func:`rank_clusters` on
    :func:`clusters_from_scores`, leaving out ``labelled`` clusters, clusters with a
    verdict in ``feedback`` and ``exclude``."""
    table = clusters_from_scores(scores, model)
    acc = scores.accounts.dropna(subset=["cluster_id"])
    cluster_of = pd.Series(acc["cluster_id"].astype(str).to_numpy(), index=acc["account_id"])
    done = {str(x) for x in labelled} | {str(x) for x in exclude}
    done |= labelled_clusters(cluster_of, feedback)
    return rank_clusters(table, labelled=done, k=k, diversity=diversity)


def read_feedback(path: str | Path) -> pd.DataFrame:
    """A feedback file (CSV, CSV.gz, JSONL or Parquet): ``account_id, verdict`` rows, or
    the store's ``target_type, target_id, verdict`` rows (``ts`` optional)."""
    from linkage.errors import LinkageError

    p = Path(path)
    if not p.is_file():
        raise LinkageError(f"feedback file {p} not found")
    name = p.name.lower()
    try:
        if name.endswith(".parquet"):
            fb = pd.read_parquet(p)
        elif name.endswith((".jsonl", ".json")):
            fb = pd.read_json(p, lines=name.endswith(".jsonl"), dtype=False)
        else:
            fb = pd.read_csv(p, dtype="string")
    except Exception as exc:  # any parser error is the user's file, not a bug
        raise LinkageError(f"cannot read feedback file {p}: {exc}") from None
    cols = set(fb.columns)
    if "verdict" not in cols or not ("account_id" in cols or {"target_type", "target_id"} <= cols):
        raise LinkageError(
            f"feedback file {p} needs the columns account_id, verdict (or target_type, "
            f"target_id, verdict); it has {sorted(cols)}"
        )
    return fb


def queue_from_run(
    run: Any, *, feedback: pd.DataFrame | None = None, k: int = 20, diversity: float = DIVERSITY
) -> tuple[pd.DataFrame, set[str]]:
    """The queue of a run directory (:class:`linkage.store.Run`): ``(queue, labelled)``."""
    table = clusters_from_records(run.clusters)
    acc = run.accounts.dropna(subset=["cluster_id"])
    cluster_of = pd.Series(
        acc["cluster_id"].astype(str).to_numpy(), index=acc["account_id"].astype(str).to_numpy()
    )
    done = labelled_clusters(cluster_of, feedback) & set(table["cluster_id"])
    return rank_clusters(table, labelled=done, k=k, diversity=diversity), done
