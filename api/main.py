"""The FastAPI application factory: ``create_app(settings)``.

Run with ``linkage serve`` or ``uvicorn --factory linkage.api.main:create_app``
(settings then come from ``LINKAGE_*`` environment variables).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from linkage.api.config import ServiceSettings
from linkage.api.docs_ui import install_docs
from linkage.api.errors import install_error_handlers
from linkage.api.metrics import service_metrics
from linkage.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from linkage.api.ratelimit import FailureLimiter, RequestLimiter
from linkage.api.routes import (
    accounts,
    audit,
    clusters,
    feedback,
    health,
    metrics,
    respond,
    review_queue,
    signups,
)
from linkage.api.routes import share as share_routes
from linkage.api.scoring import SignupService
from linkage.api.writer import SignupWriter
from linkage.store.db import Store

log = logging.getLogger("linkage.api")

DESCRIPTION = """\
Graph-based account linkage: coordinated account farms (LLM distillation /
model-extraction farms) among an API provider's accounts.

Every `/v1` route needs `Authorization: Bearer <key>` (create one with
`linkage keys create --scope read`). Errors always have the body
`{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app: open (and migrate) the store, load the signup model, mount routes."""
    settings = settings or ServiceSettings()
    store = Store(settings.store_url)
    registry = service_metrics()
    signup_service = SignupService(store, settings, registry)
    signup_service.load()
    signup_writer = SignupWriter(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        signup_writer.close()
        store.close()

    app = FastAPI(
        title="linkage",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from packaged assets (works offline)
        redoc_url=None,  # ReDoc only loads from a CDN
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = registry
    app.state.signups = signup_service
    app.state.signup_writer = signup_writer
    app.state.auth_by_client = FailureLimiter(
        settings.auth_fail_limit, settings.auth_fail_window_seconds
    )
    app.state.auth_by_key = FailureLimiter(
        settings.auth_fail_limit, settings.auth_fail_window_seconds
    )
    app.state.ready_limiter = RequestLimiter(
        settings.ready_anonymous_limit, settings.ready_anonymous_window_seconds
    )
    install_error_handlers(app)
    install_docs(app)

    v1 = APIRouter(prefix="/v1")
    # respond first: its `/accounts/{id:path}/action` must win over `/accounts/{id:path}`
    for module in (respond, clusters, accounts, signups, feedback, audit):
        v1.include_router(module.router)
    v1.include_router(share_routes.router)  # POST /v1/share/export (admin)
    v1.include_router(review_queue.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # the review console (/console): imported beside its one use
    from linkage.api.routes import console as console_routes

    app.include_router(console_routes.router)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=registry)  # outermost: counts 413s too
    return app
