"""Settings of indicator sharing (each default argued where it is defined)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from linkage.identifiers.kinds import KINDS, kind

__all__ = ["PERSONAL_KINDS", "SHARED_KINDS", "ShareSettings"]

#: Identifier kinds a bundle carries (keyed hashes of their canonical values), with the
#: evidence family each belongs to (one vote per family, as in signup scoring), in the
#: order of their declared ``share_rank`` (the order matched kinds are reported in).  No
#: raw IP: a network is shared as its /24 or /48 (``subnet``), which names a range, not a
#: customer; freemail domains never become ``email_domain`` values (see kinds.py).
SHARED_KINDS: dict[str, str] = {
    name: family
    for _, name, family in sorted(
        (k.share_rank, k.name, k.family) for k in KINDS if k.share_rank is not None
    )
}

#: Kinds that name one customer (a card, a mailbox, a device: declared ``personal``); the
#: others (a /24, a domain, a prompt template) are shared by nature with strangers.
PERSONAL_KINDS: frozenset[str] = frozenset(k for k in SHARED_KINDS if kind(k).personal)


class ShareSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="an identifier is exported only if the cluster's members are at least "
        "this share of its holders: a carrier NAT or a viral template held by a crowd of "
        "strangers is no indicator (and exporting it would only point at those strangers)",
    )
    share_step: float = Field(
        0.1,
        gt=0,
        le=1,
        description="the share is exported rounded down to this step, so a bundle never "
        "gives the exact number of the exporter's other customers on a value",
    )
    max_hashes_per_kind: int = Field(
        2000,
        ge=1,
        description="values kept per kind and cluster, those held by most members first: "
        "a farm that forges a fresh fingerprint per request holds thousands of device values "
        "that will never be seen again, and they must not crowd out its cards and mailboxes",
    )
    expiry_days: int = Field(
        90,
        ge=1,
        le=730,
        description="valid_until of exported indicators: farms rotate cards and ranges within "
        "weeks; a stale indicator would only hit whoever gets the range next",
    )
    wave_window_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="a partner's farm re-opening accounts comes in waves: sign-ups matching "
        "one partner indicator at review strength within this window are counted",
    )
    wave_min: int = Field(
        5,
        ge=2,
        description="that many such sign-ups (this one included) within the window are one "
        "more family of evidence (the partner's confidence): the provider's own sign-up stream "
        "corroborates the partner; a stray customer on a shared range never makes a wave",
    )
    default_confidence: float = Field(
        0.8, gt=0, le=1, description="weight of a partner's indicators unless set at import"
    )
    max_bundle_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="larger bundles are refused unread"
    )
    max_indicators: int = Field(100_000, ge=1, description="indicators per bundle")
    max_hashes: int = Field(2_000_000, ge=1, description="hashes per bundle (all indicators)")
