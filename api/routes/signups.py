"""``POST /v1/signups/score``: signup verification within milliseconds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError

from linkage.api.deps import MetricsDep, SignupServiceDep, SignupWriterDep, StoreDep, require_scope
from linkage.api.errors import ApiError
from linkage.api.metrics import Metrics
from linkage.api.routes import AUTH_ERRORS, error_responses
from linkage.api.schemas import SignupIn, SignupScore
from linkage.api.scoring import keep_stricter
from linkage.errors import StoreError

log = logging.getLogger("linkage.api.signups")
router = APIRouter(tags=["signups"], dependencies=[Depends(require_scope("score"))])


def _not_recorded(exc: Exception, metrics: Metrics) -> ApiError:
    """503 for a decision the store could not take; logs the store's reason only (the
    driver's message, never the statement's parameters: they hold the signup's data)."""
    metrics.inc("linkage_signup_errors_total", {"stage": "store"})
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    log.error("could not record a signup decision (%s): %s", exc.__class__.__name__, reason)
    return ApiError(
        503, "unavailable", "store unavailable: the decision was not recorded", {"recorded": False}
    )


@router.post(
    "/signups/score",
    response_model=SignupScore,
    summary="Score one new signup against the known farms",
    responses=error_responses(400, 413, *AUTH_ERRORS),
)
async def score_signup(
    body: SignupIn,
    request: Request,
    service: SignupServiceDep,
    store: StoreDep,
    writer: SignupWriterDep,
    metrics: MetricsDep,
) -> SignupScore:
    """Score, level, the (stable) cluster it attaches to, evidence and identifier velocity.

    Every decision is recorded in the store (one INSERT, with the key that asked and
    the model's run) before it is answered.  If the model is not loaded or fails:
    `level: clear, degraded: true` (fail-open, default) or 503 (fail-closed).  If the
    decision cannot be recorded (store read-only, full, deleted): 503 `unavailable`
    with `details.recorded = false`, in either mode — never a 200 that was not kept,
    and the signup does not count in velocity.

    Velocity counts distinct account ids per identifier in the window on the server's
    clock; `created_at` is recorded as the client's claim and never moves the window.
    Scoring an `account_id` again adds a revision (history in the store and the audit):
    it can raise the decision, never lower it (`revision`, `previous_level`; only an
    analyst's verdict lowers it); a retry does not count twice in velocity.
    """
    # async, on the event loop: one indexed read and a few dictionary look-ups inline;
    # the INSERT goes to the writer thread (group commit, api.writer) and is awaited,
    # so no request thread ever waits for SQLite's write lock
    record = body.model_dump(mode="json")  # created_at: the client's claim, as sent (or null)
    now = datetime.now(UTC)
    try:
        previous = store.previous_decision(body.account_id)
    except (SQLAlchemyError, StoreError) as exc:
        raise _not_recorded(exc, metrics) from None
    out = keep_stricter(service.score(record, now=now), previous)
    try:
        await writer.record(
            {
                "account_id": out.account_id,
                "payload": record,
                "score": out.score,
                "level": out.level,
                "cluster_id": out.cluster_id,
                "evidence": out.evidence,
                "degraded": out.degraded,
                "created_at": now,
                "key_id": request.state.api_key.id,
                "run_id": out.run_id,
            }
        )
    except (SQLAlchemyError, StoreError) as exc:
        service.retract(out)
        raise _not_recorded(exc, metrics) from None
    metrics.inc(
        "linkage_signups_scored_total", {"level": out.level, "degraded": str(out.degraded).lower()}
    )
    return SignupScore(
        account_id=out.account_id,
        score=out.score,
        level=out.level,
        cluster_id=out.cluster_id,
        evidence=out.evidence,
        velocity=out.velocity,
        degraded=out.degraded,
        run_id=out.run_id,
        revision=out.revision,
        previous_level=out.previous_level,
    )
