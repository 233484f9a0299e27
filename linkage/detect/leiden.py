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


def _leiden(sub: ig.Graph, *, resolution: float, settings: DetectSettings, seed: int) -> np.ndarray:
    """Leiden on one component: modularity with resolution (RB configuration model)."""
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
            )
        finally:
            random.setstate(state)
        return np.asarray(part.membership, dtype=np.int64)
    part = la.find_partition(
        sub,
        la.RBConfigurationVertexPartition,
        weights="weight",
        resolution_parameter=resolution,
        n_iterations=settings.n_iterations,
        seed=seed,
    )
    return np.asarray(part.membership, dtype=np.int64)


def detect_clusters(
    ag: AccountGraph,
    *,
    settings: DetectSettings,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Clustering:
    n = ag.n_accounts
    src, dst, w = ag.src, ag.dst, ag.weight
    if n:
        adj = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
        _, comp = connected_components(adj, directed=False)
        comp = comp.astype(np.int64)
    else:
        comp = np.empty(0, dtype=np.int64)
    sizes = np.bincount(comp, minlength=comp.max() + 1 if n else 0)
    community = np.full(n, -1, dtype=np.int64)
    w_total = float(w.sum())
    if settings.null == "information" and not ag.incidence.empty:
        # the null spreads each account's links over all the identity information of the
        # world (every identifier of every account, shared or not, in nats), not only over
        # what happens to be shared: in a small world of strangers a lone ring would
        # otherwise hold most of the link weight and look "expected" (see docs/MODEL.md)
        inc_ = ag.incidence
        info = float(
            (
                ag.identifiers["weight"].to_numpy()[inc_["ident"].to_numpy()] * inc_["a"].to_numpy()
            ).sum()
        )
        w_total = max(w_total, info / 2.0)
    # Components whose best partition is provably "all together": with the whole graph's
    # null, any split of component c gains at most resolution * m_c^2 / M in modularity and
    # costs at least its lightest edge, so if  w_min(c) >= resolution * m_c^2 / M  the single
    # community is optimal and Leiden is not needed (most small components: families, pairs).
    ecomp = comp[src] if len(src) else np.empty(0, dtype=np.int64)
    m_c = np.bincount(ecomp, weights=w, minlength=len(sizes))
    w_min = np.full(len(sizes), np.inf)
    if len(src):
        np.minimum.at(w_min, ecomp, w)
    bound = settings.resolution * m_c**2 / w_total if w_total > 0 else np.zeros(len(sizes))
    whole = (sizes >= 2) & (w_min >= bound)
    rank = np.full(len(sizes), -1, dtype=np.int64)
    rank[whole] = np.arange(int(whole.sum()))
    in_whole = rank[comp] >= 0
    community[in_whole] = rank[comp[in_whole]]
    next_label = int(whole.sum())
    big = np.flatnonzero((sizes >= 3) & ~whole)
    # vertices and edges grouped by component (one stable sort each), so every component's
    # igraph graph is built straight from its slice of the edge arrays
    order = np.argsort(comp, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    e_order = np.argsort(ecomp, kind="stable")
    e_bounds = np.r_[0, np.cumsum(np.bincount(ecomp, minlength=len(sizes)))]
    local = np.empty(n, dtype=np.int64)
    for done, c in enumerate(big[np.argsort(-sizes[big], kind="stable")], 1):
        verts = order[bounds[c] : bounds[c + 1]]
        local[verts] = np.arange(len(verts))
        es = e_order[e_bounds[c] : e_bounds[c + 1]]
        sub = ig.Graph(
            n=len(verts),
            edges=np.column_stack([local[src[es]], local[dst[es]]]),
            directed=False,
        )
        sub.es["weight"] = w[es]
        # the null model is the whole graph's: scaling the resolution by the component's share
        # of the total weight makes per-component Leiden optimise the global modularity, so
        # splitting by component changes nothing and a small isolated group is not shattered
        res = settings.resolution * m_c[c] / w_total if w_total > 0 else settings.resolution
        memb = _leiden(sub, resolution=res, settings=settings, seed=seed)
        del sub
        community[verts] = memb + next_label
        next_label += int(memb.max()) + 1
        if progress is not None and done % 200 == 0:
            progress(done, len(big))

    # total ties: what an account would have if every co-holder were in its cluster
    inc = ag.incidence
    if inc.empty:
        total = np.zeros(n)
    else:
        ident = inc["ident"].to_numpy()
        shared = ag.identifiers["df"].to_numpy()[ident] >= 2
        tw = ag.identifiers["weight"].to_numpy()[ident] * inc["a"].to_numpy() * shared
        total = np.bincount(inc["acc"].to_numpy(), weights=tw, minlength=n)

    # release weakly tied members (ties counted on the identifiers, not on the sparsified
    # projection, so a crowd behind one NAT is not held together by the sparsifier's edges),
    # then dissolve clusters that became too small; twice, since releases change the ties
    min_link = settings.min_link_bits_share * np.log(ag.n_reference)
    for _ in range(2):
        internal = cluster_ties(ag, community)
        community[internal < min_link] = -1
        labels, counts = np.unique(community[community >= 0], return_counts=True)
        community[np.isin(community, labels[counts < settings.min_cluster_size])] = -1
    internal = np.where(community >= 0, cluster_ties(ag, community), 0.0)

    # relabel densely, ordered by content id so that output is independent of processing order
    names = np.asarray(ag.accounts, dtype=object)
    kept = np.unique(community[community >= 0])
    ids: list[str] = []
    if len(kept):
        sel = community >= 0
        frame = pd.DataFrame({"c": community[sel], "name": names[sel]})
        ids_by_label = frame.groupby("c")["name"].agg(lambda s: _cluster_id(list(s)))
        ordered = ids_by_label.sort_values()
        remap = np.full(community.max() + 1, -1, dtype=np.int64)
        remap[ordered.index.to_numpy()] = np.arange(len(ordered))
        community = np.where(community >= 0, remap[np.maximum(community, 0)], -1)
        ids = ordered.to_list()
    log.info(
        "detect: %d components (%d whole by the no-split bound), %d solved by Leiden, "
        "%d clusters covering %d accounts",
        len(sizes),
        int(whole.sum()),
        len(big),
        len(ids),
        int((community >= 0).sum()),
    )
    return Clustering(
        cluster=community,
        cluster_ids=ids,
        strength_in=internal,
        strength_total=total,
        n_components=len(sizes),
    )
