"""The out-of-the-box score: coordination evidence in nats, with no training.

A provider's data is not our generator's, so the default score is built from
quantities that mean the same thing on any data set, each bounded so that no single
cue decides, and each shown in the evidence:

1. **Coordination** (is this a group run by one hand?). For each *independent family*
   of identifiers -- network, payment, device, e-mail, prompt templates, sign-up time,
   and every provider-specific kind of the ``identifiers`` table on its own -- the
   account's own ties to the rest of its cluster,
   ``L_f(u) = sum_{i in f} ln(N/df_i) * a_ui * (m_ic - 1) / (df_i - 1)`` nats: the
   information shared beyond chance (an identifier held by ``df`` of ``N`` accounts is
   shared by chance with probability ``df/N``). A family counts at most
   ``kappa = ln(N)/2`` nats (half the information that singles out one account among
   ``N``: one family can make a group look related, never prove it), and it
   *corroborates* when it reaches ``kappa/2``. The coordination term is
   ``2 * clip((sum_f min(L_f, kappa) - kappa) / kappa, -1, 1)``: -2 nats for a group held
   by less than one family, +2 for two families or more.
2. **Concealment against openness** (does the group hide who runs it?). Farms hide;
   companies, classes and families are open about what they share. Concealment cues,
   +1 nat each at full strength (member shares): the group's IP and provider-identifier
   ties are shared with outsiders (residential proxies exit through strangers' homes, bots
   befriend strangers) or, per account, it exits through many IPs that strangers also hold
   (the account's own, undiluted), fingerprint churn, throwaway mail (disposable domains,
   aliases), a scheduler's fixed sign-up cadence.
   Openness cues, -1 nat each: one organisation domain that most members sign up with;
   per account, a card it shares with cluster-mates who all sign up on one organisation
   domain (a company paying for its seats); both only behind an organisation's own domain
   (neither freemail nor disposable).
3. **Extraction** (is the group's traffic unusual *for this provider*?). For volume,
   reasoning elicitation, template concentration and answer length, the percentile of the
   cluster's mean among the data set's own accounts with traffic; their mean ``p`` gives
   ``8 * (p - 0.75)`` nats (positive only in the top quarter: "far above normal use"). A
   chance baseline from the data itself: nothing is learnt from another world.
4. **Prior** -1 nat: most coordinated groups are not farms.

Corroboration gates the level: an account in no cluster (no family) stays below
``review``; an account tied to its cluster by one family alone stays below ``block``.

Missing is not zero: a cue the data set cannot have (no requests, no payment
fingerprints, no device fingerprints, no e-mails) is absent from the sum (its term is
0) and listed in :attr:`Coordination.missing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from linkage.detect.leiden import Clustering, incidence_ties
from linkage.graph.build import AccountGraph
from linkage.identifiers.kinds import has_role, independent_family, the_kind
from linkage.score.features import cadence, percentile
from linkage.score.terms import TERMS
from linkage.settings import CoordinationSettings

TIMING_FAMILY = "signup_time"
__all__ = ["TERMS", "Coordination", "coordination", "family_of"]


def family_of(kind: str) -> str:
    """Independent family of ``kind`` (extra kinds ``x:<kind>`` are each their own)."""
    return independent_family(kind)


@dataclass
class Coordination:
    """Per-account terms (log-odds, nats) and the evidence behind them."""

    terms: pd.DataFrame  # index account_id (vertex order), columns TERMS
    family_nats: pd.DataFrame  # index account_id, one column per family: its ties to its cluster
    corroboration: np.ndarray  # per account: families reaching the corroboration share of kappa
    kappa: float
    prior: float
    missing: list[str] = field(default_factory=list)  # cues the data set cannot have

    @property
    def logit(self) -> np.ndarray:
        return self.terms.to_numpy().sum(axis=1) + self.prior


def _mean_by(label: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per account: the mean of ``x`` over its label, ignoring NaN (NaN if all are)."""
    s = pd.Series(x).groupby(label).transform("mean")
    return s.to_numpy(dtype=float)


