"""``GET /v1/review-queue``: the clusters an analyst should label next.

The ranking is :func:`linkage.score.queue.rank_clusters` on the latest imported run
(the same function ``linkage review-queue RUN_DIR`` runs on the run directory), with
the clusters that already have a verdict (on the cluster or on a member) left out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from linkage.api.deps import StoreDep, require_scope
from linkage.api.routes import AUTH_ERRORS, error_responses
from linkage.score.queue import clusters_from_records, rank_clusters
from linkage.store.models import ClusterRow, MembershipRow, RunRow

router = APIRouter(tags=["clusters"], dependencies=[Depends(require_scope("read"))])


class QueueItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(description="1 = label this one first")
    cluster_id: str = Field(description="stable cluster id")
    source_id: str = Field(description="the cluster's id inside the run directory")
    size: int
    score: float = Field(description="cluster score in [0, 1]")
    level: str
    priority: float = Field(description="uncertainty x impact x rank, after the diversity term")
    uncertainty: float = Field(description="4 p (1 - p) of the cluster score")
    reason: str = Field(description="why it is in the queue: score, size, strongest evidence")


class ReviewQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: int | None = Field(description="run the clusters come from (latest import)")
    labelled: int = Field(description="clusters left out because they already have a verdict")
    items: list[QueueItem]


@router.get(
    "/review-queue",
    response_model=ReviewQueue,
    summary="Clusters to label next (learn fastest from analyst verdicts)",
    responses=error_responses(*AUTH_ERRORS),
)
def review_queue(
    store: StoreDep,
    top: Annotated[int, Query(ge=1, le=500, description="queue length")] = 20,
) -> ReviewQueue:
    """Clusters of the latest run by how much one verdict on them would teach the score:
    near the decision boundary, large, high in the ranking, and unlike the ones above them
    (see `linkage.score.queue`). Clusters with a verdict already are left out."""
    with store.engine.connect() as conn:
        run_id = conn.execute(select(func.max(RunRow.id))).scalar()
        if run_id is None:
            return ReviewQueue(run_id=None, labelled=0, items=[])
        rows = conn.execute(
            select(
                ClusterRow.cluster_id,
                ClusterRow.source_id,
                ClusterRow.size,
                ClusterRow.score,
                ClusterRow.level,
                ClusterRow.evidence,
            ).where(ClusterRow.run_id == run_id)
        ).all()
        fb = store.feedback_frame()
        done: set[str] = set()
        accounts = sorted(set(fb["account_id"].dropna().astype(str))) if len(fb) else []
        for i in range(0, len(accounts), 500):
            done |= set(
                conn.scalars(
                    select(MembershipRow.cluster_id).where(
                        MembershipRow.run_id == run_id,
                        MembershipRow.account_id.in_(accounts[i : i + 500]),
                        MembershipRow.cluster_id.is_not(None),
                    )
                )
            )
    # ranked by the run directory's own ids (ties break the same way as the CLI's)
    stable = {str(r.source_id): r.cluster_id for r in rows}
    source = {r.cluster_id: str(r.source_id) for r in rows}
    table = clusters_from_records(
        {
            "cluster_id": str(r.source_id),
            "size": r.size,
            "score": r.score,
            "level": r.level,
            "evidence": r.evidence,
        }
        for r in rows
    )
    done_src = {source[c] for c in done if c in source}
    q = rank_clusters(table, labelled=done_src, k=top)
    items = [
        QueueItem(
            rank=int(r.rank),
            cluster_id=str(stable[r.cluster_id]),
            source_id=str(r.cluster_id),
            size=int(r.size),
            score=float(r.score),
            level=str(r.level),
            priority=float(r.priority),
            uncertainty=float(r.uncertainty),
            reason=str(r.reason),
        )
        for r in q.itertuples(index=False)
    ]
    done = done_src
    return ReviewQueue(run_id=int(run_id), labelled=len(done), items=items)
