"""Pure-ASGI middlewares: request metrics and the request-body size limit."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkage.api.errors import error_body
from linkage.api.metrics import Metrics


class MetricsMiddleware:
    """Counts requests and times them, labelled by the matched route template.

    Every response carries ``Server-Timing: app;dur=<ms>``: the service's own time from
    receiving the request to starting the response (the W3C header browsers and load
    tools read), so a latency target can be checked without the client's share of a
    shared machine.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                dur_ms = (time.perf_counter() - start) * 1e3
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={dur_ms:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.inc(
                "linkage_http_requests_total",
                {"method": method, "route": path, "status": str(status[0])},
            )
            self.metrics.observe(
                "linkage_http_request_duration_seconds",
                time.perf_counter() - start,
                {"method": method, "route": path},
            )


def _route_template(scope: Scope) -> str:
    """The matched route's full path template (bounded label cardinality); ``unmatched`` if none."""
    # recent FastAPI keeps nested routers and records the full template here
    fastapi_scope = scope.get("fastapi")
    ctx = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    path = getattr(ctx, "path", None)
    if path:
        return str(path)
    route = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def duplicate_json_key(body: bytes) -> str | None:
    """The first key that appears twice in one JSON object of ``body`` (None: none, or
    not JSON at all — the app reports that)."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return str(exc.args[0])
    except (ValueError, RecursionError):
        return None
    return None


def _is_json(scope: Scope) -> bool:
    for k, v in scope.get("headers", ()):
        if k == b"content-type":
            ct = v.split(b";", 1)[0].strip().lower()
            return ct == b"application/json" or ct.endswith(b"+json")
    return False


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413 and the error body,
    and JSON bodies with a key repeated in one object with 422 (``duplicate_key``:
    which value would win is parser-dependent, so neither is taken).

    Declared ``Content-Length`` is checked first; bodies without one (chunked)
    are buffered up to the limit and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                "payload_too_large",
                f"request body larger than {self.max_bytes} bytes",
                {"max_bytes": self.max_bytes},
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if body and _is_json(scope):
            dup = duplicate_json_key(body)
            if dup is not None:
                await _send_json(
                    send,
                    422,
                    error_body(
                        "validation_error",
                        "request is invalid",
                        [
                            {
                                "loc": ["body", dup],
                                "msg": f"duplicate key {dup!r} in a JSON object",
                                "type": "duplicate_key",
                            }
                        ],
                    ),
                )
                return
        sent = [False]

        async def replay() -> Message:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
