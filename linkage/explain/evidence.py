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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from linkage.explain.records import Evidence, ordered
from linkage.graph.build import AccountGraph
from linkage.identifiers.kinds import (
    PROVIDER_WORDING,
    family_evidence,
    is_provider_kind,
    kinds_with,
    wording,
)
from linkage.score.features import EVIDENCE_KIND, kind_group
from linkage.score.model import LinearModel, sigmoid
from linkage.score.scoring import Scores

# evidence kind of each model feature (declared with the features, linkage.score.features)
# and the link family each identifier evidence kind reports (linkage.identifiers.kinds)
GROUP_OF_KIND: dict[str, str] = {ev: fam for fam, ev in family_evidence().items()}
MAX_ITEMS = 5  # identifiers / templates / rows listed per evidence item


@dataclass
class EvidenceContext:
    """Everything evidence needs, computed once per run (vectorised)."""

    scores: Scores
    model: LinearModel
    templates: pd.DataFrame  # template_id, skeleton, example, ...
    shared: dict[
        str, dict[str, tuple[int, list[tuple]]]
    ]  # cluster -> group -> (n, top (kind, value, members, holders, w))
    template_rows: dict[
        str, tuple[int, list[tuple]]
    ]  # cluster -> (n templates, top (template_id, n_requests, rows))
    # numpy views of per-account data (vertex order), extracted once
    logits: np.ndarray = field(default_factory=lambda: np.empty(0))
    overrides: np.ndarray = field(default_factory=lambda: np.empty(0))
    account_ids: np.ndarray = field(default_factory=lambda: np.empty(0))
    feature_matrix: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    families: dict[str, dict[str, Any]] = field(default_factory=dict)  # cluster -> coordination
    kinds: frozenset[str] = frozenset()  # identifier kinds the data set has (for wording)

    def __post_init__(self) -> None:
        acc = self.scores.accounts
        self.logits = acc["logit"].to_numpy(dtype=float)
        self.overrides = acc["override"].to_numpy(dtype=object)
        self.account_ids = acc["account_id"].to_numpy(dtype=object)
        self.feature_matrix = self.scores.features[list(self.model.features)].to_numpy(dtype=float)


