"""Per-account scoring features, each account seen through its cluster.

Two families, both bounded and scale-free so that a model fitted on one world
transfers to another:

* **linkage** -- how strongly, and through what, an account is tied to the rest of
  its cluster: for each identifier group (network, payment, device, e-mail,
  templates, other) the rarity-weighted share of the account's identifiers that
  other members hold (``sum_i w_i * a_ui * (m_ic - 1) / (df_i - 1)``, in nats),
  and how much of what it shares is shared with *outsiders* (``exposure``:
  residential proxies and carrier NAT put strangers on the same IP; an office NAT
  does not).
* **behaviour and tradecraft** -- the account's own traffic (volume, 24/7 activity,
  reasoning elicitation, template concentration, IP/device churn, model pivot
  speed, disposable/aliased e-mail) and the same averaged over its cluster
  (a farm is coordinated; one odd member of a company is not the company).

Unclustered accounts are a cluster of one: their cluster features are their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from linkage.detect.leiden import Clustering, incidence_ties
from linkage.graph.build import AccountGraph
from linkage.identifiers.kinds import (
    FAMILIES,
    LINK_FAMILIES,
    family_evidence,
    kinds_with,
    link_family,
    the_kind,
)
from linkage.score.terms import TERM_EVIDENCE

if TYPE_CHECKING:
    from linkage.score.coordination import Coordination
    from linkage.settings import CoordinationSettings

# identifier kinds grouped into evidence families (declared in linkage.identifiers.kinds)
LINK_GROUPS: tuple[str, ...] = tuple(f.name for f in LINK_FAMILIES)


def kind_group(kinds: pd.Series | np.ndarray) -> np.ndarray:
    """The link family of each kind (``other`` for undeclared and provider kinds)."""
    return np.asarray([link_family(str(k)) for k in kinds], dtype=object)


# account-level inputs taken from the identifiers stage (NaN filled as noted)
_OWN = {
    "log_requests": ("n_requests", "log1p", 0.0),
    "log_rate": ("req_per_active_hour", "log1p", 0.0),
    "hour_entropy": ("hour_entropy", None, 0.0),
    "reasoning": ("reasoning_share", None, 0.0),
    "template_top": ("template_top_share", None, 0.0),
    "topic_top": ("topic_top_share", None, 0.0),
    "ip_churn": ("ip_churn", None, 0.0),
    "device_churn": ("device_churn", None, 0.0),
    "log_tokens": ("mean_response_tokens", "log1p", 0.0),
    "disposable": ("email_disposable", None, 0.0),
    "alias": ("email_alias", None, 0.0),
    "freemail": ("email_freemail", None, 0.0),
    "payment_missing": ("payment_missing", None, 0.0),
}

# cluster means of these own features
_CLUSTER_MEAN = (
    "log_rate",
    "hour_entropy",
    "reasoning",
    "template_top",
    "ip_churn",
    "device_churn",
    "log_tokens",
    "disposable",
    "alias",
    "payment_missing",
    "pivot_fast",
)

# own traffic as mid-rank percentiles among *this data set's* accounts with traffic,
# centred (0 = the provider's median account, +-0.5 its extremes): scale-free, so "far
# above normal use" means the same at any provider; accounts with no traffic get 0
PERCENTILE_OF: dict[str, str] = {
    "p_volume": "n_requests",
    "p_rate": "req_per_active_hour",
    "p_reasoning": "reasoning_share",
    "p_template": "template_top_share",
    "p_tokens": "mean_response_tokens",
    "p_always_on": "hour_entropy",
}
# the same for the cluster's typical member (median over members with traffic): a farm's
# accounts each look moderate, its typical member still sits high; a cluster that swept
# in a few odd accounts keeps its typical member
CLUSTER_PERCENTILES: tuple[str, ...] = tuple(f"c_{k}" for k in PERCENTILE_OF)

FEATURES: tuple[str, ...] = (
    *_OWN.keys(),
    *PERCENTILE_OF.keys(),
    *CLUSTER_PERCENTILES,
    "c_cadence",
    "pivot_fast",
    "has_requests",
    "clustered",
    "member_strength",
    "member_fraction",
    "c_log_size",
    *(f"c_link_{g}" for g in LINK_GROUPS),
    "c_exposure",
    "c_cards_per_member",
    "c_domains_per_member",
    "c_signup_spread",
    *(f"c_{f}" for f in _CLUSTER_MEAN),
)

#: The evidence kind each feature is reported under (what an analyst calls one reason);
#: the identifier links are their family's (linkage.identifiers.kinds).
EVIDENCE_KIND: dict[str, str] = {
    **{f"c_link_{f.name}": f.evidence for f in LINK_FAMILIES},
    "c_exposure": family_evidence()[FAMILIES[kinds_with("exposure")[0]]],
    "c_cards_per_member": family_evidence()[FAMILIES[the_kind("card")]],
    "c_domains_per_member": family_evidence()[FAMILIES[the_kind("org_domain")]],
    "template_top": "templates",
    "c_template_top": "templates",
    "topic_top": "templates",
    "c_signup_spread": "timing",
    "pivot_fast": "timing",
    "c_pivot_fast": "timing",
    "hour_entropy": "timing",
    "c_hour_entropy": "timing",
    "log_requests": "volume",
    "log_rate": "volume",
    "c_log_rate": "volume",
    "log_tokens": "volume",
    "c_log_tokens": "volume",
    "has_requests": "volume",
    "disposable": "concealment",
    "alias": "concealment",
    "freemail": "concealment",
    "c_disposable": "concealment",
    "c_alias": "concealment",
    "ip_churn": "concealment",
    "c_ip_churn": "concealment",
    "device_churn": "concealment",
    "c_device_churn": "concealment",
    "payment_missing": "concealment",
    "c_payment_missing": "concealment",
    "reasoning": "reasoning",
    "c_reasoning": "reasoning",
    "clustered": "cluster_structure",
    "member_strength": "cluster_structure",
    "member_fraction": "cluster_structure",
    "c_log_size": "cluster_structure",
    # the out-of-the-box score's terms, as declared (linkage.score.terms)
    **TERM_EVIDENCE,
    # own traffic and the typical member's, as percentiles of this provider's accounts
    "p_volume": "volume",
    "c_p_volume": "volume",
    "p_rate": "volume",
    "c_p_rate": "volume",
    "p_tokens": "volume",
    "c_p_tokens": "volume",
    "p_reasoning": "reasoning",
    "c_p_reasoning": "reasoning",
    "p_template": "templates",
    "c_p_template": "templates",
    "p_always_on": "timing",
    "c_p_always_on": "timing",
    "c_cadence": "timing",
}


def percentile(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each value among the reference values (NaN stays NaN)."""
    ref = np.sort(ref[~np.isnan(ref)])
    out = np.full(len(values), np.nan)
    if not len(ref):
        return out
    ok = ~np.isnan(values)
    lo = np.searchsorted(ref, values[ok], side="left")
    hi = np.searchsorted(ref, values[ok], side="right")
    out[ok] = (lo + hi) / (2.0 * len(ref))
    return out


