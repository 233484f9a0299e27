"""``POST /v1/feedback``: analysts' verdicts on accounts and clusters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import get_metrics, get_store, require_scope
from api.errors import ApiError
from api.metrics import Metrics
from api.routes import AUTH_ERRORS, error_responses
from api.schemas import FeedbackIn, FeedbackOut
from linkage.store.db import Store

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_scope("feedback"))])


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    status_code=201,
    summary="Record a verdict on an account or a cluster",
    responses=error_responses(400, 404, 413, *AUTH_ERRORS),
)
def post_feedback(
    body: FeedbackIn,
    store: Annotated[Store, Depends(get_store)],
    metrics: Annotated[Metrics, Depends(get_metrics)],
) -> FeedbackOut:
    """`confirmed_farm`, `false_positive` or `appeal_upheld`, with who and why.

    The next `linkage detect --store URL` reads it: a confirmed farm's identifiers
    weigh more; a false positive / upheld appeal keeps the account clear.
    """
    if not store.target_exists(body.target_type, body.target_id):
        raise ApiError(
            404,
            "not_found",
            f"no {body.target_type} {body.target_id!r}",
            {"target_type": body.target_type, "target_id": body.target_id},
        )
    f = store.add_feedback(
        target_type=body.target_type,
        target_id=body.target_id,
        verdict=body.verdict,
        who=body.who,
        why=body.why,
        ts=body.ts,
    )
    metrics.inc("linkage_feedback_total", {"verdict": body.verdict})
    return FeedbackOut.model_validate(f)