def build_context(
    ag: AccountGraph,
    scores: Scores,
    model: LinearModel,
    *,
    templates: pd.DataFrame,
    requests: pd.DataFrame | None,
    request_template: pd.Series | None,
    coordination: Any = None,
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

    template_rows = pd.DataFrame(
        columns=["cluster_id", "template_id", "n_requests", "rows", "n_templates"]
    )
    if requests is not None and request_template is not None and len(requests):
        amap = pd.Series(acc_cluster, index=scores.accounts["account_id"].to_numpy())
        rq = pd.DataFrame(
            {
                "cluster_id": amap.reindex(
                    requests["account_id"].astype(str).to_numpy()
                ).to_numpy(),
                "template_id": request_template.to_numpy(dtype=object),
                "_row": requests["_row"].to_numpy()
                if "_row" in requests.columns
                else np.arange(len(requests)),
            }
        )
        rq = rq[pd.notna(rq["cluster_id"]) & pd.notna(rq["template_id"])]
        if len(rq):
            counts = (
                rq.groupby(["cluster_id", "template_id"], sort=True)
                .size()
                .rename("n_requests")
                .reset_index()
            )
            counts = counts.sort_values(
                ["cluster_id", "n_requests", "template_id"], ascending=[True, False, True]
            )
            top = counts[counts.groupby("cluster_id").cumcount() < MAX_ITEMS]
            # raw request rows for the top templates only (first MAX_ITEMS rows each)
            rq = rq.merge(
                top[["cluster_id", "template_id"]], on=["cluster_id", "template_id"]
            ).sort_values("_row")
            rq = rq[rq.groupby(["cluster_id", "template_id"]).cumcount() < MAX_ITEMS]
            rows = rq.groupby(["cluster_id", "template_id"])["_row"].agg(list).rename("rows")
            template_rows = top.join(rows, on=["cluster_id", "template_id"])
            n_tpl = counts.groupby("cluster_id").size().rename("n_templates")
            template_rows = template_rows.join(n_tpl, on="cluster_id")
    # per (cluster, group): how many identifiers are shared, and the strongest few as plain tuples
    n_shared = shared.groupby(["cluster_id", "group"], sort=False).size()
    top = shared.groupby(["cluster_id", "group"], sort=False).head(MAX_ITEMS)
    shared_by: dict[str, dict[str, tuple[int, list[tuple]]]] = {}
    for c, g, k, v, m, h, w in zip(
        top["cluster_id"].to_numpy(dtype=object),
        top["group"].to_numpy(dtype=object),
        top["kind"].to_numpy(dtype=object),
        top["value"].to_numpy(dtype=object),
        top["members"].to_numpy(),
        top["holders"].to_numpy(),
        top["weight"].to_numpy(),
        strict=True,
    ):
        entry = shared_by.setdefault(str(c), {}).setdefault(str(g), (int(n_shared[(c, g)]), []))
        entry[1].append((str(k), str(v), int(m), int(h), float(w)))
    rows_by: dict[str, tuple[int, list[tuple]]] = {}
    if len(template_rows):
        for c, t, n, r, nt in zip(
            template_rows["cluster_id"].to_numpy(dtype=object),
            template_rows["template_id"].to_numpy(dtype=object),
            template_rows["n_requests"].to_numpy(),
            template_rows["rows"].to_numpy(dtype=object),
            template_rows["n_templates"].to_numpy(),
            strict=True,
        ):
            rows_by.setdefault(str(c), (int(nt), []))[1].append(
                (str(t), int(n), [int(x) for x in r])
            )
    tpl = (
        templates.drop_duplicates("template_id").set_index("template_id")
        if len(templates)
        else templates
    )
    families: dict[str, dict[str, Any]] = {}
    if coordination is not None:
        fn = coordination.family_nats
        cid = scores.accounts["cluster_id"].to_numpy(dtype=object)
        ok = pd.notna(cid)
        if ok.any():
            med = fn.loc[ok].groupby(cid[ok]).median()  # the median member's ties
            corr = pd.Series(coordination.corroboration[ok]).groupby(cid[ok]).median()
            for c, row in med.iterrows():
                families[str(c)] = {
                    "families": {k: float(v) for k, v in row.items() if v > 0},
                    "corroboration": round(float(corr.loc[c])),
                    "kappa": coordination.kappa,
                }
    kinds = frozenset(str(k) for k in pd.unique(idf["kind"])) if len(idf) else frozenset()
    return EvidenceContext(scores, model, tpl, shared_by, rows_by, families=families, kinds=kinds)


def _text(info: pd.DataFrame, tid: str, col: str, limit: int = 300) -> str:
    if col not in info.columns or tid not in info.index:
        return ""
    v = info.at[tid, col]
    return v[:limit] if isinstance(v, str) else ""


def _kind_contributions(
    contrib_mean: np.ndarray, features: tuple[str, ...]
) -> dict[str, dict[str, float]]:
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
            f"activity hour entropy {fx.get('c_hour_entropy', 0):.2f} bits (24/7 = 4.58); "
            f"sign-up cadence regularity {fx.get('c_cadence', 0):.2f} (1 = a scheduler's fixed "
            "interval, 0 = people arriving at random)"
        )
    if kind == "volume":
        return f"~{np.expm1(fx.get('c_log_rate', 0)):.1f} requests per active hour per member, ~{np.expm1(fx.get('c_log_tokens', 0)):.0f} response tokens per request"
    if kind == "concealment" and "conceal_proxy_exposure" in fx:
        kinds = extra.get("kinds", frozenset())
        nets = [wording(k) for k in kinds_with("exposure") if k in kinds]
        if any(is_provider_kind(str(k)) for k in kinds):
            nets.append(PROVIDER_WORDING)
        return (
            f"{' and '.join(nets) or 'network'} ties shared with outsiders "
            f"{fx.get('conceal_proxy_exposure', 0):.0%}, "
            f"fingerprint churn {fx.get('conceal_fingerprint_churn', 0):.2f}, "
            f"disposable or aliased mail {fx.get('conceal_throwaway_mail', 0):.0%}, "
            f"sign-up cadence regularity {fx.get('conceal_scheduler_cadence', 0):.2f}"
        )
    if kind == "concealment":
        return (
            f"disposable e-mail {fx.get('c_disposable', 0):.0%}, aliased e-mail {fx.get('c_alias', 0):.0%}, "
            f"IP churn {fx.get('c_ip_churn', 0):.2f}, device churn {fx.get('c_device_churn', 0):.2f}, "
            f"no payment {fx.get('c_payment_missing', 0):.0%}"
        )
    if kind == "reasoning":
        return f"{fx.get('c_reasoning', 0):.0%} of members' requests ask for step-by-step reasoning"
    if kind == "coordination":
        fam = extra.get("families", {})
        parts = ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(fam.items(), key=lambda kv: -kv[1]) if v > 0
        )
        return (
            f"{size} accounts tied beyond chance by {extra.get('corroboration', 0)} independent "
            f"identifier famil(ies) (median member, nats: {parts or 'none'}; a family counts at "
            f"most {extra.get('kappa', 0):.1f})"
        )
    if kind == "openness":
        return (
            f"openly shared: one organisation domain {fx.get('open_org_domain', 0):+.0%}, "
            f"one card {fx.get('open_shared_card', 0):+.0%} of members (companies, classes, families)"
        )
    if kind == "extraction":
        return "traffic (volume, reasoning requests, template focus, answer length) compared with this provider's own accounts"
    if kind == "cluster_structure":
        return f"{size} accounts linked by rare shared identifiers"
    return kind


