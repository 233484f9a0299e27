"""``POST /v1/feedback``: analysts' verdicts on accounts and clusters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from linkage.api.deps import MetricsDep, StoreDep, require_scope
from linkage.api.errors import ApiError
from linkage.api.metrics import Metrics
from linkage.api.routes import AUTH_ERRORS, error_responses
from linkage.api.schemas import FeedbackIn, FeedbackOut
from linkage.store.db import Store

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_scope("feedback"))])


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    status_code=201,
    summary="Record a verdict on an account or a cluster",
    responses={
        200: {
            "model": FeedbackOut,
            "description": "the same verdict (verdict, who, why, key, client ts) is already the "
            "latest on this target: nothing added, that verdict returned",
        },
        **error_responses(400, 404, 413, *AUTH_ERRORS),
    },
)
def post_feedback(
    body: FeedbackIn,
    request: Request,
    response: Response,
    store: StoreDep,
    metrics: MetricsDep,
) -> FeedbackOut:
    """`confirmed_farm`, `false_positive` or `appeal_upheld`, with who and why.

    Recorded at server time with the id of the key that posted it (`who` is a label).
    Retrying the same verdict returns it with 200 instead of adding a row. 201 means
    committed; a store that cannot write answers 503 and nothing is recorded.

    The next `linkage detect --store URL` reads it: a confirmed farm's identifiers
    weigh more; a false positive / upheld appeal keeps the account clear.
    """
    out, created = record_feedback(store, metrics, body, key_id=request.state.api_key.id)
    if not created:
        response.status_code = 200
    return out


def record_feedback(
    store: Store, metrics: Metrics, body: FeedbackIn, *, key_id: str
) -> tuple[FeedbackOut, bool]:
    """Record ``body`` at server time with ``key_id`` (404 for an unknown target); returns
    the verdict and whether a row was added (a retried same verdict adds none). Shared by
    ``POST /v1/feedback`` and the review console."""
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
        key_id=key_id,
    )
    created = bool(f.pop("created"))
    if created:
        metrics.inc("linkage_feedback_total", {"verdict": body.verdict})
    return FeedbackOut.model_validate(f), created