def median_by(label: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per account: the median of ``x`` over its label, ignoring NaN (NaN if all are)."""
    return pd.Series(x).groupby(label).transform("median").to_numpy(dtype=float)


def traffic_percentiles(features: pd.DataFrame, accounts: pd.Index) -> pd.DataFrame:
    """:data:`PERCENTILE_OF` of every account, centred, NaN for accounts with no traffic."""
    f = features.reindex(accounts)
    n_req = f["n_requests"].to_numpy(dtype=float) if "n_requests" in f.columns else None
    active = np.zeros(len(accounts), bool) if n_req is None else np.nan_to_num(n_req) > 0
    out = pd.DataFrame(index=accounts)
    for name, col in PERCENTILE_OF.items():
        x = f[col].to_numpy(dtype=float) if col in f.columns else np.full(len(accounts), np.nan)
        x = np.where(active, x, np.nan)
        out[name] = percentile(x, x) - 0.5
    return out


def cadence(created: np.ndarray, label: np.ndarray, clustered: np.ndarray) -> np.ndarray:
    """Per account: how regular its cluster's sign-ups are, ``clip(1 - CV of the gaps, 0, 1)``.

    People who sign up because of one event (a class, an onboarding afternoon) arrive at
    random, as a Poisson process does: the gaps between sign-ups have a coefficient of
    variation near 1 (0 here). A scheduler that opens an account every k minutes leaves
    gaps of equal length (CV near 0, 1 here). Clusters of fewer than 4 dated members and
    unclustered accounts get 0 (too few gaps to tell).
    """
    n = len(created)
    out = np.zeros(n)
    ok = clustered & ~np.isnan(created)
    if ok.sum() < 4:
        return out
    frame = pd.DataFrame({"lab": label[ok], "t": created[ok]}).sort_values(["lab", "t"])
    gap = frame.groupby("lab")["t"].diff()
    frame["gap"] = gap
    stats = frame.dropna(subset=["gap"]).groupby("lab")["gap"].agg(["mean", "std", "size"])
    stats = stats[(stats["size"] >= 3) & (stats["mean"] > 0)]
    reg = (1.0 - stats["std"] / stats["mean"]).clip(0.0, 1.0)
    out[ok] = pd.Series(label[ok]).map(reg).fillna(0.0).to_numpy(dtype=float)
    return out


def _own_features(features: pd.DataFrame, accounts: pd.Index) -> pd.DataFrame:
    f = features.reindex(accounts)
    out = pd.DataFrame(index=accounts)
    for name, (col, tf, fill) in _OWN.items():
        v = f[col].astype(float) if col in f.columns else pd.Series(np.nan, index=accounts)
        if tf == "log1p":
            v = np.log1p(v.clip(lower=0))
        out[name] = v.fillna(fill)
    lag = (
        f["pivot_lag_hours"].astype(float)
        if "pivot_lag_hours" in f.columns
        else pd.Series(np.nan, index=accounts)
    )
    out["pivot_fast"] = (lag <= 24).astype(float)
    n_req = (
        f["n_requests"].astype(float)
        if "n_requests" in f.columns
        else pd.Series(0.0, index=accounts)
    )
    out["has_requests"] = (n_req.fillna(0) > 0).astype(float)
    return out


def account_features(
    ag: AccountGraph,
    clustering: Clustering,
    features: pd.DataFrame,
    *,
    ties: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The model's input: one row per account (index = account_id, vertex order), ``FEATURES`` columns."""
    accounts = ag.accounts
    # a cluster label for everyone: unclustered accounts are their own cluster of one
    label = clustering.labels()
    size = np.bincount(label)
    created = _created(features, accounts)
    out = _own_features(features, accounts)
    columns = {
        **_membership(clustering),
        "c_log_size": np.log(size[label]),
        **_link_features(ag, label, size, ties),
        **_distinct_per_member(ag.incidence, label, size),
        "c_signup_spread": _signup_spread(created, label, size),
    }
    for name, values in columns.items():
        out[name] = values
    for f_ in _CLUSTER_MEAN:
        out[f"c_{f_}"] = _cluster_mean(label, size, out[f_].to_numpy())
    pct = traffic_percentiles(features, accounts)
    for name in PERCENTILE_OF:
        own_p = pct[name].to_numpy()
        out[name] = np.nan_to_num(own_p, nan=0.0)
        out[f"c_{name}"] = np.nan_to_num(median_by(label, own_p), nan=0.0)
    out["c_cadence"] = cadence(created, label, clustering.cluster >= 0)
    out.index.name = "account_id"
    return out[list(FEATURES)].astype(float)


def _cluster_mean(label: np.ndarray, size: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per account: the mean of ``x`` over its cluster (``size``: members per label)."""
    s = np.bincount(label, weights=x, minlength=len(size))
    return (s / np.maximum(size, 1))[label]


def _membership(clustering: Clustering) -> dict[str, np.ndarray]:
    """Whether each account is clustered, and how strongly it is tied inside its cluster."""
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(
            clustering.strength_total > 0, clustering.strength_in / clustering.strength_total, 0.0
        )
    return {
        "clustered": (clustering.cluster >= 0).astype(float),
        "member_strength": np.log1p(clustering.strength_in),
        "member_fraction": frac,
    }


def _link_groups(kind: pd.Series) -> np.ndarray:
    """Per incidence row: the position of its kind's link family in :data:`LINK_GROUPS`."""
    kinds = kind.astype("category")
    cat_group = pd.Categorical(
        kind_group(kinds.cat.categories.to_numpy()), categories=list(LINK_GROUPS)
    ).codes
    return (
        cat_group[kinds.cat.codes.to_numpy()].astype(np.int64)
        if len(kinds)
        else np.empty(0, np.int64)
    )


def _link_features(
    ag: AccountGraph,
    label: np.ndarray,
    size: np.ndarray,
    ties: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Cluster means of each account's tie strength inside its cluster per link family
    (``c_link_<family>``), and of the share of its ties that reach outsiders (``c_exposure``)."""
    n = len(ag.accounts)
    inc = ag.incidence
    acc = inc["acc"].to_numpy()
    inside, outside = ties if ties is not None else incidence_ties(ag, label)
    grp_codes = _link_groups(inc["kind"])
    n_g = len(LINK_GROUPS)
    per_acc_link = np.bincount(acc * n_g + grp_codes, weights=inside, minlength=n * n_g).reshape(
        n, n_g
    )
    tot_in = np.bincount(acc, weights=inside, minlength=n)
    tot_out = np.bincount(acc, weights=outside, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        exposure = np.where(tot_in + tot_out > 0, tot_out / (tot_in + tot_out), 0.0)
    out = {
        f"c_link_{g}": _cluster_mean(label, size, per_acc_link[:, j])
        for j, g in enumerate(LINK_GROUPS)
    }
    out["c_exposure"] = _cluster_mean(label, size, exposure)
    return out


def _distinct_per_member(
    inc: pd.DataFrame, label: np.ndarray, size: np.ndarray
) -> dict[str, np.ndarray]:
    """Distinct cards / non-freemail domains per member of each account's cluster."""
    lab = label[inc["acc"].to_numpy()]
    ident = inc["ident"].to_numpy()
    out: dict[str, np.ndarray] = {}
    for kind, col in (
        (the_kind("card"), "c_cards_per_member"),
        (the_kind("org_domain"), "c_domains_per_member"),
    ):
        sel = inc["kind"].to_numpy() == kind
        pairs = pd.DataFrame({"lab": lab[sel], "ident": ident[sel]}).drop_duplicates()
        distinct = np.bincount(pairs["lab"].to_numpy(), minlength=len(size))
        out[col] = (distinct / np.maximum(size, 1))[label]
    return out


def _created(features: pd.DataFrame, accounts: pd.Index) -> np.ndarray:
    """Each account's sign-up time (seconds; NaN when unknown)."""
    return (
        features.reindex(accounts)["created_ts"].astype(float).to_numpy()
        if "created_ts" in features.columns
        else np.full(len(accounts), np.nan)
    )


def _signup_spread(created: np.ndarray, label: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Per account: ``log1p`` of its cluster's sign-up time standard deviation, in hours."""
    ok = ~np.isnan(created)
    x = np.where(ok, (created - np.nanmin(created)) / 3600.0 if ok.any() else 0.0, 0.0)  # hours
    cnt = np.bincount(label, weights=ok.astype(float), minlength=len(size))
    s1 = np.bincount(label, weights=x, minlength=len(size))
    s2 = np.bincount(label, weights=x * x, minlength=len(size))
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(s2 / cnt - (s1 / cnt) ** 2, 0.0)
    spread = np.where(cnt > 1, np.sqrt(var), 30 * 24.0)  # singletons/unknown: "no burst" (a month)
    return np.log1p(spread[label])


def model_inputs(
    ag: AccountGraph,
    clustering: Clustering,
    features: pd.DataFrame,
    *,
    settings: CoordinationSettings | None = None,
) -> tuple[pd.DataFrame, Coordination]:
    """Everything a scoring model may read: :func:`account_features`, the coordination
    terms and the corroboration count; returns ``(X, coordination)``.

    ``settings``: the score's constants (``settings.score.coordination``)."""
    from linkage.score.coordination import coordination

    # the per-row ties are the stage's costliest step (one sort of the incidence): once
    ties = incidence_ties(ag, clustering.labels()) if not ag.incidence.empty else None
    X = account_features(ag, clustering, features, ties=ties)
    coord = coordination(ag, clustering, features, ties=ties, settings=settings)
    X = X.join(coord.terms)
    X["corroboration"] = coord.corroboration.astype(float)
    return X, coord
