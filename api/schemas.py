"""Request and response models of the HTTP API (strict inputs, documented outputs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from linkage.store.engine import TIMESTAMP_PATTERN, WINDOW_TEXT, parse_bounded

Level = Literal["clear", "review", "block"]
Verdict = Literal["confirmed_farm", "false_positive", "appeal_upheld"]
TargetType = Literal["account", "cluster"]
ClusterSort = Literal["score", "-score", "size", "-size", "cluster_id", "-cluster_id"]


def _encodable(v: str) -> str:
    """Refuse strings that are not valid Unicode text (e.g. lone surrogates)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string is not valid UTF-8 text") from None
    if "\x00" in v:
        raise ValueError("string must not contain NUL characters")
    return v


Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$"), AfterValidator(_encodable)]
"""Free text without NUL characters (PostgreSQL text cannot hold them) or lone surrogates."""


def _iso_string(v: object) -> object:
    """Timestamps: ISO 8601 date-time strings only (no epoch numbers or numeric strings:
    ambiguous units), matching ``TIMESTAMP_PATTERN`` (years 2000..2099 as written;
    naive = UTC), returned as UTC."""
    return parse_bounded(v)


Timestamp = Annotated[
    datetime,
    BeforeValidator(_iso_string),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TIMESTAMP_PATTERN,
            "description": f"ISO 8601 date-time, {WINDOW_TEXT}; `Z`, `±hh:mm` or none "
            "(naive = UTC)",
            "examples": ["2026-03-01T10:00:00Z"],
        }
    ),
]
"""A client timestamp; the OpenAPI schema states the accepted window as a pattern."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- errors
class ErrorDetail(_Out):
    code: str = Field(
        description="stable machine-readable code, e.g. `not_found`, `validation_error`"
    )
    message: str = Field(description="human-readable message")
    details: Any = Field(
        None, description="more information: for 422 a list of `{loc, msg, type}` per invalid field"
    )


class ErrorBody(_Out):
    """The body of every error response."""

    error: ErrorDetail


# ---------------------------------------------------------------- evidence
class EvidenceItem(_Out):
    """One piece of evidence behind a score (ordered by contribution, strongest first)."""

    kind: str = Field(description="what kind of evidence, e.g. `shared_payment`, `template`")
    summary: str = Field(description="one human sentence")
    contribution: float = Field(
        description="additive share of the score's log-odds (positive = towards farm)"
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="the raw identifiers / accounts / rows supporting it"
    )


# ---------------------------------------------------------------- clusters
class ClusterSummary(_Out):
    cluster_id: str = Field(
        description="stable cluster id (kept across runs while most members stay)"
    )
    size: int
    score: float = Field(description="calibrated farm score in [0, 1]")
    level: str = Field(description="`clear`, `review` or `block` (the engine's)")
    verdict: str | None = Field(None, description="latest verdict on the cluster")
    effective_level: str = Field(description="level after the cluster's verdict")
    top_evidence: EvidenceItem | None = Field(None, description="the strongest evidence item")


class ClusterPage(_Out):
    run_id: int | None = Field(
        description="run the clusters come from (latest import); null if none"
    )
    total: int = Field(description="number of clusters matching the filters")
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last page")
    items: list[ClusterSummary]


class Member(_Out):
    account_id: str
    score: float
    level: str
    effective_level: str = Field(
        description="after the verdict that applies (the member's own, else the cluster's)"
    )


class LineageItem(_Out):
    run_id: int = Field(description="run in which the relation was observed")
    cluster_id: str = Field(description="the (newer) cluster")
    parent_cluster_id: str | None = Field(description="the earlier cluster; null for `new`")
    relation: str = Field(description="`continued`, `split`, `merged`, `new` or `regrew`")
    overlap: float = Field(description="share of the parent's members found in the cluster")


class Lineage(_Out):
    parents: list[LineageItem] = Field(description="where this cluster came from")
    children: list[LineageItem] = Field(description="what became of it in later runs")


class FeedbackOut(_Out):
    id: int
    target_type: str
    target_id: str
    verdict: str
    who: str = Field(description="label given by the client (not an identity)")
    why: str
    ts: datetime = Field(description="server time the verdict was recorded (orders verdicts)")
    client_ts: datetime | None = Field(
        None, description="time the client claimed (data only; never orders verdicts)"
    )
    key_id: str | None = Field(
        None, description="API key that posted it (null: recorded before keys were kept)"
    )
    run_id: int | None = Field(None, description="latest imported run when it was given")


class ClusterDetail(_Out):
    cluster_id: str
    run_id: int = Field(description="latest run in which the cluster appears")
    current: bool = Field(description="whether it appears in the latest imported run")
    source_id: str = Field(description="the cluster's id inside that run directory")
    size: int
    score: float
    level: str
    members: list[Member] = Field(description="members by score (paged by members_limit/offset)")
    evidence: list[EvidenceItem]
    lineage: Lineage
    feedback: list[FeedbackOut]
    verdict: str | None = Field(
        None,
        description="latest verdict on the cluster (server time); applies to members "
        "without a verdict of their own",
    )
    effective_level: str = Field(description="level after the cluster's verdict")


# ---------------------------------------------------------------- accounts
class SignupSummary(_Out):
    score: float
    level: str
    cluster_id: str | None
    degraded: bool
    created_at: datetime


class AccountDetail(_Out):
    account_id: str
    source: Literal["run", "signup"] = Field(
        description="known from a run, or only from signup scoring"
    )
    run_id: int | None
    score: float
    level: str = Field(description="level assigned by the engine")
    cluster_id: str | None
    evidence: list[EvidenceItem] = Field(description="evidence of its cluster that concerns it")
    feedback: list[FeedbackOut] = Field(description="verdicts on the account and on its cluster")
    verdict: str | None = Field(
        description="the verdict that applies: the account's own latest verdict, else its "
        "cluster's latest (same resolution as the action route and the next detect)"
    )
    verdict_source: Literal["account", "cluster"] | None = Field(
        None, description="whether `verdict` was given on the account or on its cluster"
    )
    cleared: bool = Field(
        description="a false positive or an upheld appeal applies: kept clear by the next detect"
    )
    effective_level: str = Field(
        description="level after the verdict (equals the action route's `level`)"
    )
    signup: SignupSummary | None = Field(description="the latest signup-scoring decision, if any")


# ---------------------------------------------------------------- signups
class SignupIn(_In):
    """One new account, with the contract's account fields."""

    account_id: Text = Field(min_length=1, max_length=256)
    created_at: Timestamp | None = Field(
        None,
        description="sign-up time the client claims: ISO 8601 date-time (naive = UTC), "
        f"{WINDOW_TEXT}; numbers and numeric strings are refused. Recorded as data only: "
        "velocity windows use the server's clock",
    )
    email: Text | None = Field(None, max_length=512)
    signup_ip: Text | None = Field(None, max_length=64)
    device_fingerprint: Text | None = Field(None, max_length=512)
    payment_fingerprint: Text | None = Field(None, max_length=512)
    user_agent: Text | None = Field(None, max_length=2048)
    identifiers: (
        dict[
            Annotated[Text, StringConstraints(min_length=1, max_length=64)],
            Annotated[Text, StringConstraints(max_length=512)]
            | Annotated[
                list[Annotated[Text, StringConstraints(max_length=512)]], Field(max_length=16)
            ],
        ]
        | None
    ) = Field(
        None,
        max_length=32,
        description="the provider's own identifiers of this signup, as in the identifiers "
        "table: `{kind: value}` or `{kind: [values]}` (a phone hash, a referral code); they "
        "link to the history's identifiers of the same kind",
        examples=[{"phone": "h:9f2c", "referral": "R-1234"}],
    )


