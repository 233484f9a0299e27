"""``GET /healthz`` (process alive) and ``GET /readyz`` (store reachable, model loaded)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import get_signup_service, get_store
from api.errors import ApiError
from api.routes import error_responses
from api.schemas import Health, Ready
from api.scoring import SignupService
from linkage.store.db import Store

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness", responses=error_responses(500))
async def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Ready, summary="Readiness", responses=error_responses(500, 503)
)
def readyz(
    store: Annotated[Store, Depends(get_store)],
    service: Annotated[SignupService, Depends(get_signup_service)],
) -> Ready:
    """Ready when the store answers and a signup model is loaded (503 otherwise, with the reason)."""
    store_ok = store.ping()
    if not (store_ok and service.loaded):
        raise ApiError(
            503,
            "not_ready",
            "service not ready",
            {"store": store_ok, "model": service.loaded, "reason": service.load_error},
        )
    return Ready(
        status="ready", store=True, model=True, run_id=service.run_id, run_path=service.run_path
    )
