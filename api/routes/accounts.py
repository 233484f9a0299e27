"""``GET /v1/accounts/{account_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from linkage.api.deps import StoreDep, require_scope
from linkage.api.errors import ApiError
from linkage.api.routes import AUTH_ERRORS, error_responses
from linkage.api.schemas import AccountDetail

router = APIRouter(tags=["accounts"], dependencies=[Depends(require_scope("read"))])


@router.get(
    "/accounts/{account_id:account_id}",
    response_model=AccountDetail,
    summary="One account: score, level, cluster, evidence, feedback",
    responses=error_responses(404, *AUTH_ERRORS),
)
def get_account(
    store: StoreDep,
    account_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=256,
            description="account id as stored; may contain `/` (sent as is or as %2F). An id "
            "ending in `/action` is read by the action route",
        ),
    ],
) -> AccountDetail:
    """The account as last seen in a run (or only at signup), with the evidence that concerns
    it and the verdicts that apply (its own, else its cluster's: `verdict_source`).
    `effective_level` is the level after the verdict, the same as the action route's."""
    a = store.get_account(account_id)
    if a is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}", {"account_id": account_id})
    return AccountDetail.model_validate(a)
