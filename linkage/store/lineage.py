"""Stable cluster ids across runs, and the lineage between runs' clusters.

Every ``linkage detect`` numbers its clusters afresh; the store maps them onto
**stable ids** so that an analyst's "cluster cl-000042" stays the same farm from
one run to the next.  :func:`remap_clusters` is a pure function on member sets;
:func:`cluster_lineage` reads a cluster's recorded lineage from the store.

Rules (``threshold`` = 0.5; ``share(N, O) = |N ∩ O| / |O|``, the fraction of the
*old* cluster's members found in the new one):

* **continued** — a new cluster ``N`` that holds more than half of an old
  cluster ``O``'s members (``share(N, O) > 0.5``) keeps ``O``'s id.  At most one
  new cluster can hold more than half of ``O``, so ids are never duplicated.
  When ``N`` holds more than half of several old clusters, it keeps the id of
  the one it shares most accounts with (ties: larger share, then smaller id).
* **merged** — each of those other old clusters is recorded as merged into ``N``.
* **split** — an old cluster whose members now sit in two or more new clusters
  (each holding at least ``min_shared`` = 2 of them): every such new cluster that
  did not keep its id is recorded as a split of it.
* **regrew** — a new cluster with a fresh id whose members include accounts of
  a *banned* cluster (level ``block`` in some run, or confirmed as a farm by
  feedback) whose id is not carried by the new run — the farm was taken down
  (or dissolved) and is coming back.
* **new** — a fresh cluster with none of the relations above (parent empty).

``overlap`` on each lineage edge is ``share(N, parent)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

THRESHOLD = 0.5
MIN_SHARED = 2


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """One lineage row: new (stable) cluster id, its parent's stable id, relation, overlap."""

    cluster_id: str
    parent_cluster_id: str | None
    relation: str
    overlap: float


@dataclass
class Remap:
    """Result of :func:`remap_clusters`."""

    ids: dict[str, str] = field(default_factory=dict)  # run's cluster id -> stable id
    edges: list[LineageEdge] = field(default_factory=list)


@dataclass(frozen=True)
class _Overlaps:
    """How many members each new cluster shares with each old cluster (``counts[new
    run id][old stable id] = |N ∩ O|``, only the old clusters it shares any with)."""

    counts: dict[str, dict[str, int]]
    previous: Mapping[str, frozenset[str]]

    @classmethod
    def of(
        cls, new: Mapping[str, frozenset[str]], previous: Mapping[str, frozenset[str]]
    ) -> _Overlaps:
        """Overlaps of every new cluster (in ``new``'s order) with ``previous``."""
        owner: dict[str, str] = {}
        for old_id, members in previous.items():
            for a in members:
                owner[a] = old_id
        counts: dict[str, dict[str, int]] = {}
        for nid, members in new.items():
            hits: dict[str, int] = defaultdict(int)
            for a in members:
                o = owner.get(a)
                if o is not None:
                    hits[o] += 1
            counts[nid] = dict(hits)
        return cls(counts, previous)

    def share(self, nid: str, oid: str) -> float:
        """``share(N, O)``: the fraction of old cluster ``oid``'s members in ``nid``."""
        return self.counts[nid].get(oid, 0) / max(len(self.previous[oid]), 1)


def _continue_ids(
    order: list[str], ov: _Overlaps, claims: dict[str, list[str]], out: Remap
) -> dict[str, str]:
    """Give each new cluster that more-than-half-holds old clusters the id of the one it
    shares most with (``continued``; the others ``merged`` into it); returns new run id
    -> the old stable id it continues."""
    inherited: dict[str, str] = {}
    for nid in order:
        if not claims[nid]:
            continue
        best = min(claims[nid], key=lambda o: (-ov.counts[nid][o], -ov.share(nid, o), o))
        inherited[nid] = best
        out.ids[nid] = best
        out.edges.append(LineageEdge(best, best, "continued", round(ov.share(nid, best), 6)))
        for oid in sorted(claims[nid]):
            if oid != best:
                out.edges.append(LineageEdge(best, oid, "merged", round(ov.share(nid, oid), 6)))
    return inherited


