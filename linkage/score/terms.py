"""The out-of-the-box score's terms, declared once.

Each term of :func:`linkage.score.coordination.coordination` is declared here with the
evidence kind it is shown under, its sign and what it measures; every constant it uses
lives in :class:`linkage.settings.CoordinationSettings` (``settings.score.coordination``),
so a run's manifest records the whole model. The score (``coordination``), the model
(``coordination_model``), the evidence (``explain.evidence``) and ``docs/MODEL.md``'s
table (:func:`terms_markdown`, checked by a test) all iterate :data:`TERM_DECLARATIONS`:
adding a term is one declaration here plus its formula in ``coordination``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from linkage.settings import CoordinationSettings

__all__ = ["TERMS", "TERM_DECLARATIONS", "TERM_EVIDENCE", "Term", "terms_markdown"]


@dataclass(frozen=True)
class Term:
    """One term of the out-of-the-box score, in nats of log-odds."""

    name: str  # the column of Coordination.terms and of the model input
    evidence: Literal["coordination", "concealment", "openness", "extraction"]
    sign: Literal[1, -1]  # +1 raises the farm odds, -1 lowers them
    what: str  # the formula in words; ``{field}`` = a CoordinationSettings value
    why: str  # why this scale (first principles, published methods)


TERM_DECLARATIONS: tuple[Term, ...] = (
    Term(
        "coordination",
        "coordination",
        1,
        "per independent identifier family (network, payment, device, e-mail, templates, "
        "sign-up hour, and every extra `identifiers` kind on its own) the account's own ties "
        "to its cluster `Σ_i ln(N/df_i)·a_ui·(m_ic−1)/(df_i−1)`, each family capped at "
        "κ = {family_cap_share:g}·ln(N); term = "
        "`{coordination_scale:g}·clip((Σ_f min(L_f, κ) − κ)/κ, −1, 1)` "
        "(−{coordination_scale:g} for an account in no cluster); a family corroborates "
        "when it reaches {corroboration_share:g}·κ",
        'the ties are the log-likelihood ratio of "shared on purpose" against "shared by '
        'chance" (`df/N`); κ = half the information that singles out one account among N, '
        "the same quantity as the release rule: one family can make a group look related, "
        "never prove it",
    ),
    Term(
        "conceal_proxy_exposure",
        "concealment",
        1,
        "{cue_nats:g} × the larger of: the member share of the cluster's IP and "
        "provider-identifier ties held by outsiders, and the account's own exit breadth "
        "`(n − 1)/n` over the n distinct IPs it shares both with its group and with strangers",
        "residential proxies exit through strangers' homes, bots befriend strangers; a class "
        "behind one campus IP, a company behind its office NAT, a family on its router touch "
        "one such IP or none; the breadth is the account's own, so home users swept into a "
        "farm's cluster do not inherit it",
    ),
    Term(
        "conceal_fingerprint_churn",
        "concealment",
        1,
        "{cue_nats:g} × the cluster's mean `(devices − 1)/(requests − 1)` over accounts with "
        "≥ {min_requests_for_churn} requests",
        "anti-detect browsers present a new fingerprint per session; one likelihood ratio of "
        "`e` per cue at full strength, so no single cue decides",
    ),
    Term(
        "conceal_throwaway_mail",
        "concealment",
        1,
        "{cue_nats:g} × the member share of disposable or aliased (`+tag`, `-keyword`) addresses",
        "accounts meant to be thrown away sign up with addresses meant to be thrown away; an "
        "ordinary dotted Gmail address is not an alias",
    ),
    Term(
        "conceal_scheduler_cadence",
        "concealment",
        1,
        "{cue_nats:g} × `clip(1 − CV of the gaps between the cluster's sign-ups, 0, 1)` "
        "(clusters of ≥ 4 dated members)",
        "lockstep, as CopyCatch and SynchroTrap use it, on the one clock every account has: "
        "people who sign up because of one event arrive at random (a Poisson process, CV ≈ 1 "
        "→ 0), a scheduler that opens an account every k minutes leaves equal gaps (→ 1)",
    ),
    Term(
        "open_org_domain",
        "openness",
        -1,
        "−{cue_nats:g} × the member share holding one organisation domain (neither freemail "
        "nor disposable) that at least half of the cluster signs up with",
        "companies, classes and labs say whose the accounts are; a disposable domain shared "
        'by a group is concealment, never "one organisation domain"',
    ),
    Term(
        "open_shared_card",
        "openness",
        -1,
        "−{cue_nats:g} per account whose card pays for cluster-mates who all sign up on one "
        "organisation domain",
        "a company paying for its seats is open about it, even inside a cluster that also "
        "swept in others; one card behind freemail or throwaway mailboxes posing as strangers "
        "is one payer hiding many accounts",
    ),
    Term(
        "extraction",
        "extraction",
        1,
        "mean percentile p̄, among this provider's own accounts with traffic, of the "
        "cluster's volume, reasoning share, template focus and answer length; "
        "`{extraction_scale:g}·(p̄ − {extraction_floor:g})`",
        '"far above normal use" means the top of this provider\'s own traffic; the baseline '
        "is the data itself, nothing is learnt from another world",
    ),
)

TERMS: tuple[str, ...] = tuple(t.name for t in TERM_DECLARATIONS)
TERM_EVIDENCE: dict[str, str] = {t.name: t.evidence for t in TERM_DECLARATIONS}


def terms_markdown(settings: CoordinationSettings | None = None) -> str:
    """The term table of ``docs/MODEL.md`` with the settings' constants filled in."""
    s = settings or CoordinationSettings()
    values = s.model_dump()
    rows = [
        "| term | evidence | sign | what | why this scale |",
        "|---|---|---|---|---|",
    ]
    for t in TERM_DECLARATIONS:
        sign = "+" if t.sign > 0 else "−"
        rows.append(f"| {t.name} | {t.evidence} | {sign} | {t.what.format(**values)} | {t.why} |")
    rows.append(
        f"| prior | – | {'−' if s.prior < 0 else '+'} | {s.prior:g} nats | most coordinated groups are not farms |"
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m linkage.score.terms > the table for docs/MODEL.md
    print(terms_markdown(), end="")
