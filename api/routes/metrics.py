"""``GET /metrics``: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from linkage.api.deps import MetricsDep, SignupServiceDep, require_scope
from linkage.api.routes import AUTH_ERRORS, json_error_responses

router = APIRouter(tags=["health"], dependencies=[Depends(require_scope("metrics"))])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **json_error_responses(*AUTH_ERRORS),
    },
)
def metrics(
    registry: MetricsDep,
    service: SignupServiceDep,
) -> PlainTextResponse:
    """Request counts and latencies per route, signups scored by level, model state.

    Needs a key with the `metrics` (or `admin`) scope."""
    registry.set("linkage_model_loaded", 1.0 if service.loaded else 0.0)
    return PlainTextResponse(registry.render(), media_type=CONTENT_TYPE)
