"""The cluster drawing of the console: the networkx graph of
:mod:`linkage.explain.graph`, trimmed to what reads on a screen and laid out.

Readable at 5 and at 5,000 accounts: at most ``MAX_IDENTIFIERS`` identifiers are
drawn (the ones that tie the most members, weighted by rarity; every template
the evidence names is kept), and above ``MAX_ACCOUNTS`` accounts, members that
hold the same drawn identifiers at the same level are drawn as one group node
("37 accounts"), so the picture keeps its structure instead of becoming a hairball.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import networkx as nx

from linkage.explain.graph import TEMPLATE_TYPE

__all__ = ["MAX_ACCOUNTS", "MAX_IDENTIFIERS", "drawing"]

MAX_ACCOUNTS = 120
MAX_IDENTIFIERS = 40
_LEVEL_RANK = {"block": 0, "review": 1, "clear": 2, "": 3}


def drawing(g: nx.Graph, *, seed: int = 0) -> dict[str, Any]:
    """Nodes (with x, y in [0, 1]), edges and notes of the console's picture of ``g``."""
    accounts = [n for n, d in g.nodes(data=True) if d.get("type") == "account"]
    keep_ids, n_shared = _kept_identifiers(g)
    kept = set(keep_ids)
    notes = []
    if n_shared > len(keep_ids):
        notes.append(
            f"{len(keep_ids)} of {n_shared} shared identifiers drawn "
            "(those that tie the most members, weighted by rarity)"
        )
    if len(accounts) <= MAX_ACCOUNTS:
        group_of, groups = _account_nodes(g, accounts)
    else:
        group_of, groups = _account_groups(g, accounts, kept)
        notes.append(
            f"{len(accounts):,} accounts drawn as {len(groups)} nodes: members holding the "
            "same drawn identifiers at the same level are one node (size = accounts)"
        )

    edges: dict[tuple[str, str], float] = defaultdict(float)
    for a in accounts:
        for n in g[a]:
            if n in kept:
                edges[(group_of[a], n)] += float(g.edges[a, n].get("weight") or 1.0)
    return {
        "nodes": _laid_out(g, groups, keep_ids, edges, seed=seed),
        "edges": [{"source": a, "target": b, "weight": round(w, 3)} for (a, b), w in edges.items()],
        "accounts": len(accounts),
        "identifiers": n_shared,
        "notes": notes,
    }


def _kept_identifiers(g: nx.Graph) -> tuple[list[str], int]:
    """The identifier and template nodes drawn (every template, then the strongest
    identifiers up to ``MAX_IDENTIFIERS`` in all), and how many the cluster shares."""
    idents = [n for n, d in g.nodes(data=True) if d.get("type") != "account"]

    def strength(n: str) -> float:
        d = g.nodes[n]
        return g.degree(n) * float(d.get("weight") or 1.0)

    templates = [n for n in idents if g.nodes[n].get("type") == TEMPLATE_TYPE]
    others = sorted(
        (n for n in idents if g.nodes[n].get("type") != TEMPLATE_TYPE), key=strength, reverse=True
    )
    keep_ids = others[: max(0, MAX_IDENTIFIERS - len(templates))] + templates
    n_shared = int(g.graph.get("shared_identifiers", len(others))) + len(templates)
    return keep_ids, n_shared


def _account_nodes(
    g: nx.Graph, accounts: list[str]
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """One drawn node per account: (account -> its node, node -> its attributes)."""
    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for a in accounts:
        d = g.nodes[a]
        group_of[a] = a
        groups[a] = {
            "id": a,
            "type": "account",
            "kind": "account",
            "label": d.get("account_id", a),
            "level": d.get("level", ""),
            "score": d.get("score"),
            "count": 1,
        }
    return group_of, groups


def _account_groups(
    g: nx.Graph, accounts: list[str], kept: set[str]
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Accounts with the same drawn identifiers and level as one node each (the largest
    ``MAX_ACCOUNTS - 3`` such groups; the rest one node per level, links unioned):
    (account -> its group node, node -> its attributes)."""
    by_sig: dict[tuple[str, frozenset[str]], list[str]] = defaultdict(list)
    for a in accounts:
        sig = frozenset(n for n in g[a] if n in kept)
        by_sig[(g.nodes[a].get("level", ""), sig)].append(a)
    ordered = sorted(by_sig.items(), key=lambda kv: (-len(kv[1]), _LEVEL_RANK.get(kv[0][0], 3)))
    head, tail = ordered[: MAX_ACCOUNTS - 3], ordered[MAX_ACCOUNTS - 3 :]
    merged: dict[tuple[str, frozenset[str]], list[str]] = dict(head)
    for (level, _sig), members in tail:  # the rest: one group per level, links unioned
        merged.setdefault((level, frozenset({"*rest*"})), []).extend(members)
    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for i, ((level, sig), members) in enumerate(sorted(merged.items(), key=lambda kv: -len(kv[1]))):
        gid = f"group:{i}"
        for a in members:
            group_of[a] = gid
        n = len(members)
        groups[gid] = {
            "id": gid,
            "type": "account",
            "kind": "account",
            "label": _group_label(n, sig)
            if n > 1
            else g.nodes[members[0]].get("account_id", members[0]),
            "level": level,
            "score": max(float(g.nodes[a].get("score") or 0) for a in members),
            "count": n,
        }
    return group_of, groups


def _laid_out(
    g: nx.Graph,
    groups: dict[str, dict[str, Any]],
    keep_ids: list[str],
    edges: dict[tuple[str, str], float],
    *,
    seed: int,
) -> list[dict[str, Any]]:
    """The drawn nodes (account nodes or groups, then the kept identifiers) with their
    spring-layout position scaled to [0, 1]."""
    h = nx.Graph()
    h.add_nodes_from(groups)
    h.add_nodes_from(keep_ids)
    for (a, b), w in edges.items():
        h.add_edge(a, b, weight=w)
    pos = (
        nx.spring_layout(h, seed=seed, weight=None, k=1.6 / math.sqrt(max(h.number_of_nodes(), 1)))
        if h.number_of_nodes() > 1
        else {n: (0.0, 0.0) for n in h}
    )
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def norm(v: float, lo: float, hi: float) -> float:
        return 0.5 if hi - lo < 1e-9 else round((v - lo) / (hi - lo), 4)

    nodes = []
    for n in h.nodes:
        x, y = pos[n]
        item = dict(groups[n]) if n in groups else _identifier_item(g, n)
        item["x"], item["y"] = norm(x, x0, x1), norm(y, y0, y1)
        nodes.append(item)
    return nodes


def _identifier_item(g: nx.Graph, n: str) -> dict[str, Any]:
    """The drawn attributes of identifier or template node ``n``."""
    d = g.nodes[n]
    return {
        "id": n,
        "type": d.get("type"),
        "kind": d.get("kind"),
        "label": d.get("value", n),
        "members": int(d.get("members") or g.degree(n)),
        "holders": d.get("holders"),
        "weight": round(float(d.get("weight") or 0.0), 3),
        "skeleton": d.get("skeleton"),
        "count": 1,
    }


def _group_label(n: int, sig: frozenset[str]) -> str:
    if not sig:
        return f"{n:,} accounts, none of the drawn identifiers"
    if "*rest*" in sig:
        return f"{n:,} other accounts"
    return f"{n:,} accounts"