class SignupScore(_Out):
    account_id: str
    score: float = Field(description="farm score in [0, 1]")
    level: str = Field(description="`clear`, `review` or `block`")
    cluster_id: str | None = Field(description="stable id of the cluster the signup attaches to")
    evidence: list[EvidenceItem]
    velocity: dict[str, int] = Field(
        description="recent signups sharing each identifier, in the window"
    )
    degraded: bool = Field(
        description="true if the model was unavailable and the answer is fail-open"
    )
    run_id: int | None = Field(description="store run the model comes from")
    revision: int = Field(
        1,
        description="1 = the first decision on this account id; n = its n-th scoring (each is "
        "kept: history in the store and the audit)",
    )
    previous_level: str | None = Field(
        None,
        description="level of the previous decision on this account id; a new scoring never "
        "lowers it (only an analyst's clearing verdict does)",
    )


# ---------------------------------------------------------------- feedback
class FeedbackIn(_In):
    target_type: TargetType
    target_id: Text = Field(min_length=1, max_length=256)
    verdict: Verdict
    who: Text = Field(
        min_length=1, max_length=256, description="analyst or system giving the verdict"
    )
    why: Text = Field(min_length=1, max_length=4000, description="reason, ticket link, …")
    ts: Timestamp | None = Field(
        None,
        description="when the client says the verdict was given; kept as `client_ts`, "
        "never used for ordering (the server's clock is). ISO 8601 date-time, naive = UTC, "
        f"{WINDOW_TEXT}",
    )


# ---------------------------------------------------------------- health
class Health(_Out):
    status: Literal["ok"]


class Ready(_Out):
    status: Literal["ready"]
    details: dict[str, Any] | None = Field(
        None,
        description="store checks (read, schema, write), model run id and path: only with "
        "a key holding the `metrics` (or `admin`) scope",
    )


# ---------------------------------------------------------------- audit
class AuditItem(_Out):
    kind: Literal["feedback", "signup", "admin"] = Field(
        description="a verdict, a signup decision, or an administrative event (API key "
        "created / revoked, watermark key created / rotated)"
    )
    id: int = Field(description="row id within its kind")
    ts: datetime = Field(description="server time it was recorded")
    key_id: str | None = Field(description="API key that made it (null: before keys were kept)")
    key_name: str | None = Field(description="that key's name")
    who: str | None = Field(
        description="feedback: the label the client gave; admin: the actor (`cli:<user>`, "
        "`system:respond`)"
    )
    target_type: str
    target_id: str
    decision: str = Field(
        description="the verdict, the signup's level, or the admin action (`created`, "
        "`revoked`, `rotated`)"
    )
    score: float | None = Field(description="signups: the score returned")
    why: str | None
    run_id: int | None = Field(description="run the decision was made from")
    client_ts: datetime | None = Field(description="feedback: the time the client claimed")


class AuditPage(_Out):
    total: int
    limit: int
    offset: int
    next_offset: int | None
    items: list[AuditItem]
