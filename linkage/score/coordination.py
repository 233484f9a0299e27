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


@dataclass
class _Data:
    """What every term reads: the graph, the cluster labels and the account features."""

    ag: AccountGraph
    label: np.ndarray  # cluster label per account (unclustered: a cluster of one)
    clustered: np.ndarray
    features: pd.DataFrame  # reindexed to the graph's accounts

    def col(self, name: str) -> np.ndarray:
        f = self.features
        if name in f.columns:
            return f[name].to_numpy(dtype=float)
        return np.full(len(self.label), np.nan)


@dataclass
class _Ties:
    """Per account: ties to its cluster by family, and the network ties' exposure."""

    family: dict[str, np.ndarray]
    exposure_in: np.ndarray
    exposure_out: np.ndarray
    exit_breadth: np.ndarray


def _ties(d: _Data, ties: tuple[np.ndarray, np.ndarray] | None) -> _Ties:
    """Family ties (``L_f``), the network ties held inside and outside the cluster and the
    per-account exit breadth (see the module docstring)."""
    n = len(d.label)
    inc = d.ag.incidence
    out = _Ties({}, np.zeros(n), np.zeros(n), np.full(n, np.nan))
    if not inc.empty:
        inside, outside = ties if ties is not None else incidence_ties(d.ag, d.label)
        # an unclustered account shares with no group: nothing of it is inside or outside
        in_group = d.clustered[inc["acc"].to_numpy()]
        inside = np.where(in_group, inside, 0.0)
        outside = np.where(in_group, outside, 0.0)
        kinds = inc["kind"].astype("category")
        fams = np.asarray([family_of(str(k)) for k in kinds.cat.categories], dtype=object)
        row_fam = fams[kinds.cat.codes.to_numpy()]
        acc = inc["acc"].to_numpy()
        for fam in sorted(set(fams)):
            sel = row_fam == fam
            out.family[fam] = np.bincount(acc[sel], weights=inside[sel], minlength=n)
        # exposure: the group's ties shared with outsiders, on IPs (residential proxies exit
        # through strangers' homes; a /24 is shared by design, so subnets do not count) and on
        # provider identifiers (bots befriend strangers to blend in; a community's friends are
        # each other); templates and devices are left out: public prompts and popular devices
        # are shared with outsiders by everyone
        cats, codes = [str(k) for k in kinds.cat.categories], kinds.cat.codes.to_numpy()
        net = np.asarray([has_role(k, "exposure") for k in cats], bool)[codes]
        out.exposure_in = np.bincount(acc[net], weights=inside[net], minlength=n)
        out.exposure_out = np.bincount(acc[net], weights=outside[net], minlength=n)
        # residential-proxy exits, per account: the distinct IPs it shares both with its
        # group and with strangers. A farm rotating through strangers' homes touches many
        # (each home is one exit); a class behind one campus IP, a company behind its office
        # NAT, a family on its router touch one or none. (n - 1) / n: 0 for one such IP,
        # 0.5 for two, 0.9 for ten; the account's own, never diluted by its cluster
        is_ip = np.asarray([has_role(k, "exit") for k in cats], bool)[codes]
        exits = np.bincount(acc[is_ip & (inside > 0) & (outside > 0)], minlength=n)
        has_ip = np.bincount(acc[is_ip], minlength=n) > 0
        out.exit_breadth = np.where(
            has_ip & d.clustered, np.maximum(exits - 1, 0) / np.maximum(exits, 1), np.nan
        )
    out.family[TIMING_FAMILY] = _timing_ties(
        d.col("created_ts"), d.label, d.ag.n_reference, d.clustered
    )
    return out


