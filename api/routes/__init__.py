"""One module per resource; shared OpenAPI error declarations."""

from __future__ import annotations

from typing import Any

from starlette.convertors import Convertor, register_url_convertor

from linkage.api.schemas import ErrorBody


class _AccountIdConvertor(Convertor[str]):
    """An account id in a path: any characters, ``/`` and a trailing newline included.

    Starlette's ``path`` convertor is ``.*``: with the route's ``$`` it would read
    ``/v1/accounts/abc%0A`` as account ``abc`` (``$`` matches before a final newline)."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("account_id", _AccountIdConvertor())

_DESCRIPTIONS = {
    400: "the body cannot be decoded (not UTF-8 text)",
    401: "missing, invalid or revoked API key",
    403: "the key lacks the required scope",
    404: "not found",
    413: "request body too large",
    422: "invalid request (details lists each invalid field; also duplicate JSON keys and "
    "timestamps that are not ISO 8601 date-times in years 2000..2099)",
    429: "too many failed API-key checks from this client or for this key id, or too many "
    "anonymous /readyz calls from this client (Retry-After)",
    500: "unexpected error (logged server-side; no traceback in the body)",
    503: "store or model unavailable; for writes: nothing was recorded",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries with the error body for ``codes``."""
    return {c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in codes}


#: errors any authenticated route can return
AUTH_ERRORS = (401, 403, 422, 429, 500, 503)


def page(total: int, *, limit: int, offset: int, items: list[Any]) -> dict[str, Any]:
    """The fields of one page of a paged list route: ``total`` (items matching),
    ``limit``, ``offset``, ``next_offset`` (None on the last page) and ``items``."""
    nxt = offset + limit if offset + limit < total else None
    return {"total": total, "limit": limit, "offset": offset, "next_offset": nxt, "items": items}


def json_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Like :func:`error_responses`, with the JSON media type spelled out (for routes whose
    success response is not JSON, e.g. ``/metrics``)."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        c: {"description": _DESCRIPTIONS[c], "content": {"application/json": {"schema": ref}}}
        for c in codes
    }