def _timing_ties(
    created: np.ndarray, label: np.ndarray, n_ref: int, clustered: np.ndarray
) -> np.ndarray:
    """Ties through the sign-up hour, like an identifier held by everyone created that hour."""
    ok = ~np.isnan(created) & clustered
    out = np.zeros(len(created))
    if not ok.any():
        return out
    bucket = np.floor(np.where(np.isnan(created), 0, created) / 3600.0).astype(np.int64)
    allk = ~np.isnan(created)
    df = pd.Series(bucket[allk]).value_counts()
    d = df.reindex(bucket).to_numpy(dtype=float)
    key = pd.Series(bucket[ok]).astype(str) + ":" + pd.Series(label[ok]).astype(str)
    m = key.map(key.value_counts()).to_numpy(dtype=float)
    dd = d[ok]
    idf = np.log(n_ref / np.maximum(dd, 1))
    out[ok] = np.where(dd >= 2, idf * (m - 1) / np.maximum(dd - 1, 1), 0.0)
    return out


def coordination(
    ag: AccountGraph,
    clustering: Clustering,
    features: pd.DataFrame,
    *,
    ties: tuple[np.ndarray, np.ndarray] | None = None,
    settings: CoordinationSettings | None = None,
) -> Coordination:
    """The coordination terms of every account (vertex order of ``ag``).

    ``ties``: :func:`incidence_ties` under ``clustering.labels()`` if already computed;
    ``settings``: the score's constants (``settings.score.coordination``; defaults if None).
    """
    s = settings or CoordinationSettings()
    accounts = ag.accounts
    n = len(accounts)
    label = clustering.labels()
    clustered = clustering.cluster >= 0
    kappa = s.family_cap_share * float(np.log(ag.n_reference))
    f = features.reindex(accounts)

    def col(name: str) -> np.ndarray:
        return f[name].to_numpy(dtype=float) if name in f.columns else np.full(n, np.nan)

    # -- 1. coordination per family ----------------------------------------------
    inc = ag.incidence
    fam_cols: dict[str, np.ndarray] = {}
    exposure_in = np.zeros(n)
    exposure_out = np.zeros(n)
    exit_breadth = np.full(n, np.nan)
    if not inc.empty:
        inside, outside = ties if ties is not None else incidence_ties(ag, label)
        # an unclustered account shares with no group: nothing of it is inside or outside
        in_group = clustered[inc["acc"].to_numpy()]
        inside = np.where(in_group, inside, 0.0)
        outside = np.where(in_group, outside, 0.0)
        kinds = inc["kind"].astype("category")
        fams = np.asarray([family_of(str(k)) for k in kinds.cat.categories], dtype=object)
        row_fam = fams[kinds.cat.codes.to_numpy()]
        acc = inc["acc"].to_numpy()
        for fam in sorted(set(fams)):
            sel = row_fam == fam
            fam_cols[fam] = np.bincount(acc[sel], weights=inside[sel], minlength=n)
        # exposure: the group's ties shared with outsiders, on IPs (residential proxies exit
        # through strangers' homes; a /24 is shared by design, so subnets do not count) and on
        # provider identifiers (bots befriend strangers to blend in; a community's friends are
        # each other); templates and devices are left out: public prompts and popular devices
        # are shared with outsiders by everyone
        cats, codes = [str(k) for k in kinds.cat.categories], kinds.cat.codes.to_numpy()
        net = np.asarray([has_role(k, "exposure") for k in cats], bool)[codes]
        exposure_in = np.bincount(acc[net], weights=inside[net], minlength=n)
        exposure_out = np.bincount(acc[net], weights=outside[net], minlength=n)
        # residential-proxy exits, per account: the distinct IPs it shares both with its
        # group and with strangers. A farm rotating through strangers' homes touches many
        # (each home is one exit); a class behind one campus IP, a company behind its office
        # NAT, a family on its router touch one or none. (n - 1) / n: 0 for one such IP,
        # 0.5 for two, 0.9 for ten; the account's own, never diluted by its cluster
        is_ip = np.asarray([has_role(k, "exit") for k in cats], bool)[codes]
        exits = np.bincount(acc[is_ip & (inside > 0) & (outside > 0)], minlength=n)
        has_ip = np.bincount(acc[is_ip], minlength=n) > 0
        exit_breadth = np.where(
            has_ip & clustered, np.maximum(exits - 1, 0) / np.maximum(exits, 1), np.nan
        )
    fam_cols[TIMING_FAMILY] = _timing_ties(col("created_ts"), label, ag.n_reference, clustered)
    family_nats = pd.DataFrame(
        # per account, not the cluster's median: a member must itself be tied through two
        # families to be blocked (a cluster that swept in proxy-sharing home users keeps
        # them at review while its farm core is blocked); the cluster score is the median
        {fam: np.where(clustered, v, 0.0) for fam, v in fam_cols.items()},
        index=accounts,
    )
    capped = np.minimum(family_nats.to_numpy(), kappa) if len(fam_cols) else np.zeros((n, 0))
    total = capped.sum(axis=1)
    corroboration = (
        (family_nats.to_numpy() >= s.corroboration_share * kappa).sum(axis=1)
        if len(fam_cols)
        else np.zeros(n)
    )
    coord = s.coordination_scale * np.clip((total - kappa) / max(kappa, 1e-9), -1.0, 1.0)

    terms = pd.DataFrame(index=accounts)
    terms["coordination"] = coord
    missing: list[str] = []

    def cue(name: str, x: np.ndarray, sign: float) -> None:
        v = _mean_by(label, x)
        if np.isnan(x).all():
            missing.append(name)
        terms[name] = sign * s.cue_nats * np.nan_to_num(v, nan=0.0)

    # -- 2. concealment against openness -------------------------------------------
    with np.errstate(invalid="ignore", divide="ignore"):
        net_tot = exposure_in + exposure_out
        exposure = np.where(net_tot > 0, exposure_out / net_tot, np.nan)
    cue("conceal_proxy_exposure", exposure, +1.0)
    # the stronger of the group's share of ties held by outsiders and the account's own
    # breadth of exits through strangers' IPs
    terms["conceal_proxy_exposure"] = np.fmax(
        terms["conceal_proxy_exposure"].to_numpy(),
        s.cue_nats * np.nan_to_num(exit_breadth, nan=0.0),
    )
    n_req = col("n_requests")
    n_dev = col("n_devices")
    with np.errstate(invalid="ignore", divide="ignore"):
        churn = np.where(
            np.nan_to_num(n_req, nan=0.0) >= s.min_requests_for_churn,
            (n_dev - 1) / (n_req - 1),
            np.nan,
        )
    cue("conceal_fingerprint_churn", np.clip(churn, 0, 1), +1.0)
    throw = np.fmax(col("email_disposable"), col("email_alias"))
    cue("conceal_throwaway_mail", throw, +1.0)
    # a scheduler's sign-ups: accounts opened at a fixed interval (CopyCatch / SynchroTrap's
    # lockstep, on the one clock every account has); people arriving because of one event
    # (a class, an onboarding afternoon) arrive at random and score 0
    created = col("created_ts")
    regular = cadence(created, label, clustered)
    known = np.where(np.isnan(created), np.nan, regular)
    cue("conceal_scheduler_cadence", known, +1.0)
    # an organisation's domain is neither freemail nor throwaway: a disposable domain
    # shared by a group is concealment, never openness
    not_org = np.fmax(col("email_freemail"), col("email_disposable"))
    cue("open_org_domain", _majority_share(ag, label, the_kind("org_domain"), not_org), -1.0)
    # one card paying for many accounts is openness when the accounts say whose they are
    # (a company's, a lab's domain); behind freemail or throwaway mailboxes posing as
    # strangers it is one payer hiding many accounts, and no evidence of openness
    # per account, like the exit breadth: an evaluation team inside a cluster that also
    # swept in integrators and power users is still open about its own card
    org_card = _organisation_card(ag, label, not_org)
    if np.isnan(org_card).all():
        missing.append("open_shared_card")
    terms["open_shared_card"] = -s.cue_nats * np.where(
        clustered, np.nan_to_num(org_card, nan=0.0), 0.0
    )

    # -- 3. extraction relative to this provider's own accounts --------------------
    active = np.nan_to_num(n_req, nan=0.0) > 0
    pcts = []
    for name, raw in (
        ("volume", np.log1p(n_req)),
        ("reasoning", col("reasoning_share")),
        ("template_focus", col("template_top_share")),
        ("answer_length", np.log1p(col("mean_response_tokens"))),
    ):
        x = np.where(active, raw, np.nan)
        if np.isnan(x).all():
            missing.append(f"extraction:{name}")
            continue
        pcts.append(percentile(_mean_by(label, x), x))
    if pcts:
        stack = np.vstack(pcts)
        cnt = (~np.isnan(stack)).sum(axis=0)
        pbar = np.where(cnt > 0, np.nansum(stack, axis=0) / np.maximum(cnt, 1), np.nan)
        terms["extraction"] = np.nan_to_num(
            s.extraction_scale * (pbar - s.extraction_floor), nan=0.0
        )
    else:
        terms["extraction"] = 0.0

    # singletons carry no group evidence at all: only their cluster-of-one terms
    terms.loc[~clustered, "coordination"] = -s.coordination_scale
    terms.index.name = "account_id"
    return Coordination(
        terms=terms[list(TERMS)].astype(float),
        family_nats=family_nats,
        corroboration=np.where(clustered, corroboration, 0).astype(np.int64),
        kappa=kappa,
        prior=s.prior,
        missing=missing,
    )


