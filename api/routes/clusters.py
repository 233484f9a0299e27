"""``GET /v1/clusters`` and ``GET /v1/clusters/{cluster_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from linkage.api.deps import StoreDep, require_scope
from linkage.api.errors import ApiError
from linkage.api.routes import AUTH_ERRORS, error_responses, page
from linkage.api.schemas import ClusterDetail, ClusterPage, ClusterSort, Level

router = APIRouter(tags=["clusters"], dependencies=[Depends(require_scope("read"))])


@router.get(
    "/clusters",
    response_model=ClusterPage,
    summary="List clusters of the latest run",
    responses=error_responses(*AUTH_ERRORS),
)
def list_clusters(
    store: StoreDep,
    level: Annotated[
        list[Level] | None,
        Query(description="keep these levels (repeat the parameter for several)"),
    ] = None,
    min_score: Annotated[
        float | None, Query(ge=0, le=1, description="minimum cluster score")
    ] = None,
    min_size: Annotated[
        int | None, Query(ge=1, le=1_000_000_000, description="minimum size")
    ] = None,
    sort: Annotated[ClusterSort, Query(description="sort key; `-` = descending")] = "-score",
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")] = 0,
) -> ClusterPage:
    """Clusters of the latest imported run, filtered, sorted and paged (with the total count)."""
    total, run_id, items = store.list_clusters(
        level=level, min_score=min_score, min_size=min_size, sort=sort, limit=limit, offset=offset
    )
    return ClusterPage.model_validate(
        {"run_id": run_id, **page(total, limit=limit, offset=offset, items=items)}
    )


@router.get(
    "/clusters/{cluster_id}",
    response_model=ClusterDetail,
    summary="One cluster: members, evidence, lineage, feedback",
    responses=error_responses(404, *AUTH_ERRORS),
)
def get_cluster(
    store: StoreDep,
    cluster_id: Annotated[str, Path(min_length=1, max_length=64, description="stable cluster id")],
    members_limit: Annotated[int, Query(ge=1, le=10_000, description="members returned")] = 1000,
    members_offset: Annotated[
        int, Query(ge=0, le=1_000_000_000, description="members skipped")
    ] = 0,
) -> ClusterDetail:
    """A cluster as last seen: members by score, evidence by contribution (with details), lineage."""
    c = store.get_cluster(cluster_id, members_limit=members_limit, members_offset=members_offset)
    if c is None:
        raise ApiError(404, "not_found", f"no cluster {cluster_id!r}", {"cluster_id": cluster_id})
    return ClusterDetail.model_validate(c)