def _coordination_term(
    d: _Data, family: dict[str, np.ndarray], kappa: float, s: CoordinationSettings
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per account: its family ties (a frame), the coordination term and the number of
    corroborating families."""
    n = len(d.label)
    family_nats = pd.DataFrame(
        # per account, not the cluster's median: a member must itself be tied through two
        # families to be blocked (a cluster that swept in proxy-sharing home users keeps
        # them at review while its farm core is blocked); the cluster score is the median
        {fam: np.where(d.clustered, v, 0.0) for fam, v in family.items()},
        index=d.ag.accounts,
    )
    capped = np.minimum(family_nats.to_numpy(), kappa) if len(family) else np.zeros((n, 0))
    total = capped.sum(axis=1)
    corroboration = (
        (family_nats.to_numpy() >= s.corroboration_share * kappa).sum(axis=1)
        if len(family)
        else np.zeros(n)
    )
    coord = s.coordination_scale * np.clip((total - kappa) / max(kappa, 1e-9), -1.0, 1.0)
    coord = np.where(d.clustered, coord, -s.coordination_scale)
    return family_nats, coord, corroboration


def _cue(d: _Data, x: np.ndarray, sign: float, s: CoordinationSettings) -> np.ndarray:
    """A cluster-mean cue in nats: ``sign * cue_nats * mean over the cluster`` (0 if unknown)."""
    return sign * s.cue_nats * np.nan_to_num(_mean_by(d.label, x), nan=0.0)


def _concealment(
    d: _Data, t: _Ties, s: CoordinationSettings, missing: list[str]
) -> dict[str, np.ndarray]:
    """The concealment terms (proxy exposure, fingerprint churn, throwaway mail, a
    scheduler's cadence); cues the data cannot have are added to ``missing``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        net_tot = t.exposure_in + t.exposure_out
        exposure = np.where(net_tot > 0, t.exposure_out / net_tot, np.nan)
    n_req = d.col("n_requests")
    n_dev = d.col("n_devices")
    with np.errstate(invalid="ignore", divide="ignore"):
        churn = np.where(
            np.nan_to_num(n_req, nan=0.0) >= s.min_requests_for_churn,
            (n_dev - 1) / (n_req - 1),
            np.nan,
        )
    # a scheduler's sign-ups: accounts opened at a fixed interval (CopyCatch / SynchroTrap's
    # lockstep, on the one clock every account has); people arriving because of one event
    # (a class, an onboarding afternoon) arrive at random and score 0
    created = d.col("created_ts")
    regular = cadence(created, d.label, d.clustered)
    cues = {
        "conceal_proxy_exposure": exposure,
        "conceal_fingerprint_churn": np.clip(churn, 0, 1),
        "conceal_throwaway_mail": np.fmax(d.col("email_disposable"), d.col("email_alias")),
        "conceal_scheduler_cadence": np.where(np.isnan(created), np.nan, regular),
    }
    out = {}
    for name, x in cues.items():
        if np.isnan(x).all():
            missing.append(name)
        out[name] = _cue(d, x, +1.0, s)
    # the stronger of the group's share of ties held by outsiders and the account's own
    # breadth of exits through strangers' IPs
    out["conceal_proxy_exposure"] = np.fmax(
        out["conceal_proxy_exposure"], s.cue_nats * np.nan_to_num(t.exit_breadth, nan=0.0)
    )
    return out


def _openness(d: _Data, s: CoordinationSettings, missing: list[str]) -> dict[str, np.ndarray]:
    """The openness terms (one organisation domain, an organisation's card)."""
    # an organisation's domain is neither freemail nor throwaway: a disposable domain
    # shared by a group is concealment, never openness
    not_org = np.fmax(d.col("email_freemail"), d.col("email_disposable"))
    domain = _majority_share(d.ag, d.label, the_kind("org_domain"), not_org)
    if np.isnan(domain).all():
        missing.append("open_org_domain")
    # one card paying for many accounts is openness when the accounts say whose they are
    # (a company's, a lab's domain); behind freemail or throwaway mailboxes posing as
    # strangers it is one payer hiding many accounts, and no evidence of openness
    # per account, like the exit breadth: an evaluation team inside a cluster that also
    # swept in integrators and power users is still open about its own card
    org_card = _organisation_card(d.ag, d.label, not_org)
    if np.isnan(org_card).all():
        missing.append("open_shared_card")
    return {
        "open_org_domain": _cue(d, domain, -1.0, s),
        "open_shared_card": -s.cue_nats
        * np.where(d.clustered, np.nan_to_num(org_card, nan=0.0), 0.0),
    }


def _extraction(d: _Data, s: CoordinationSettings, missing: list[str]) -> np.ndarray:
    """The extraction term: the cluster's traffic against this provider's own accounts."""
    n_req = d.col("n_requests")
    active = np.nan_to_num(n_req, nan=0.0) > 0
    pcts = []
    for name, raw in (
        ("volume", np.log1p(n_req)),
        ("reasoning", d.col("reasoning_share")),
        ("template_focus", d.col("template_top_share")),
        ("answer_length", np.log1p(d.col("mean_response_tokens"))),
    ):
        x = np.where(active, raw, np.nan)
        if np.isnan(x).all():
            missing.append(f"extraction:{name}")
            continue
        pcts.append(percentile(_mean_by(d.label, x), x))
    if not pcts:
        return np.zeros(len(d.label))
    stack = np.vstack(pcts)
    cnt = (~np.isnan(stack)).sum(axis=0)
    pbar = np.where(cnt > 0, np.nansum(stack, axis=0) / np.maximum(cnt, 1), np.nan)
    return np.nan_to_num(s.extraction_scale * (pbar - s.extraction_floor), nan=0.0)


def coordination(
    ag: AccountGraph,
    clustering: Clustering,
    features: pd.DataFrame,
    *,
    ties: tuple[np.ndarray, np.ndarray] | None = None,
    settings: CoordinationSettings | None = None,
) -> Coordination:
    """The terms of every account (vertex order of ``ag``), as declared in
    :mod:`linkage.score.terms`.

    ``ties``: :func:`incidence_ties` under ``clustering.labels()`` if already computed;
    ``settings``: the score's constants (``settings.score.coordination``; defaults if None).
    """
    s = settings or CoordinationSettings()
    clustered = clustering.cluster >= 0
    d = _Data(ag, clustering.labels(), clustered, features.reindex(ag.accounts))
    kappa = s.family_cap_share * float(np.log(ag.n_reference))
    t = _ties(d, ties)
    family_nats, coord, corroboration = _coordination_term(d, t.family, kappa, s)
    missing: list[str] = []
    columns = {
        "coordination": coord,
        **_concealment(d, t, s, missing),
        **_openness(d, s, missing),
        "extraction": _extraction(d, s, missing),
    }
    terms = pd.DataFrame(columns, index=ag.accounts)
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
