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
import pyarrow as pa
import pyarrow.compute as pc

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


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, -1 for a missing one; the distinct values sorted): codes
    ordered like the values, so sorting by code is sorting by value."""
    ok = pd.notna(values)
    codes = np.full(len(values), -1, dtype=np.int64)
    if not ok.any():
        return codes, np.empty(0, dtype=object)
    names, inv = np.unique(values[ok], return_inverse=True)
    codes[ok] = inv
    return codes, names


def _run_starts(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position within its run, run id) of each row of rows sorted by ``keys``
    (a run: consecutive rows equal in every key)."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    run = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    return np.arange(n) - starts[run], run


def _shared_identifiers(
    ag: AccountGraph, ccode: np.ndarray, cnames: np.ndarray
) -> dict[str, dict[str, tuple[int, list[tuple]]]]:
    """Per cluster and group: how many identifiers two or more members share, and the
    strongest few (strength = weight * members / holders, ties by identifier code)
    as plain tuples (kind, value, members, holders, weight)."""
    inc = ag.incidence
    idf = ag.identifiers
    acc = inc["acc"].to_numpy()
    c = ccode[acc] if len(acc) else np.empty(0, dtype=np.int64)
    sel = c >= 0
    n_ident = max(len(idf), 1)
    # (cluster, identifier) pairs in cluster-then-identifier order, with their members
    key = c[sel] * n_ident + inc["ident"].to_numpy()[sel]
    pairs, members = np.unique(key, return_counts=True)
    two = members >= 2
    pairs, members = pairs[two], members[two]
    cl = pairs // n_ident
    ids = pairs % n_ident
    kind = idf["kind"].to_numpy()[ids]
    holders = idf["df"].to_numpy()[ids]
    weight = idf["weight"].to_numpy()[ids]
    group = kind_group(kind)
    gcode, gnames = _sorted_codes(group)
    strength = weight * members / holders
    # cluster, group, strength descending; ties keep the identifier order (stable)
    order = np.lexsort((-strength, gcode, cl))
    cl, gcode = cl[order], gcode[order]
    pos, run = _run_starts(cl, gcode)
    n_in_run = np.bincount(run)
    top = np.flatnonzero(pos < MAX_ITEMS)
    values = idf["value"].to_numpy()
    out: dict[str, dict[str, tuple[int, list[tuple]]]] = {}
    for t in top:
        r = order[t]
        c_name, g_name = str(cnames[cl[t]]), str(gnames[gcode[t]])
        entry = out.setdefault(c_name, {}).setdefault(g_name, (int(n_in_run[run[t]]), []))
        entry[1].append(
            (
                str(kind[r]),
                str(values[ids[r]]),
                int(members[r]),
                int(holders[r]),
                float(weight[r]),
            )
        )
    return out


def _template_codes(request_template: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(template code per request, -1 missing; template id per code) without building
    a string per request (the pipeline's column is categorical)."""
    if isinstance(request_template.dtype, pd.CategoricalDtype):
        codes = request_template.cat.codes.to_numpy().astype(np.int64)
        return codes, np.asarray(request_template.cat.categories, dtype=object)
    codes, uniques = pd.factorize(request_template)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _template_rows(
    scores: Scores,
    ccode: np.ndarray,
    cnames: np.ndarray,
    requests: pd.DataFrame,
    request_template: pd.Series,
) -> dict[str, tuple[int, list[tuple]]]:
    """Per cluster: how many templates its members sent, and the top ``MAX_ITEMS`` (most
    requests, ties by template id) as (template_id, n_requests, first request rows)."""
    ids = pa.array(scores.accounts["account_id"].to_numpy(dtype=object), type=pa.large_string())
    req_ids = pa.array(requests["account_id"], from_pandas=True)
    if not pa.types.is_large_string(req_ids.type):
        req_ids = req_ids.cast(pa.large_string())
    acc = pc.fill_null(pc.index_in(req_ids, value_set=ids), -1).to_numpy(zero_copy_only=False)
    rc = np.where(acc >= 0, ccode[np.maximum(acc, 0)], -1) if len(ccode) else acc
    tc, tnames = _template_codes(request_template)
    keep = np.flatnonzero((rc >= 0) & (tc >= 0))
    if len(keep) == 0:
        return {}
    n_tpl = max(len(tnames), 1)
    pairs, inv, n_req = np.unique(
        rc[keep] * n_tpl + tc[keep], return_inverse=True, return_counts=True
    )
    p_cl = pairs // n_tpl
    tid = tnames[pairs % n_tpl]
    # template ids break ties of request counts: ranked by Arrow's string sort (numpy's
    # sort of Python strings cost ~1 s here at scale 1)
    trank = pc.rank(pa.array(tid, type=pa.large_string()), tiebreaker="dense").to_numpy()
    order = np.lexsort((trank, -n_req, p_cl))  # cluster, most requests, template id
    pos, run = _run_starts(p_cl[order])
    n_templates = np.bincount(run)
    top = order[pos < MAX_ITEMS]
    top_run = run[pos < MAX_ITEMS]
    # the first MAX_ITEMS request rows (by _row) of each top pair
    rows = requests["_row"].to_numpy() if "_row" in requests.columns else np.arange(len(requests))
    is_top = np.zeros(len(pairs), dtype=bool)
    is_top[top] = True
    hit = np.flatnonzero(is_top[inv])
    r_pair, r_row = inv[hit], rows[keep[hit]]
    by = np.lexsort((r_row, r_pair))
    r_pair, r_row = r_pair[by], r_row[by]
    first, _ = _run_starts(r_pair)
    r_pair, r_row = r_pair[first < MAX_ITEMS], r_row[first < MAX_ITEMS]
    bounds = np.searchsorted(r_pair, top), np.searchsorted(r_pair, top, side="right")
    out: dict[str, tuple[int, list[tuple]]] = {}
    for j, p in enumerate(top):
        row_list = [int(x) for x in r_row[bounds[0][j] : bounds[1][j]]]
        entry = out.setdefault(str(cnames[p_cl[p]]), (int(n_templates[top_run[j]]), []))
        entry[1].append((str(tid[p]), int(n_req[p]), row_list))
    return out


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
    """Everything :func:`cluster_evidence` needs, on integer codes throughout (clusters
    and identifiers sorted by their ids, requests by account position and template
    code; no per-request string and no pandas group-by over strings)."""
    acc_cluster = scores.accounts["cluster_id"].to_numpy(dtype=object)
    ccode, cnames = _sorted_codes(acc_cluster)
    shared_by = _shared_identifiers(ag, ccode, cnames)
    rows_by: dict[str, tuple[int, list[tuple]]] = {}
    if requests is not None and request_template is not None and len(requests):
        rows_by = _template_rows(scores, ccode, cnames, requests, request_template)
    if len(templates):
        # only the templates evidence can name (the table has every template)
        named = {t for _, items in rows_by.values() for t, _, _ in items}
        tpl = templates[templates["template_id"].isin(named).to_numpy(dtype=bool)]
        tpl = tpl.drop_duplicates("template_id").set_index("template_id")
    else:
        tpl = templates
    idf = ag.identifiers
    families: dict[str, dict[str, Any]] = {}
    if coordination is not None:
        fn = coordination.family_nats
        cid = acc_cluster
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
    base_logit = float(np.median(ctx.logits[members_idx]))
    size = len(members_idx)
    items: list[Evidence] = []
    for kind, parts in _kind_contributions(contrib, model.features).items():
        total = float(sum(parts.values()))
        details: dict[str, Any] = {
            "features": {
                f: {"value": round(float(feat_mean[f]), 4), "contribution": round(c, 4)}
                for f, c in parts.items()
            },
            "score_without": round(float(sigmoid(base_logit - total)), 4),
        }
        extra = _support(ctx, cluster_id, kind, details)
        summary = _summary(kind, feat_mean, size, extra)
        summary += f"; without it the score would be {details['score_without']:.2f}"
        items.append(Evidence(kind=kind, summary=summary, contribution=total, details=details))
    feedback = _feedback_evidence(ctx, members_idx)
    if feedback is not None:
        items.append(feedback)
    return ordered(items)


