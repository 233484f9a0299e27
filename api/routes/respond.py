"""``GET /v1/accounts/{id}/action`` and ``POST /v1/watermark/detect`` (scope ``respond``).

The action is answered from the responder's in-memory view (dictionary look-ups; the
store is checked for changes at most once a second), so it is cheap enough for the
serving path to ask on every request.  Watermark secrets never leave the process.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from linkage.api.deps import require_scope
from linkage.api.errors import ApiError
from linkage.api.routes import AUTH_ERRORS, error_responses
from linkage.respond.service import Responder
from linkage.respond.watermark import corpus_stats

router = APIRouter(tags=["respond"], dependencies=[Depends(require_scope("respond"))])


class ActionOut(BaseModel):
    """What the serving path should do with this account's requests."""

    account_id: str
    action: str = Field(
        description="`none` | `step_up` (verification + rate limit) | `suspend` | `degrade` "
        "(serve perturbed, watermarked outputs)"
    )
    perturbation_strength: float = Field(
        description="0 = outputs untouched; else pass to perturb(text, strength, key)"
    )
    watermark_key_id: str | None = Field(
        description="the cluster's active watermark key (its id; the secret stays in the store)"
    )
    reason: str
    level: str = Field(description="effective level after feedback: clear | review | block")
    rate_limit_per_minute: int | None = None


def _json_number(v: object) -> object:
    """A JSON number only: ``"5"`` and ``false`` are refused (pydantic's lax mode would take
    them); ``5.0`` is an integer in JSON Schema and stays accepted for integer fields."""
    if isinstance(v, bool | str):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return v


class DetectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1, description="the suspect corpus, one response each")
    threshold: Annotated[float | None, BeforeValidator(_json_number)] = Field(
        None, gt=0, lt=1, description="attribute below this p-value (default 1e-6)"
    )
    top: Annotated[int, BeforeValidator(_json_number)] = Field(
        20, ge=0, description="return this many keys, best first (0 = all); an integer"
    )


class KeyResultOut(BaseModel):
    key_id: str
    cluster_id: str
    retired: bool
    z: float
    p_value: float = Field(
        description="upper bound min(exp(-z²/2), 3.178·P(N ≥ z)); underflows to 0 beyond z ≈ 38"
    )
    log10_p: float = Field(0.0, description="log10 of p_value, exact for any z (never -inf)")
    n_contexts: int
    attributed: bool


class DetectOut(BaseModel):
    n_texts: int
    n_words: int
    n_opportunities: int
    n_contexts: int
    keys_tested: int
    attributed: list[str] = Field(description="cluster ids the corpus is attributed to")
    results: list[KeyResultOut]


def get_responder(request: Request) -> Responder:
    """The app's responder (made on first use from the app's store)."""
    r = getattr(request.app.state, "responder", None)
    if r is None:
        r = request.app.state.responder = Responder(request.app.state.store)
    return r


@router.get(
    "/accounts/{account_id:account_id}/action",
    response_model=ActionOut,
    summary="What to do with an account's requests: action, perturbation strength, key id",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def get_action(
    request: Request,
    account_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> ActionOut:
    """`clear` → `none`; `review` → `step_up` + rate limit; `block` → `suspend`, or
    `degrade` when the run's settings say `respond.block_action = "degrade"`. An upheld
    appeal or a false positive (account or cluster) clears; a confirmed farm blocks."""
    a = get_responder(request).action(account_id)
    if a is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}", {"account_id": account_id})
    return ActionOut(account_id=account_id, **a.to_dict())


@router.post(
    "/watermark/detect",
    response_model=DetectOut,
    summary="Test a suspect corpus against every cluster's watermark key",
    responses=error_responses(400, 413, *AUTH_ERRORS),
)
def post_detect(body: DetectIn, request: Request) -> DetectOut:
    """Per key a z statistic and p-value; attributed when p < threshold (default 1e-6).
    Large corpora exceed the service's body limit: use `linkage watermark detect DIR`."""
    stats = corpus_stats(body.texts)
    res = get_responder(request).detect(stats, threshold=body.threshold)
    shown = res if body.top == 0 else res[: body.top]
    return DetectOut(
        n_texts=stats.n_texts,
        n_words=stats.n_words,
        n_opportunities=stats.n_opportunities,
        n_contexts=stats.n_contexts,
        keys_tested=len(res),
        attributed=[a.cluster_id for a in res if a.attributed],
        results=[KeyResultOut(**a.to_dict()) for a in shown],
    )
