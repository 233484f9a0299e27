"""Stage 4: candidate clusters by Leiden, one connected component at a time.

Principle for the resolution: modularity with resolution 1 (``RBConfigurationVertexPartition``),
i.e. a group is a community when its members are linked more than the
configuration-model null -- random sharing at the observed per-account link
strengths -- predicts.  No resolution is tuned to a world.

Work splits by connected component (a component is the unit a distributed run
would ship to a worker): Leiden never joins disconnected parts, so components are
independent and each is solved with the same seed on its own subgraph, which makes
the result independent of everything outside the component.

After Leiden, a member must be linked to the rest of its cluster by at least
``min_link_nats`` of evidence (the sum of its projected edge weights inside the
cluster, in nats of identifier rarity); weaker members -- strangers glued by a
sparsified supernode such as a carrier NAT -- are released to "unclustered".
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import igraph as ig
import leidenalg as la
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from linkage.errors import LinkageError
from linkage.graph.build import AccountGraph
from linkage.settings import DetectSettings

log = logging.getLogger(__name__)


@dataclass
class Clustering:
    """Cluster membership of every account (vertex order of the graph)."""

    cluster: np.ndarray  # int cluster index per vertex, -1 = unclustered
    cluster_ids: list[str]  # stable text id per cluster index
    strength_in: np.ndarray  # per vertex: ties to its own cluster (nats, see cluster_ties)
    strength_total: np.ndarray  # per vertex: ties if all co-holders were in its cluster
    n_components: int
    # per vertex: Leiden's community before weak members are released (-1 = a unit Leiden
    # did not solve and the bound did not keep whole); the best warm start for a next run
    community: np.ndarray | None = None

    def labels(self) -> np.ndarray:
        """A cluster label for every vertex: unclustered accounts are their own cluster of one
        (labels after the real clusters)."""
        n = len(self.cluster)
        return np.where(self.cluster >= 0, self.cluster, len(self.cluster_ids) + np.arange(n))

    def membership_frame(self, accounts: pd.Index) -> pd.DataFrame:
        cid = np.array([*self.cluster_ids, None], dtype=object)[self.cluster]
        return pd.DataFrame(
            {
                "account_id": accounts,
                "cluster_id": pd.array(cid, dtype="string"),
                "strength_in": self.strength_in,
                "strength_total": self.strength_total,
            }
        )


def _cluster_id(members: list[str]) -> str:
    """A content id: hash of the sorted member ids (the store maps it to a stable id)."""
    h = hashlib.blake2b("\n".join(sorted(members)).encode(), digest_size=6).hexdigest()
    return f"c{h}"


def incidence_ties(ag: AccountGraph, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per account-identifier row: its ties inside and outside the account's cluster.

    ``inside = w_i * a_ui * (m_ic - 1) / (df_i - 1)`` and
    ``outside = w_i * a_ui * (df_i - m_ic) / (df_i - 1)`` nats, with ``m_ic`` the holders of
    ``i`` inside the account's cluster ``label[u]``; both 0 for identifiers held by one
    account and for accounts with a negative label (unclustered).
    """
    inc = ag.incidence
    acc = inc["acc"].to_numpy()
    ident = inc["ident"].to_numpy()
    lab = label[acc]
    sel = lab >= 0
    df = ag.identifiers["df"].to_numpy()[ident]
    w = ag.identifiers["weight"].to_numpy()[ident]
    a = inc["a"].to_numpy()
    # holders of identifier i inside the account's cluster (int64 keys, one sort)
    key = ident[sel].astype(np.int64) * (int(lab.max()) + 1 if sel.any() else 1) + lab[sel]
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    m = np.zeros(len(acc), dtype=np.int64)
    m[sel] = cnt[inv]
    ok = sel & (df >= 2)
    denom = np.maximum(df - 1, 1)
    inside = np.where(ok, w * a * (m - 1) / denom, 0.0)
    outside = np.where(ok, w * a * (df - m) / denom, 0.0)
    return inside, outside


def cluster_ties(ag: AccountGraph, community: np.ndarray) -> np.ndarray:
    """Per account: rarity-weighted share of its identifiers held by other members.

    ``sum_i w_i * a_ui * (m_ic - 1) / (df_i - 1)`` nats (see :func:`incidence_ties`);
    0 for unclustered accounts.
    """
    n = len(community)
    if ag.incidence.empty:
        return np.zeros(n)
    inside, _ = incidence_ties(ag, community)
    return np.bincount(ag.incidence["acc"].to_numpy(), weights=inside, minlength=n)


