"""FastAPI dependencies: the store, the signup service, the metrics and API-key auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.metrics import Metrics
from api.scoring import SignupService
from linkage.store.db import ApiKey, Store

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="lk_<key id>_<secret>",
    description="API key created with `linkage keys create --scope …`; scopes: "
    "`read` (GET), `score` (signups), `feedback`, `admin` (all).",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# The getters are ``async`` so FastAPI calls them inline instead of in the threadpool.
async def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store


async def get_signup_service(request: Request) -> SignupService:
    """The app's signup scoring service."""
    return request.app.state.signups


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics registry."""
    return request.app.state.metrics


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits a request only with a valid key holding ``scope``.

    401 without a key or with an unknown / revoked one; 403 with a key lacking the scope.
    """

    async def dependency(
        creds: HTTPAuthorizationCredentials | None = Security(bearer),
        store: Store = Depends(get_store),
    ) -> ApiKey:
        if creds is None or not creds.credentials:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send `Authorization: Bearer <key>`",
                headers=_CHALLENGE,
            )
        token = creds.credentials
        if store.key_is_cached(token):
            key = store.verify_key(token)  # one indexed row read, no scrypt
        else:
            key = await run_in_threadpool(store.verify_key, token)  # scrypt: off the event loop
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)
        if not key.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"this key lacks the `{scope}` scope",
                {"required_scope": scope, "key_scopes": sorted(key.scopes)},
            )
        return key

    dependency.__name__ = f"require_{scope}"
    return dependency
