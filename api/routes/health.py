"""``GET /healthz`` (process alive, open) and ``GET /readyz`` (store writable, schema current,
model loaded; details only for a key with the ``metrics`` scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from linkage.api.deps import SignupServiceDep, StoreDep, optional_key
from linkage.api.errors import ApiError
from linkage.api.routes import error_responses
from linkage.api.schemas import Health, Ready
from linkage.store.db import ApiKey

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness", responses=error_responses(500))
async def healthz() -> Health:
    """The process answers (open: no key, no details)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness",
    responses=error_responses(429, 500, 503),
)
def readyz(
    request: Request,
    store: StoreDep,
    service: SignupServiceDep,
    key: Annotated[ApiKey | None, Depends(optional_key)],
) -> Ready:
    """Ready when the store reads, is at the current schema revision and takes a write
    (a probe row is rewritten and committed), and a signup model is loaded; 503 otherwise.

    Without a key (or with one lacking the `metrics` scope) only the status is
    given, the call costs a read (the last write probe is reused while it is at most
    `ready_write_probe_seconds` old: at most one committed write per interval) and
    is limited per client address (`ready_anonymous_limit` per
    `ready_anonymous_window_seconds`, then 429 with Retry-After).  With a `metrics`
    key the write probe runs on every call and `details` says which check failed,
    the store error and the run.
    """
    show = key is not None and key.allows("metrics")
    settings = request.app.state.settings
    if not show:
        client = request.client.host if request.client else "unknown"
        wait = request.app.state.ready_limiter.hit(client)
        if wait is not None:
            raise ApiError(
                429,
                "too_many_requests",
                "too many readiness checks from this address; retry later",
                {"retry_after_seconds": wait},
                headers={"Retry-After": str(wait)},
            )
    check = store.check_ready(write_max_age=None if show else settings.ready_write_probe_seconds)
    details: dict[str, Any] = {
        "store": check,
        "model": service.loaded,
        "model_error": service.load_error,
        "run_id": service.run_id,
        "run_path": service.run_path,
        "replay_skipped": store.last_replay_skipped,
    }
    if not (check["ok"] and service.loaded):
        raise ApiError(503, "not_ready", "service not ready", details if show else None)
    return Ready(status="ready", details=details if show else None)