def _split_edges(
    order: list[str],
    ov: _Overlaps,
    claims: dict[str, list[str]],
    inherited: dict[str, str],
    out: Remap,
    *,
    min_shared: int,
) -> None:
    """``split`` edges: an old cluster spread over >= 2 new clusters (each holding at
    least ``min_shared`` of it) is a parent of every one that did not keep its id."""
    children: dict[str, list[str]] = defaultdict(list)
    for nid in order:
        for oid, n in ov.counts[nid].items():
            if n >= min_shared:
                children[oid].append(nid)
    for oid in sorted(children):
        kids = children[oid]
        if len(kids) < 2:
            continue
        for nid in kids:
            if inherited.get(nid) == oid or oid in claims[nid]:
                continue
            out.edges.append(LineageEdge(out.ids[nid], oid, "split", round(ov.share(nid, oid), 6)))


def _regrew_or_new_edges(
    new: Mapping[str, frozenset[str]],
    order: list[str],
    inherited: dict[str, str],
    banned: Mapping[str, frozenset[str]],
    out: Remap,
) -> None:
    """For each new cluster with a fresh id: ``regrew`` from every banned cluster whose
    id the run does not carry and whose members it holds, else ``new`` when it has no
    edge at all."""
    carried = set(out.ids.values())
    gone_banned = {b: m for b, m in banned.items() if b not in carried and m}
    banned_owner: dict[str, list[str]] = defaultdict(list)
    for b, members in gone_banned.items():
        for a in members:
            banned_owner[a].append(b)
    have_edge = {e.cluster_id for e in out.edges}
    for nid in order:
        if nid in inherited:
            continue
        sid = out.ids[nid]
        hits: dict[str, int] = defaultdict(int)
        for a in new[nid]:
            for b in banned_owner.get(a, ()):
                hits[b] += 1
        for b in sorted(hits):
            out.edges.append(LineageEdge(sid, b, "regrew", round(hits[b] / len(gone_banned[b]), 6)))
        if not hits and sid not in have_edge:
            out.edges.append(LineageEdge(sid, None, "new", 0.0))


def remap_clusters(
    new: Mapping[str, frozenset[str]],
    previous: Mapping[str, frozenset[str]],
    *,
    banned: Mapping[str, frozenset[str]] | None = None,
    next_id: Callable[[], str],
    threshold: float = THRESHOLD,
    min_shared: int = MIN_SHARED,
) -> Remap:
    """Assign stable ids to ``new`` clusters (run id -> members) given ``previous``.

    ``previous`` maps stable id -> members for the clusters of the latest imported
    run; ``banned`` maps stable id -> members (as last seen) for every cluster ever
    blocked or confirmed as a farm; ``next_id`` returns a fresh stable id.
    Deterministic: new clusters are visited by size (desc) then run id.
    """
    banned = banned or {}
    order = sorted(new, key=lambda k: (-len(new[k]), k))
    ov = _Overlaps.of({nid: new[nid] for nid in order}, previous)
    # old clusters more than half-held by each new cluster
    claims: dict[str, list[str]] = {
        nid: [oid for oid in ov.counts[nid] if ov.share(nid, oid) > threshold] for nid in order
    }
    out = Remap()
    inherited = _continue_ids(order, ov, claims, out)
    for nid in order:
        if nid not in out.ids:
            out.ids[nid] = next_id()
    _split_edges(order, ov, claims, inherited, out, min_shared=min_shared)
    _regrew_or_new_edges(new, order, inherited, banned, out)
    return out


def _lineage_dict(r: Any) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "cluster_id": r.cluster_id,
        "parent_cluster_id": r.parent_cluster_id,
        "relation": r.relation,
        "overlap": r.overlap,
    }


def cluster_lineage(
    conn: Any, cluster_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(parents, children) lineage rows of a stable cluster id, in recording order."""
    from sqlalchemy import select

    from linkage.store.models import LineageRow

    parents = [
        _lineage_dict(r)
        for r in conn.execute(
            select(LineageRow).where(LineageRow.cluster_id == cluster_id).order_by(LineageRow.id)
        )
    ]
    children = [
        _lineage_dict(r)
        for r in conn.execute(
            select(LineageRow)
            .where(LineageRow.parent_cluster_id == cluster_id, LineageRow.cluster_id != cluster_id)
            .order_by(LineageRow.id)
        )
    ]
    return parents, children