def _support(
    ctx: EvidenceContext, cluster_id: str, kind: str, details: dict[str, Any]
) -> dict[str, Any]:
    """Add to ``details`` what supports evidence ``kind`` of the cluster (identifiers,
    templates, coordination families); returns what its summary reads (``extra``)."""
    sh = ctx.shared.get(cluster_id, {})
    n_tpl, tr = ctx.template_rows.get(cluster_id, (0, []))
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
            details["templates"] = _template_items(ctx.templates, tr, example=False)
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
        details["templates"] = _template_items(ctx.templates, tr, example=True)
    return extra


def _template_items(info: pd.DataFrame, top: list[tuple], *, example: bool) -> list[dict[str, Any]]:
    """The cluster's top templates ``(template_id, requests, rows)`` as evidence details,
    with their skeleton (and an example request when ``example``)."""
    out = []
    for t, n, rows_ in top:
        item: dict[str, Any] = {
            "template_id": t,
            "requests_in_cluster": n,
            "skeleton": _text(info, t, "skeleton"),
        }
        if example:
            item["example"] = _text(info, t, "example")
        item["request_rows"] = rows_
        out.append(item)
    return out


def _feedback_evidence(ctx: EvidenceContext, members_idx: np.ndarray) -> Evidence | None:
    """The analysts' verdicts on members (confirmed farm, appeal upheld), if any."""
    acc_ids = ctx.account_ids[members_idx]
    overrides = ctx.overrides[members_idx]
    n_conf = int((overrides == "confirmed_farm").sum())
    n_app = int((overrides == "appeal_upheld").sum())
    if not (n_conf or n_app):
        return None
    return Evidence(
        kind="feedback",
        summary=f"analyst feedback: {n_conf} member(s) confirmed farm, {n_app} appeal(s) upheld",
        contribution=0.0,
        details={
            "confirmed_farm": [str(a) for a in acc_ids[overrides == "confirmed_farm"][:50]],
            "appeal_upheld": [str(a) for a in acc_ids[overrides == "appeal_upheld"][:50]],
        },
    )


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
