"""Read queries of the console that ``/v1`` has no route for (read-only, Core SQL).

* :func:`list_runs` — the imported runs, newest first;
* :func:`run_info` — one run's path, manifest and thresholds;
* :func:`queue` — clusters of a run for review, filtered by level and verdict
  status, ordered by how much the engine wants them labelled, paged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Subquery, and_, case, func, select

from linkage.settings import ScoreSettings
from linkage.store.models import ClusterRow, FeedbackRow, RunRow

__all__ = ["QUEUE_SORTS", "VERDICT_FILTERS", "list_runs", "queue", "run_info", "thresholds"]

#: ``uncertain``: scores nearest the review / block lines first (the clusters a
#: verdict teaches the engine most); the others sort by score or size.
QUEUE_SORTS = ("uncertain", "-score", "score", "-size")
#: ``none``: no verdict yet; ``any``: some verdict; else the latest verdict
VERDICT_FILTERS = ("none", "any", "confirmed_farm", "false_positive", "appeal_upheld")


def thresholds(settings: dict[str, Any] | None) -> tuple[float, float]:
    """(review, block) lines of a run's settings (the defaults when it has none)."""
    score = dict((settings or {}).get("score") or {})
    d = ScoreSettings()
    return (
        float(score.get("review_threshold", d.review_threshold)),
        float(score.get("block_threshold", d.block_threshold)),
    )


def list_runs(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The latest imported runs: id, path, imported_at, n_accounts, n_clusters."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunRow.id, RunRow.path, RunRow.imported_at, RunRow.n_accounts, RunRow.n_clusters)
            .order_by(RunRow.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "run_id": r.id,
            "path": r.path,
            "imported_at": r.imported_at.isoformat() if r.imported_at else None,
            "n_accounts": r.n_accounts,
            "n_clusters": r.n_clusters,
        }
        for r in rows
    ]


def run_info(engine: Engine, run_id: int | None = None) -> dict[str, Any] | None:
    """A run (default: the latest): id, path, manifest, review and block thresholds."""
    with engine.connect() as conn:
        if run_id is None:
            run_id = conn.execute(select(func.max(RunRow.id))).scalar()
            if run_id is None:
                return None
        r = conn.execute(
            select(RunRow.id, RunRow.path, RunRow.manifest, RunRow.settings).where(
                RunRow.id == run_id
            )
        ).first()
    if r is None:
        return None
    review, block = thresholds(r.settings or (r.manifest or {}).get("settings"))
    return {
        "run_id": r.id,
        "path": r.path,
        "manifest": r.manifest or {},
        "review_threshold": review,
        "block_threshold": block,
    }


def queue(
    engine: Engine,
    *,
    run_id: int | None = None,
    levels: Iterable[str] = ("review", "block"),
    verdict: str | None = None,
    sort: str = "uncertain",
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of a run's clusters for review (``run_id`` None = the latest run).

    Each item: ``cluster_id, size, score, level, top_evidence`` (its summary),
    ``verdict`` (latest on the cluster, or None), ``verdicts`` (how many) and
    ``distance`` (to the nearest of the review / block lines).
    """
    if sort not in QUEUE_SORTS:
        raise ValueError(f"sort must be one of {QUEUE_SORTS}")
    if verdict is not None and verdict not in VERDICT_FILTERS:
        raise ValueError(f"verdict must be one of {VERDICT_FILTERS}")
    info = run_info(engine, run_id)
    if info is None:
        return {"run_id": run_id, "total": 0, "items": [], "review_threshold": None}
    review, block = info["review_threshold"], info["block_threshold"]
    latest = _latest_verdicts()
    d_review = func.abs(ClusterRow.score - review)
    d_block = func.abs(ClusterRow.score - block)
    distance = case((d_review < d_block, d_review), else_=d_block).label("distance")
    where = and_(*_queue_conditions(info["run_id"], list(levels), verdict, latest))
    order = {
        "uncertain": (distance.asc(), ClusterRow.score.desc()),
        "-score": (ClusterRow.score.desc(),),
        "score": (ClusterRow.score.asc(),),
        "-size": (ClusterRow.size.desc(),),
    }[sort]
    base = ClusterRow.__table__.outerjoin(latest, latest.c.cid == ClusterRow.cluster_id)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(base).where(where)).scalar_one()
        rows = conn.execute(
            select(
                ClusterRow.cluster_id,
                ClusterRow.size,
                ClusterRow.score,
                ClusterRow.level,
                ClusterRow.evidence,
                latest.c.verdict,
                latest.c.n,
                distance,
            )
            .select_from(base)
            .where(where)
            .order_by(*order, ClusterRow.cluster_id.asc())
            .limit(limit)
            .offset(offset)
        ).all()
    return {
        "run_id": info["run_id"],
        "total": int(total),
        "limit": limit,
        "offset": offset,
        "review_threshold": review,
        "block_threshold": block,
        "items": [_queue_item(r) for r in rows],
    }


def _latest_verdicts() -> Subquery:
    """Per cluster with a verdict: its latest verdict and how many it has (``cid,
    verdict, n``)."""
    ranked = (
        select(
            FeedbackRow.target_id.label("cid"),
            FeedbackRow.verdict.label("verdict"),
            func.row_number()
            .over(
                partition_by=FeedbackRow.target_id,
                order_by=(FeedbackRow.ts.desc(), FeedbackRow.id.desc()),
            )
            .label("rn"),
            func.count().over(partition_by=FeedbackRow.target_id).label("n"),
        )
        .where(FeedbackRow.target_type == "cluster")
        .subquery()
    )
    return select(ranked.c.cid, ranked.c.verdict, ranked.c.n).where(ranked.c.rn == 1).subquery()


def _queue_conditions(
    run_id: int, levels: list[str], verdict: str | None, latest: Subquery
) -> list[ColumnElement[bool]]:
    """The queue's filters: the run, its ``levels`` (all when empty) and the verdict
    status (:data:`VERDICT_FILTERS`, None = any status)."""
    conds: list[ColumnElement[bool]] = [ClusterRow.run_id == run_id]
    if levels:
        conds.append(ClusterRow.level.in_(levels))
    if verdict == "none":
        conds.append(latest.c.verdict.is_(None))
    elif verdict == "any":
        conds.append(latest.c.verdict.is_not(None))
    elif verdict is not None:
        conds.append(latest.c.verdict == verdict)
    return conds


def _queue_item(r: Row[Any]) -> dict[str, Any]:
    """One queue row as an item, its strongest evidence's summary as ``top_evidence``."""
    ev = [e for e in (r.evidence or []) if isinstance(e, dict)]
    top = max(ev, key=lambda e: float(e.get("contribution") or 0), default=None)
    return {
        "cluster_id": r.cluster_id,
        "size": r.size,
        "score": r.score,
        "level": r.level,
        "top_evidence": str(top.get("summary", "")) if top else "",
        "verdict": r.verdict,
        "verdicts": int(r.n or 0),
        "distance": round(float(r.distance), 6),
    }
