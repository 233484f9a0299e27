"""Stage 6: evidence for every cluster (and for single accounts).

The model's log-odds decompose into per-feature terms; features are grouped into
evidence *kinds* (what an analyst would call one reason: "they share cards",
"they send the same templates", "they signed up together"...).  A cluster's
contribution of a kind is the mean over its members; the items are ordered by
contribution and each carries the raw identifiers, account ids, template ids and
input row numbers (``_row``) that support it, plus a counterfactual: the
cluster's score without that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from linkage.explain.records import Evidence, ordered
from linkage.graph.build import AccountGraph
from linkage.score.features import kind_group
from linkage.score.model import LinearModel, sigmoid
from linkage.score.scoring import Scores

EVIDENCE_KIND: dict[str, str] = {
    "c_link_network": "shared_network",
    "c_exposure": "shared_network",
    "c_link_payment": "shared_payment",
    "c_cards_per_member": "shared_payment",
    "c_link_device": "shared_device",
    "c_link_email": "shared_email",
    "c_domains_per_member": "shared_email",
    "c_link_other": "shared_other",
    "c_link_template": "templates",
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
}
GROUP_OF_KIND = {
    "shared_network": "network",
    "shared_payment": "payment",
    "shared_device": "device",
    "shared_email": "email",
    "shared_other": "other",
    "templates": "template",
}
MAX_ITEMS = 5  # identifiers / templates / rows listed per evidence item
_EMPTY_SHARED = pd.DataFrame(columns=["group", "kind", "value", "members", "holders", "weight"])
_EMPTY_ROWS = pd.DataFrame(columns=["template_id", "n_requests", "rows"])


@dataclass
class EvidenceContext:
    """Everything evidence needs, computed once per run (vectorised)."""

    ag: AccountGraph
    scores: Scores
    model: LinearModel
    templates: pd.DataFrame  # template_id, skeleton, example, ...
    shared: dict[str, pd.DataFrame]  # cluster_id -> identifiers held by >= 2 members
    template_rows: dict[str, pd.DataFrame]  # cluster_id -> template_id, n_requests, rows (list of _row)
    account_rows: pd.Series  # account_id -> accounts file _row


def build_context(
    ag: AccountGraph,
    scores: Scores,
    model: LinearModel,
    *,
    templates: pd.DataFrame,
    requests: pd.DataFrame | None,
    request_template: pd.Series | None,
    accounts: pd.DataFrame,
) -> EvidenceContext:
    acc_cluster = scores.accounts["cluster_id"].to_numpy(dtype=object)
    inc = ag.incidence
    cl = acc_cluster[inc["acc"].to_numpy()]
    sel = pd.notna(cl)
    idf = ag.identifiers
    sh = pd.DataFrame(
        {
            "cluster_id": cl[sel],
            "ident": inc["ident"].to_numpy()[sel],
            "acc": inc["acc"].to_numpy()[sel],
            "n": inc["n"].to_numpy()[sel],
        }
    )
    shared = (
        sh.groupby(["cluster_id", "ident"], sort=True)
        .agg(members=("acc", "size"), observations=("n", "sum"), first_acc=("acc", "min"))
        .reset_index()
    )
    shared = shared[shared["members"] >= 2]
    ids = shared["ident"].to_numpy()
    shared = shared.assign(
        kind=idf["kind"].to_numpy()[ids],
        value=idf["value"].to_numpy()[ids],
        holders=idf["df"].to_numpy()[ids],
        weight=idf["weight"].to_numpy()[ids],
        group=kind_group(idf["kind"].to_numpy()[ids]),
    )
    shared["strength"] = shared["weight"] * shared["members"] / shared["holders"]
    shared = shared.sort_values(["cluster_id", "group", "strength"], ascending=[True, True, False])

    template_rows = pd.DataFrame(columns=["cluster_id", "template_id", "n_requests", "rows"])
    if requests is not None and request_template is not None and len(requests):
        amap = pd.Series(acc_cluster, index=scores.accounts["account_id"].to_numpy())
        rq = pd.DataFrame(
            {
                "cluster_id": amap.reindex(requests["account_id"].astype(str).to_numpy()).to_numpy(),
                "template_id": request_template.to_numpy(dtype=object),
                "_row": requests["_row"].to_numpy() if "_row" in requests.columns else np.arange(len(requests)),
            }
        )
        rq = rq[pd.notna(rq["cluster_id"]) & pd.notna(rq["template_id"])]
        if len(rq):
            g = rq.groupby(["cluster_id", "template_id"], sort=True)["_row"]
            template_rows = g.agg(n_requests="size", rows=lambda s: [int(x) for x in s.iloc[:MAX_ITEMS]]).reset_index()
            template_rows = template_rows.sort_values(["cluster_id", "n_requests"], ascending=[True, False])
    account_rows = (
        pd.Series(accounts["_row"].to_numpy(), index=accounts["account_id"].astype(str).to_numpy())
        if "_row" in accounts.columns
        else pd.Series(dtype="int64")
    )
    shared_by = {str(k): v for k, v in shared.groupby("cluster_id", sort=False)}
    rows_by = {str(k): v for k, v in template_rows.groupby("cluster_id", sort=False)}
    return EvidenceContext(ag, scores, model, templates, shared_by, rows_by, account_rows)


def _fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def _kind_contributions(contrib_mean: np.ndarray, features: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for f, c in zip(features, contrib_mean, strict=True):
        out.setdefault(EVIDENCE_KIND.get(f, "other"), {})[f] = float(c)
    return out


def _summary(kind: str, fx: Mapping[str, float], size: int, extra: Mapping[str, Any]) -> str:
    if kind.startswith("shared_"):
        what = kind.removeprefix("shared_")
        n = extra.get("n_shared", 0)
        if n:
            top = extra.get("top")
            return (
                f"{n} {what} identifier(s) shared inside the cluster; strongest: {top} "
                f"(link {fx.get('c_link_' + GROUP_OF_KIND[kind], 0):.2f} nats per member)"
            )
        return f"no {what} identifier shared inside the cluster"
    if kind == "templates":
        n = extra.get("n_templates", 0)
        return (
            f"{n} prompt template(s) shared by members; top template carries "
            f"{fx.get('c_template_top', 0):.0%} of a member's requests on average"
        )
    if kind == "timing":
        return (
            f"sign-ups spread over ~{np.expm1(fx.get('c_signup_spread', 0)):.1f} h (std); "
            f"{fx.get('c_pivot_fast', 0):.0%} switched to the newest model within 24 h; "
            f"activity hour entropy {fx.get('c_hour_entropy', 0):.2f} bits (24/7 = 4.58)"
        )
    if kind == "volume":
        return f"~{np.expm1(fx.get('c_log_rate', 0)):.1f} requests per active hour per member, ~{np.expm1(fx.get('c_log_tokens', 0)):.0f} response tokens per request"
    if kind == "concealment":
        return (
            f"disposable e-mail {fx.get('c_disposable', 0):.0%}, aliased e-mail {fx.get('c_alias', 0):.0%}, "
            f"IP churn {fx.get('c_ip_churn', 0):.2f}, device churn {fx.get('c_device_churn', 0):.2f}, "
            f"no payment {fx.get('c_payment_missing', 0):.0%}"
        )
    if kind == "reasoning":
        return f"{fx.get('c_reasoning', 0):.0%} of members' requests ask for step-by-step reasoning"
    if kind == "cluster_structure":
        return f"{size} accounts linked by rare shared identifiers"
    return kind


def cluster_evidence(ctx: EvidenceContext, cluster_id: str, members_idx: np.ndarray) -> list[Evidence]:
    """Evidence items for one cluster, ordered by contribution."""
    model = ctx.model
    contrib = ctx.scores.contributions[members_idx].mean(axis=0)
    X = ctx.scores.features.iloc[members_idx]
    feat_mean = X[list(model.features)].mean(axis=0).to_dict()
    logits = ctx.scores.accounts["logit"].to_numpy()[members_idx]
    base_logit = float(np.median(logits))
    by_kind = _kind_contributions(contrib, model.features)
    size = len(members_idx)
    sh = ctx.shared.get(cluster_id, _EMPTY_SHARED)
    tr = ctx.template_rows.get(cluster_id, _EMPTY_ROWS)
    items: list[Evidence] = []
    for kind, parts in by_kind.items():
        total = float(sum(parts.values()))
        details: dict[str, Any] = {
            "features": {f: {"value": round(float(feat_mean[f]), 4), "contribution": round(c, 4)} for f, c in parts.items()},
            "score_without": round(float(sigmoid(base_logit - total)), 4),
        }
        extra: dict[str, Any] = {}
        grp = GROUP_OF_KIND.get(kind)
        if grp is not None:
            rows = sh[sh["group"] == grp]
            extra["n_shared"] = len(rows)
            top = rows.head(MAX_ITEMS)
            details["identifiers"] = [
                {
                    "kind": k,
                    "value": v,
                    "members": int(m),
                    "holders": int(h),
                    "weight_nats": round(float(w), 3),
                }
                for k, v, m, h, w in zip(top["kind"], top["value"], top["members"], top["holders"], top["weight"], strict=True)
            ]
            if len(top):
                extra["top"] = f"{top['kind'].iloc[0]}={top['value'].iloc[0]!s} ({int(top['members'].iloc[0])} members of {int(top['holders'].iloc[0])} holders)"
        if kind == "templates" and len(tr):
            extra["n_templates"] = len(tr)
            top_t = tr.head(MAX_ITEMS).merge(ctx.templates, on="template_id", how="left", suffixes=("", "_all"))
            details["templates"] = [
                {
                    "template_id": t,
                    "requests_in_cluster": int(n),
                    "skeleton": (sk if isinstance(sk, str) else "")[:300],
                    "example": (ex if isinstance(ex, str) else "")[:300],
                    "request_rows": rows_,
                }
                for t, n, sk, ex, rows_ in zip(
                    top_t["template_id"], top_t["n_requests"], top_t.get("skeleton", ""), top_t.get("example", ""), top_t["rows"], strict=True
                )
            ]
        summary = _summary(kind, feat_mean, size, extra)
        summary += f"; without it the score would be {details['score_without']:.2f}"
        items.append(Evidence(kind=kind, summary=summary, contribution=total, details=details))
    acc_ids = ctx.scores.accounts["account_id"].to_numpy()[members_idx]
    overrides = ctx.scores.accounts["override"].to_numpy()[members_idx]
    n_conf = int((overrides == "confirmed_farm").sum())
    n_app = int((overrides == "appeal_upheld").sum())
    if n_conf or n_app:
        items.append(
            Evidence(
                kind="feedback",
                summary=f"analyst feedback: {n_conf} member(s) confirmed farm, {n_app} appeal(s) upheld",
                contribution=0.0,
                details={
                    "confirmed_farm": [str(a) for a in acc_ids[overrides == "confirmed_farm"][:50]],
                    "appeal_upheld": [str(a) for a in acc_ids[overrides == "appeal_upheld"][:50]],
                },
            )
        )
    return ordered(items)


def account_evidence(ctx: EvidenceContext, idx: int) -> list[Evidence]:
    """Evidence for one account: its own log-odds terms grouped by kind."""
    contrib = ctx.scores.contributions[idx]
    by_kind = _kind_contributions(contrib, ctx.model.features)
    logit = float(ctx.scores.accounts["logit"].iloc[idx])
    x = ctx.scores.features.iloc[idx]
    items = []
    for kind, parts in by_kind.items():
        total = float(sum(parts.values()))
        items.append(
            Evidence(
                kind=kind,
                summary=f"{kind}: {total:+.2f} log-odds; without it the score would be {float(sigmoid(logit - total)):.2f}",
                contribution=total,
                details={f: {"value": round(float(x[f]), 4), "contribution": round(c, 4)} for f, c in parts.items()},
            )
        )
    return ordered(items)
