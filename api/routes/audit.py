"""``GET /v1/audit``: who decided what, when, from which run (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from linkage.api.deps import StoreDep, require_scope
from linkage.api.routes import AUTH_ERRORS, error_responses, page
from linkage.api.schemas import AuditPage

router = APIRouter(tags=["audit"], dependencies=[Depends(require_scope("admin"))])


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Audit trail: verdicts, signup decisions and key changes, with who made them",
    responses=error_responses(*AUTH_ERRORS),
)
def get_audit(
    store: StoreDep,
    kind: Annotated[
        Literal["feedback", "signup", "admin"] | None,
        Query(description="only verdicts, only signups, or only admin events (keys)"),
    ] = None,
    key_id: Annotated[
        str | None, Query(min_length=1, max_length=32, description="made with this key")
    ] = None,
    target_id: Annotated[
        str | None, Query(min_length=1, max_length=256, description="account or cluster id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")] = 0,
) -> AuditPage:
    """Newest first: each verdict (`who` is the client's label; `key_id` is who it really
    was), each signup decision, with server time and the run it came from, and each
    administrative event: API key created / revoked, watermark key created / rotated."""
    total, items = store.audit(
        kind=kind, key_id=key_id, target_id=target_id, limit=limit, offset=offset
    )
    return AuditPage.model_validate(page(total, limit=limit, offset=offset, items=items))
