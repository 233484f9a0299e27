"""FastAPI dependencies: the store, the signup service, the metrics and API-key auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from linkage.api.errors import ApiError
from linkage.api.metrics import Metrics
from linkage.api.ratelimit import FailureLimiter
from linkage.api.scoring import SignupService
from linkage.api.writer import SignupWriter
from linkage.store.db import SLOW, ApiKey, Store, parse_token

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="lk_<key id>_<secret>",
    description="API key created with `linkage keys create --scope …`; scopes: "
    "`read` (GET), `score` (signups), `feedback`, `metrics` (/metrics, /readyz details), "
    "`respond` (account actions, watermark detection), "
    "`admin` (all, and the audit trail).",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# The getters are ``async`` so FastAPI calls them inline instead of in the threadpool.
async def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store


async def get_signup_service(request: Request) -> SignupService:
    """The app's signup scoring service."""
    return request.app.state.signups


async def get_signup_writer(request: Request) -> SignupWriter:
    """The app's signup decision writer (group commit)."""
    return request.app.state.signup_writer


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics registry."""
    return request.app.state.metrics


# Route parameters typed with these get the app's object (one spelling for every route).
#: the app's store (:func:`get_store`)
StoreDep = Annotated[Store, Depends(get_store)]
#: the app's signup scoring service (:func:`get_signup_service`)
SignupServiceDep = Annotated[SignupService, Depends(get_signup_service)]
#: the app's metrics registry (:func:`get_metrics`)
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
#: the app's signup decision writer (:func:`get_signup_writer`)
SignupWriterDep = Annotated[SignupWriter, Depends(get_signup_writer)]


def _too_many(retry_after: int, metrics: Metrics, why: str) -> ApiError:
    metrics.inc("linkage_auth_failures_total", {"outcome": f"limited_{why}"})
    return ApiError(
        429,
        "too_many_requests",
        "too many failed API-key checks; retry later",
        {"retry_after_seconds": retry_after, "limited": why},
        headers={"Retry-After": str(retry_after)},
    )


async def authenticate(request: Request, token: str) -> ApiKey:
    """The key ``token`` names, or 401 / 429 (failed checks counted per client and key id)."""
    state = request.app.state
    store: Store = state.store
    by_client: FailureLimiter = state.auth_by_client
    by_key: FailureLimiter = state.auth_by_key
    metrics: Metrics = state.metrics
    client = request.client.host if request.client else "unknown"
    wait = by_client.retry_after(client)
    if wait is not None:
        raise _too_many(wait, metrics, "client")
    # one indexed row read + one HMAC: inline (no threadpool hop); legacy scrypt keys in a thread
    key = store.verify_key_fast(token)
    if key == SLOW:
        parsed = parse_token(token)
        wait = by_key.retry_after(parsed[0]) if parsed else None
        if wait is not None:  # no scrypt for a key id under attack
            by_client.fail(client)
            raise _too_many(wait, metrics, "key")
        key = await run_in_threadpool(store.verify_key, token)
    if isinstance(key, ApiKey):
        return key
    by_client.fail(client)
    parsed = parse_token(token)
    if parsed is not None:
        wait = by_key.retry_after(parsed[0])
        if wait is not None:
            raise _too_many(wait, metrics, "key")
        by_key.fail(parsed[0])
    metrics.inc("linkage_auth_failures_total", {"outcome": "invalid"})
    raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits a request only with a valid key holding ``scope``.

    401 without a key or with an unknown / revoked one; 403 with a key lacking the
    scope; 429 after too many failed checks (``api.ratelimit``).  The key is left
    in ``request.state.api_key`` (routes record its id with what they write).
    """

    async def dependency(
        request: Request,
        creds: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> ApiKey:
        if creds is None or not creds.credentials:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send `Authorization: Bearer <key>`",
                headers=_CHALLENGE,
            )
        return admit(request, await authenticate(request, creds.credentials), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


def admit(request: Request, key: ApiKey, scope: str) -> ApiKey:
    """``key`` if it holds ``scope`` (403 otherwise), left in ``request.state.api_key``;
    the one scope check of the Bearer routes and the console's session routes."""
    if not key.allows(scope):
        raise ApiError(
            403,
            "forbidden",
            f"this key lacks the `{scope}` scope",
            {"required_scope": scope, "key_scopes": sorted(key.scopes)},
        )
    request.state.api_key = key
    return key


async def optional_key(request: Request) -> ApiKey | None:
    """A valid key if a Bearer key is sent, else None (never 401; 429 still applies).

    Reads the header itself so the route's OpenAPI does not declare auth as required.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return await authenticate(request, token.strip())
    except ApiError as exc:
        if exc.status == 429:
            raise
        return None