def cluster_evidence(
    ctx: EvidenceContext, cluster_id: str, members_idx: np.ndarray
) -> list[Evidence]:
    """Evidence items for one cluster, ordered by contribution."""
    model = ctx.model
    contrib = ctx.scores.contributions[members_idx].mean(axis=0)
    feat_mean = dict(
        zip(model.features, ctx.feature_matrix[members_idx].mean(axis=0).tolist(), strict=True)
    )
    logits = ctx.logits[members_idx]
    base_logit = float(np.median(logits))
    by_kind = _kind_contributions(contrib, model.features)
    size = len(members_idx)
    sh = ctx.shared.get(cluster_id, {})
    n_tpl, tr = ctx.template_rows.get(cluster_id, (0, []))
    items: list[Evidence] = []
    for kind, parts in by_kind.items():
        total = float(sum(parts.values()))
        details: dict[str, Any] = {
            "features": {
                f: {"value": round(float(feat_mean[f]), 4), "contribution": round(c, 4)}
                for f, c in parts.items()
            },
            "score_without": round(float(sigmoid(base_logit - total)), 4),
        }
        extra: dict[str, Any] = {"kinds": ctx.kinds}
        grp = GROUP_OF_KIND.get(kind)
        if kind == "coordination":
            fam = ctx.families.get(cluster_id, {})
            extra.update(fam)
            details["families_nats"] = {k: round(v, 3) for k, v in fam.get("families", {}).items()}
            details["corroborating_families"] = fam.get("corroboration", 0)
            details["identifiers"] = [
                {
                    "group": g,
                    "kind": k,
                    "value": v,
                    "members": m,
                    "holders": h,
                    "weight_nats": round(w, 3),
                }
                for g, (_, top) in sorted(sh.items())
                for k, v, m, h, w in top
            ]
            if tr:
                details["templates"] = [
                    {
                        "template_id": t,
                        "requests_in_cluster": n,
                        "skeleton": _text(ctx.templates, t, "skeleton"),
                        "request_rows": rows_,
                    }
                    for t, n, rows_ in tr
                ]
        if grp is not None:
            n_sh, top = sh.get(grp, (0, []))
            extra["n_shared"] = n_sh
            details["identifiers"] = [
                {"kind": k, "value": v, "members": m, "holders": h, "weight_nats": round(w, 3)}
                for k, v, m, h, w in top
            ]
            if top:
                k, v, m, h, _ = top[0]
                extra["top"] = f"{k}={v} ({m} members of {h} holders)"
        if kind == "templates" and tr:
            extra["n_templates"] = n_tpl
            info = ctx.templates
            details["templates"] = [
                {
                    "template_id": t,
                    "requests_in_cluster": n,
                    "skeleton": _text(info, t, "skeleton"),
                    "example": _text(info, t, "example"),
                    "request_rows": rows_,
                }
                for t, n, rows_ in tr
            ]
        summary = _summary(kind, feat_mean, size, extra)
        summary += f"; without it the score would be {details['score_without']:.2f}"
        items.append(Evidence(kind=kind, summary=summary, contribution=total, details=details))
    acc_ids = ctx.account_ids[members_idx]
    overrides = ctx.overrides[members_idx]
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
                details={
                    f: {"value": round(float(x[f]), 4), "contribution": round(c, 4)}
                    for f, c in parts.items()
                },
            )
        )
    return ordered(items)
