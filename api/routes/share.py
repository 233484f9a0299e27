"""``POST /v1/share/export`` (scope ``admin``): the latest run's farm indicators as STIX 2.1.

The same bundle as ``linkage share export``: keyed hashes (HMAC-SHA-256 under the
partnership key given in the body, used for this request only and never stored or
logged) of the identifiers of blocked clusters and clusters analysts confirmed in this
store; no raw identifier, account id or prompt.  See docs/SHARING.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from linkage.api.deps import StoreDep, require_scope
from linkage.api.errors import ApiError
from linkage.api.routes import AUTH_ERRORS, error_responses

router = APIRouter(tags=["share"], dependencies=[Depends(require_scope("admin"))])


class ShareExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(
        min_length=44,
        max_length=512,
        description="the partnership key agreed with the partner, hex or base64 (32+ bytes); "
        "used for this request only",
    )
    producer: str = Field(
        "linkage", min_length=1, max_length=100, description="this provider's name in the bundle"
    )


@router.post(
    "/share/export",
    summary="Export the latest run's farm indicators as a STIX 2.1 bundle of keyed hashes",
    response_description="a STIX 2.1 bundle (JSON)",
    responses=error_responses(400, 404, 413, *AUTH_ERRORS),
)
def share_export(
    body: ShareExportIn,
    request: Request,
    store: StoreDep,
) -> dict[str, Any]:
    """Blocked clusters and clusters confirmed by feedback in this store, one indicator each.

    422 when the key is not 32+ bytes of hex or base64; 404 when no run is loaded.
    """
    import json

    from linkage.share.export import export_bundle, run_accounts
    from linkage.share.hashing import PartnershipKey
    from linkage.store.rundir import load_run

    key = PartnershipKey.from_text(body.key)
    signups = getattr(request.app.state, "signups", None)
    path = getattr(signups, "run_path", None)
    if path is None:
        latest = store.latest_run()
        path = latest["path"] if latest else None
    if path is None:
        raise ApiError(404, "not_found", "no run loaded: import one with `linkage import-run`")
    run = load_run(path)
    bundle, _ = export_bundle(
        run,
        key,
        producer=body.producer,
        feedback=store.feedback_frame(),
        accounts=run_accounts(path),
    )
    return json.loads(bundle.serialize())