def _organisation_card(ag: AccountGraph, label: np.ndarray, not_org: np.ndarray) -> np.ndarray:
    """Per account: 1 if its card pays for other accounts of its cluster and every account
    of its cluster on that card signs up with one and the same organisation domain (one
    organisation paying openly for its seats), else 0; NaN everywhere without cards.
    """
    n = len(label)
    inc = ag.incidence
    if inc.empty:
        return np.full(n, np.nan)
    kind = inc["kind"].to_numpy()
    card = kind == the_kind("card")
    if not card.any():
        return np.full(n, np.nan)
    dom_rows = kind == the_kind("org_domain")
    domain = np.full(n, -1, dtype=np.int64)
    domain[inc["acc"].to_numpy()[dom_rows]] = inc["ident"].to_numpy()[dom_rows]
    org = np.nan_to_num(not_org, nan=0.0) <= 0
    domain = np.where(org, domain, -1)
    acc = inc["acc"].to_numpy()[card]
    pairs = pd.DataFrame(
        {"lab": label[acc], "ident": inc["ident"].to_numpy()[card], "acc": acc}
    ).drop_duplicates()
    pairs["dom"] = domain[pairs["acc"].to_numpy()]
    g = pairs.groupby(["lab", "ident"])
    members = g["acc"].transform("size").to_numpy()
    one_dom = (g["dom"].transform("nunique").to_numpy() == 1) & (
        g["dom"].transform("min").to_numpy() >= 0
    )
    ok = (members >= 2) & one_dom & (pairs["lab"].to_numpy() >= 0)
    out = np.zeros(n)
    np.maximum.at(out, pairs["acc"].to_numpy(), ok.astype(float))
    return out


