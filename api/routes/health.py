"""``GET /healthz`` (process alive, open) and ``GET /readyz`` (store writable, schema current,
model loaded; details only for a key with the ``metrics`` scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from api.deps import get_signup_service, get_store, optional_key
from api.errors import ApiError
from api.routes import error_responses
from api.schemas import Health, Ready
from api.scoring import SignupService
from linkage.store.db import ApiKey, Store

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
    store: Annotated[Store, Depends(get_store)],
    service: Annotated[SignupService, Depends(get_signup_service)],
    key: Annotated[ApiKey | None, Depends(optional_key)],
) -> Ready:
    """Ready when the store reads, is at the current schema revision and takes a write
    (a probe row is rewritten and committed), and a signup model is loaded; 503 otherwise.

    Without a key (or with one lacking the `metrics` scope) only the status is
    given; with it, `details` says which check failed, the store error and the run.
    """
    check = store.check_ready()
    details: dict[str, Any] = {
        "store": check,
        "model": service.loaded,
        "model_error": service.load_error,
        "run_id": service.run_id,
        "run_path": service.run_path,
        "replay_skipped": store.last_replay_skipped,
    }
    show = key is not None and key.allows("metrics")
    if not (check["ok"] and service.loaded):
        raise ApiError(503, "not_ready", "service not ready", details if show else None)
    return Ready(status="ready", details=details if show else None)