def leiden_membership(
    sub: ig.Graph,
    *,
    resolution: float,
    settings: DetectSettings,
    seed: int,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Leiden on one component: modularity with resolution (RB configuration model).

    ``initial``: a starting membership (one int per vertex of ``sub``, labels in
    ``0..n-1``) that Leiden improves instead of starting from singletons (warm start).
    """
    init = None if initial is None else [int(x) for x in initial]
    if settings.backend == "igraph":
        # igraph's C implementation of the same algorithm (same author, much faster on
        # large sparse graphs); it draws from Python's `random`, which we seed.
        state = random.getstate()
        random.seed(seed)
        try:
            part = sub.community_leiden(
                objective_function="modularity",
                weights="weight",
                resolution=resolution,
                n_iterations=settings.n_iterations,
                initial_membership=init,
            )
        finally:
            random.setstate(state)
        return np.asarray(part.membership, dtype=np.int64)
    part = la.find_partition(
        sub,
        la.RBConfigurationVertexPartition,
        initial_membership=init,
        weights="weight",
        resolution_parameter=resolution,
        n_iterations=settings.n_iterations,
        seed=seed,
    )
    return np.asarray(part.membership, dtype=np.int64)


def null_total(ag: AccountGraph, *, settings: DetectSettings) -> float:
    """The modularity null's total weight ``M`` (the pair null is ``k_u k_v / 2M``).

    ``null = "information"``: the null spreads each account's links over all the identity
    information of the world (every identifier of every account, shared or not, in nats),
    not only over what happens to be shared: in a small world of strangers a lone ring
    would otherwise hold most of the link weight and look "expected" (see docs/MODEL.md).
    """
    w_total = float(ag.weight.sum())
    if settings.null == "information" and not ag.incidence.empty:
        inc = ag.incidence
        info = float(
            (
                ag.identifiers["weight"].to_numpy()[inc["ident"].to_numpy()] * inc["a"].to_numpy()
            ).sum()
        )
        w_total = max(w_total, info / 2.0)
    return w_total


@dataclass(frozen=True)
class Plan:
    """How detection splits the graph: units Leiden solves independently.

    A unit is a connected component of the graph of *above-null* edges
    (``w_uv > resolution * k_u k_v / 2M``, ``k`` the full strengths). An edge between two
    units is at or below the null for its pair, and so is every other pair between them
    (they have no edge at all), so joining any two parts of different units never gains:
    some optimal partition has every community inside one unit (docs/MODEL.md). Such
    edges are dropped from the units' subgraphs and their weight kept as a self-loop on
    each end (``w/2`` each), so every account's strength -- its share of the null -- is
    unchanged. Without cross edges the units are the connected components.
    """

    unit: np.ndarray  # unit id per vertex
    sizes: np.ndarray  # vertices per unit
    intra: np.ndarray  # edge positions (into ag.src/dst/weight) inside a unit, in edge order
    loop: np.ndarray  # per vertex: self-loop weight standing for its dropped cross edges
    m_unit: np.ndarray  # per unit: its edges' weight + its self-loops' (the null's share)
    whole: np.ndarray  # per unit: proven optimal as one community (no-split bound)
    w_total: float  # the null's total weight M
    n_cross: int  # edges dropped between units


def plan_units(ag: AccountGraph, *, settings: DetectSettings) -> Plan:
    """Units, their null shares and which ones the no-split bound settles (see :class:`Plan`)."""
    n = ag.n_accounts
    src, dst, w = ag.src, ag.dst, ag.weight
    w_total = null_total(ag, settings=settings)
    if len(src) and w_total > 0 and settings.split_below_null:
        k = np.bincount(src, weights=w, minlength=n) + np.bincount(dst, weights=w, minlength=n)
        above = w > settings.resolution * k[src] * k[dst] / (2.0 * w_total)
    else:
        above = np.ones(len(src), dtype=bool)
    if n:
        adj = coo_matrix(
            (np.ones(int(above.sum()), dtype=np.int8), (src[above], dst[above])), shape=(n, n)
        )
        _, unit = connected_components(adj, directed=False)
        unit = unit.astype(np.int64)
    else:
        unit = np.empty(0, dtype=np.int64)
    sizes = np.bincount(unit, minlength=unit.max() + 1 if n else 0)
    cross = unit[src] != unit[dst] if len(src) else np.zeros(0, dtype=bool)
    n_cross = int(cross.sum())
    if n_cross:
        cw = w[cross]
        loop = 0.5 * (
            np.bincount(src[cross], weights=cw, minlength=n)
            + np.bincount(dst[cross], weights=cw, minlength=n)
        )
        intra = np.flatnonzero(~cross)
    else:
        loop = np.zeros(n)
        intra = np.arange(len(src))
    eunit = unit[src[intra]]
    m_unit = np.bincount(eunit, weights=w[intra], minlength=len(sizes))
    if n_cross:
        m_unit = m_unit + np.bincount(unit, weights=loop, minlength=len(sizes))
    # Units whose best partition is provably "all together": splitting unit c into r parts
    # gains at most resolution * m_c^2 / M * (r-1)/r in the null and costs at least r-1
    # above-null edges (the parts are connected by them), so if
    # w_min(c) >= resolution * m_c^2 / M  the single community is optimal and Leiden is
    # not needed (most small components: families, pairs). Self-loops never cross a cut.
    w_min = np.full(len(sizes), np.inf)
    if len(intra):
        sel = intra[above[intra]]
        np.minimum.at(w_min, unit[src[sel]], w[sel])
    bound = settings.resolution * m_unit**2 / w_total if w_total > 0 else np.zeros(len(sizes))
    whole = (sizes >= 2) & (w_min >= bound)
    if settings.split_below_null:
        # a unit of two is joined by one above-null edge: together beats apart, exactly
        whole |= sizes == 2
    return Plan(unit, sizes, intra, loop, m_unit, whole, w_total, n_cross)


def previous_membership(accounts: pd.Index, previous: pd.DataFrame) -> np.ndarray:
    """A warm start for :func:`detect_clusters` from a previous run's membership.

    ``previous``: ``account_id, cluster_id`` (a run directory's ``accounts.csv``; cluster
    ids are any hashable labels, missing = unclustered). Returns one int per account of
    ``accounts`` (vertex order): the previous cluster's index, -1 for accounts that were
    unclustered or are new.
    """
    prev = previous.loc[previous["cluster_id"].notna(), ["account_id", "cluster_id"]]
    codes, _ = pd.factorize(prev["cluster_id"].astype(str), sort=True)
    label = pd.Series(codes, index=pd.Index(prev["account_id"].astype(str)))
    label = label[~label.index.duplicated(keep="last")]
    out = label.reindex(pd.Index(accounts).astype(str)).to_numpy(dtype=np.float64)
    return np.where(np.isnan(out), -1, out).astype(np.int64)


def _local_initial(initial: np.ndarray) -> np.ndarray:
    """Labels ``0..n-1`` for one unit: previous clusters densely, then one label per
    vertex without a previous cluster (each starts alone)."""
    out = np.empty(len(initial), dtype=np.int64)
    has = initial >= 0
    _, inv = np.unique(initial[has], return_inverse=True)
    out[has] = inv
    n_old = int(inv.max()) + 1 if has.any() else 0
    out[~has] = n_old + np.arange(int((~has).sum()))
    return out


def _solve_units(
    ag: AccountGraph,
    plan: Plan,
    *,
    settings: DetectSettings,
    seed: int,
    initial: np.ndarray | None,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """Leiden's community per vertex: units the no-split bound keeps whole are one
    community each, units of >= 3 vertices are solved on their own subgraph (largest
    first), the rest stay -1."""
    n = ag.n_accounts
    src, dst, w = ag.src, ag.dst, ag.weight
    comp, sizes, whole, w_total = plan.unit, plan.sizes, plan.whole, plan.w_total
    community = np.full(n, -1, dtype=np.int64)
    rank = np.full(len(sizes), -1, dtype=np.int64)
    rank[whole] = np.arange(int(whole.sum()))
    in_whole = rank[comp] >= 0
    community[in_whole] = rank[comp[in_whole]]
    next_label = int(whole.sum())
    big = np.flatnonzero((sizes >= 3) & ~whole)
    # vertices and edges grouped by unit (one stable sort each), so every unit's igraph
    # graph is built straight from its slice of the edge arrays
    order = np.argsort(comp, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    intra = plan.intra
    ecomp = comp[src[intra]]
    e_order = intra[np.argsort(ecomp, kind="stable")]
    e_bounds = np.r_[0, np.cumsum(np.bincount(ecomp, minlength=len(sizes)))]
    local = np.empty(n, dtype=np.int64)
    for done, c in enumerate(big[np.argsort(-sizes[big], kind="stable")], 1):
        verts = order[bounds[c] : bounds[c + 1]]
        local[verts] = np.arange(len(verts))
        es = e_order[e_bounds[c] : e_bounds[c + 1]]
        s_loc, d_loc, ew = local[src[es]], local[dst[es]], w[es]
        if plan.n_cross:
            lv = verts[plan.loop[verts] > 0]
            s_loc = np.r_[s_loc, local[lv]]
            d_loc = np.r_[d_loc, local[lv]]
            ew = np.r_[ew, plan.loop[lv]]
        # edges as an iterator of int pairs: igraph reads it ~2.5x faster than numpy rows
        sub = ig.Graph(
            n=len(verts), edges=zip(s_loc.tolist(), d_loc.tolist(), strict=True), directed=False
        )
        sub.es["weight"] = ew.tolist()
        # the null model is the whole graph's: scaling the resolution by the unit's share
        # of the total weight makes per-unit Leiden optimise the global modularity, so
        # splitting by unit changes nothing and a small isolated group is not shattered
        res = settings.resolution * plan.m_unit[c] / w_total if w_total > 0 else settings.resolution
        init = None if initial is None else _local_initial(initial[verts])
        memb = leiden_membership(sub, resolution=res, settings=settings, seed=seed, initial=init)
        del sub
        community[verts] = memb + next_label
        next_label += int(memb.max()) + 1
        if progress is not None and done % 200 == 0:
            progress(done, len(big))
    return community


def _total_ties(ag: AccountGraph) -> np.ndarray:
    """Per account: its ties if every co-holder of its identifiers were in its cluster."""
    inc = ag.incidence
    if inc.empty:
        return np.zeros(ag.n_accounts)
    ident = inc["ident"].to_numpy()
    shared = ag.identifiers["df"].to_numpy()[ident] >= 2
    tw = ag.identifiers["weight"].to_numpy()[ident] * inc["a"].to_numpy() * shared
    return np.bincount(inc["acc"].to_numpy(), weights=tw, minlength=ag.n_accounts)


def _release_weak(
    ag: AccountGraph, community: np.ndarray, *, settings: DetectSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Members tied to their cluster by less than ``min_link_bits_share * ln N`` released
    (-1), then clusters below ``min_cluster_size`` dissolved; twice, since releases change
    the ties. Returns the new labels and every member's ties to its cluster (0 if none).

    Ties are counted on the identifiers, not on the sparsified projection, so a crowd
    behind one NAT is not held together by the sparsifier's edges."""
    community = community.copy()
    min_link = settings.min_link_bits_share * np.log(ag.n_reference)
    for _ in range(2):
        internal = cluster_ties(ag, community)
        community[internal < min_link] = -1
        labels, counts = np.unique(community[community >= 0], return_counts=True)
        community[np.isin(community, labels[counts < settings.min_cluster_size])] = -1
    internal = np.where(community >= 0, cluster_ties(ag, community), 0.0)
    return community, internal


def _relabel(accounts: pd.Index, community: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Dense labels ordered by content id (the hash of the sorted member ids), so the
    output does not depend on processing order; returns the labels and the ids."""
    names = np.asarray(accounts, dtype=object)
    kept = np.unique(community[community >= 0])
    if not len(kept):
        return community, []
    sel = community >= 0
    frame = pd.DataFrame({"c": community[sel], "name": names[sel]})
    ids_by_label = frame.groupby("c")["name"].agg(lambda s: _cluster_id(list(s)))
    ordered = ids_by_label.sort_values()
    remap = np.full(community.max() + 1, -1, dtype=np.int64)
    remap[ordered.index.to_numpy()] = np.arange(len(ordered))
    return np.where(community >= 0, remap[np.maximum(community, 0)], -1), ordered.to_list()


def detect_clusters(
    ag: AccountGraph,
    *,
    settings: DetectSettings,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    initial: np.ndarray | None = None,
) -> Clustering:
    """Candidate clusters: Leiden per unit (:class:`Plan`), then weak members released.

    ``initial``: a warm start, one int label per vertex (-1 = none; see
    :func:`previous_membership`): Leiden improves that partition instead of starting from
    singletons, so a daily run on a slightly changed world starts near its optimum.
    """
    n = ag.n_accounts
    if initial is not None and len(initial) != n:
        raise LinkageError(
            f"the warm start has {len(initial)} labels for {n} accounts: build it with "
            "previous_membership(graph.accounts, previous)"
        )
    plan = plan_units(ag, settings=settings)
    leiden_community = _solve_units(
        ag, plan, settings=settings, seed=seed, initial=initial, progress=progress
    )
    community, internal = _release_weak(ag, leiden_community, settings=settings)
    community, ids = _relabel(ag.accounts, community)
    log.info(
        "detect: %d units (%d edges below the null between them dropped; %d whole by the "
        "no-split bound), %d solved by Leiden%s, %d clusters covering %d accounts",
        len(plan.sizes),
        plan.n_cross,
        int(plan.whole.sum()),
        int(((plan.sizes >= 3) & ~plan.whole).sum()),
        "" if initial is None else " (warm start)",
        len(ids),
        int((community >= 0).sum()),
    )
    return Clustering(
        cluster=community,
        cluster_ids=ids,
        strength_in=internal,
        strength_total=_total_ties(ag),
        n_components=len(plan.sizes),
        community=leiden_community,
    )