def _majority_share(
    ag: AccountGraph, label: np.ndarray, kind: str, exclude: np.ndarray | None
) -> np.ndarray:
    """Per account: 1 if it holds a ``kind`` value shared by at least half its cluster.

    ``exclude`` (per account, 1 = excluded, e.g. freemail domains) zeroes accounts whose
    value is not an organisation's. NaN for every account when no account has the kind.
    """
    n = len(label)
    inc = ag.incidence
    sel = (inc["kind"] == kind).to_numpy() if not inc.empty else np.zeros(0, bool)
    if not sel.any():
        return np.full(n, np.nan)
    acc = inc["acc"].to_numpy()[sel]
    ident = inc["ident"].to_numpy()[sel]
    lab = label[acc]
    size = np.bincount(label, minlength=label.max() + 1)
    pairs = pd.DataFrame({"lab": lab, "ident": ident, "acc": acc}).drop_duplicates(
        ["lab", "ident", "acc"]
    )
    cnt = pairs.groupby(["lab", "ident"])["acc"].transform("size").to_numpy()
    major = (cnt >= np.maximum(2, np.ceil(size[pairs["lab"].to_numpy()] / 2))).astype(float)
    out = np.zeros(n)
    np.maximum.at(out, pairs["acc"].to_numpy(), major)
    if exclude is not None:
        out = np.where(np.nan_to_num(exclude, nan=0.0) > 0, 0.0, out)
    return out
