"""FRAUDAR: camouflage-resistant dense-block detection, the bipartite peer.

Reference: B. Hooi, H. A. Song, A. Beutel, N. Shah, K. Shin, C. Faloutsos,
"FRAUDAR: Bounding Graph Fraud in the Face of Camouflage", KDD 2016,
https://doi.org/10.1145/2939672.2939747

Graph: the bipartite account × identifier graph (any kind of identifier).
Identifiers seen with a single account link nothing and are left out.  Edge
weights are the paper's column weights ``1 / log(deg + 5)`` where ``deg`` is
the identifier's account degree, so an identifier everybody shares (carrier
NAT, popular device) adds almost nothing — the paper's defence against
camouflage edges to popular objects.

Density (the paper's *average suspiciousness*): ``g(S) = f(S) / |S|`` with
``f(S)`` the total weight of edges inside ``S`` (no node priors) and ``|S|`` the
number of accounts plus identifiers in ``S``.

Greedy peel: start from the whole graph, repeatedly remove the node whose
removal lowers ``f`` the least (smallest remaining weighted degree, ties to the
smaller node number), and keep the intermediate set with the best ``g``; an
indexed binary heap replaces the paper's priority tree (``O(E log V)``).  Before
each peel the graph is pruned to the core whose nodes all have weighted degree ≥
the whole graph's density, which provably leaves the peel's answer unchanged
whenever it clears that bar (see :func:`prune_below`) and makes it fast.  Up to
:data:`MAX_BLOCKS` blocks are found: after each, the block's internal edges are
removed and the peel repeats; the search stops early when a block's density
falls below the whole graph's.  Blocks with fewer than two accounts are not
clusters.  Pruning and peel are compiled (:mod:`linkage.baselines._peel`, numba)
and give bit for bit the blocks of the pure-Python ``heapq`` peel they replaced
(``tests/baselines/_reference_fraudar.py`` keeps it as the tests' oracle).

Two ways to run it, same blocks on the same incidence:

- :func:`run_fraudar` (``run_baseline("fraudar", ...)``, ``linkage detect
  --method fraudar``, ``bench.quality``): on the engine's identifiers stage
  (``edges``), so it sees the engine's normalised identifiers;
- :func:`run_fraudar_files` / :func:`detect_files` (``bench.run`` method
  ``fraudar``): stand-alone, as fast as FRAUDAR can be: DuckDB aggregates the
  incidence straight from the files (:mod:`linkage.baselines._files`, plain
  trimmed lower-cased strings) and nothing of the engine runs, so the benchmark
  compares the engine with a peer that does not inherit its costs.

Score: an account in a block scores that block's density divided by the best
block's density (first block found wins if it is in several); others 0.
Levels: ``block`` in a block of density ≥ half the best, ``review`` in any
other block, ``clear`` otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkage.baselines._common import Incidence, build_incidence, result_frame
from linkage.baselines._files import FileIncidence, incidence_from_files
from linkage.baselines._peel import EdgeLists, core_mask, greedy_peel_arrays, node_count
from linkage.memory import peak_rss_mb

MAX_BLOCKS = 5
BLOCK_RATIO = 0.5  # block level at density >= BLOCK_RATIO * best density


@dataclass(frozen=True)
class DenseBlock:
    """One dense block: positions into the incidence's accounts and identifiers."""

    accounts: np.ndarray
    identifiers: np.ndarray
    density: float


def column_weights(degree: np.ndarray, weighting: str = "log") -> np.ndarray:
    """Per-identifier edge weight: ``1/log(deg + 5)`` (``"log"``) or 1 (``"none"``)."""
    degree = np.asarray(degree, dtype=np.float64)
    if weighting == "log":
        return 1.0 / np.log(degree + 5.0)
    if weighting == "none":
        return np.ones_like(degree)
    raise ValueError(f"unknown weighting {weighting!r}; use 'log' or 'none'")


def prune_below(
    n_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bar: float,
    alive: np.ndarray | None = None,
) -> np.ndarray:
    """Mask of the edges inside the ``bar``-core: the largest subgraph whose nodes all
    keep weighted degree ≥ ``bar`` (rounds of dropping every edge of a node below the
    bar, compiled: :mod:`linkage.baselines._peel`).

    Exactness: while a node outside the core remains, the greedy peel's minimum is
    such a node (core nodes keep degree ≥ ``bar``), so the peel removes the whole
    outside first and then runs exactly as on the core; and every removal of a node
    of degree ``< bar`` raises a density that is already ``≥ bar``, so when the
    peel's best density is ``≥ bar`` its best set lies in the core.  Peeling the
    core thus gives the same block whenever it clears ``bar``.  ``alive`` (edge
    mask) restricts the start, e.g. to a core of a lower bar.
    """
    return core_mask(EdgeLists(n_nodes, src, dst, weight), bar, alive)


def _core_density(lists: EdgeLists, mask: np.ndarray) -> float:
    """Density ``f/|S|`` of the subgraph spanned by the masked edges."""
    if not mask.any():
        return 0.0
    return float(lists.w[mask].sum()) / node_count(lists, mask)


def _densest_core(lists: EdgeLists, bar: float, alive: np.ndarray) -> np.ndarray:
    """Edge mask (within ``alive``) of the core the greedy peel can be restricted to.

    The peel passes through every ``b``-core (see :func:`prune_below`), so its best
    density is at least any core's density; raising the bar to that density and
    pruning again converges to a small core holding the peel's answer whenever that
    answer clears ``bar``.  A relative margin of 1e-9 absorbs rounding.
    """
    eps = 1e-9
    core = core_mask(lists, bar * (1 - eps), alive)
    while core.any():
        g = _core_density(lists, core)
        if g <= bar * (1 + eps):
            break
        bar = g
        core = core_mask(lists, bar * (1 - eps), core)
    return core


def greedy_peel(
    n_nodes: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, float]:
    """Densest subgraph by greedy peeling of an undirected weighted graph.

    ``src``/``dst``/``weight`` list each edge once (no self loops, no repeated
    pair); ``n_nodes`` counts every node (isolated ones included, they are peeled
    first).  Each step removes the node of smallest remaining weighted degree,
    ties broken by the smaller node number, so the result is deterministic.
    Returns the nodes of the best intermediate set (sorted) and its density
    ``f(S)/|S|``.  Compiled (:mod:`linkage.baselines._peel`), with the same
    arithmetic as the ``heapq`` peel it replaced, so the same answer bit for bit.
    """
    return greedy_peel_arrays(n_nodes, src, dst, weight)


def fraudar_blocks(
    inc: Incidence, *, k: int = MAX_BLOCKS, weighting: str = "log"
) -> tuple[list[DenseBlock], float]:
    """Up to ``k`` dense blocks of the account × identifier graph.

    Returns the blocks (in the order found) and the whole graph's density, the
    stopping bar.
    """
    deg = inc.identifier_degree()
    keep = deg[inc.cols] >= 2
    rows, cols = inc.rows[keep], inc.cols[keep]
    # compact identifier numbering (only linking identifiers become nodes)
    used, cols_c = np.unique(cols, return_inverse=True)
    w = column_weights(deg[used], weighting)[cols_c]
    blocks, whole = dense_blocks(inc.n_accounts, rows, cols_c, w, k=k)
    return [replace(b, identifiers=used[b.identifiers]) for b in blocks], whole


def dense_blocks(
    n_accounts: int, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, *, k: int = MAX_BLOCKS
) -> tuple[list[DenseBlock], float]:
    """Up to ``k`` dense blocks of a weighted bipartite graph (FRAUDAR's search loop).

    ``rows``/``cols``: account and identifier number of each edge (every pair once;
    identifiers numbered ``0..max(cols)``, all of them linking), ``weight`` its
    weight.  Blocks' ``identifiers`` are those numbers.  Returns the blocks and the
    whole graph's density, the stopping bar.
    """
    n_acc = int(n_accounts)
    n_nodes = n_acc + (int(cols.max()) + 1 if len(cols) else 0)
    w = np.asarray(weight, dtype=np.float64)
    whole = float(w.sum()) / n_nodes if n_nodes else 0.0
    lists = EdgeLists(n_nodes, rows, cols + n_acc, w)  # edges keep their order throughout
    blocks: list[DenseBlock] = []
    alive = np.ones(len(rows), dtype=bool)
    for _ in range(k):
        if not alive.any():
            break
        core = _densest_core(lists, whole, alive)
        if not core.any():
            break
        # peel the core only, renumbered compactly (same order, so same tie-breaks)
        s_core, d_core = lists.src[core], lists.dst[core]
        present = np.zeros(n_nodes, dtype=bool)
        present[s_core] = True
        present[d_core] = True
        nodes_in = np.flatnonzero(present)
        local_of = np.cumsum(present) - 1
        local, g = greedy_peel(len(nodes_in), local_of[s_core], local_of[d_core], w[core])
        nodes = nodes_in[local]
        if g <= 0 or g < whole:
            break
        acc = nodes[nodes < n_acc]
        ids = nodes[nodes >= n_acc] - n_acc
        in_acc = np.zeros(n_acc, dtype=bool)
        in_acc[acc] = True
        in_ids = np.zeros(n_nodes - n_acc, dtype=bool)
        in_ids[ids] = True
        inside = in_acc[rows] & in_ids[cols] & alive
        if not inside.any():
            break
        alive &= ~inside
        blocks.append(DenseBlock(accounts=acc, identifiers=ids, density=g))
    return blocks, whole


def block_scores(
    blocks: list[DenseBlock], n_accounts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-account ``score, level, cluster_id`` from the blocks (see the module doc)."""
    blocks = [b for b in blocks if len(b.accounts) >= 2]
    score = np.zeros(n_accounts)
    level = np.full(n_accounts, "clear", dtype=object)
    cid = np.full(n_accounts, None, dtype=object)
    if blocks:
        best = max(b.density for b in blocks)
        for i, b in enumerate(blocks):
            fresh = b.accounts[cid[b.accounts] == None]  # noqa: E711 (object array)
            score[fresh] = b.density / best
            level[fresh] = "block" if b.density >= BLOCK_RATIO * best else "review"
            cid[fresh] = f"fraudar-{i}"
    return score, level, cid


def run_fraudar(*, edges: pd.DataFrame, features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Score every account by the density of the FRAUDAR block it falls in
    (the in-engine variant: on the identifiers stage's ``edges``)."""
    del seed  # deterministic greedy (ties broken by sorted node order)
    inc = build_incidence(edges, features)
    blocks, _ = fraudar_blocks(inc)
    score, level, cid = block_scores(blocks, inc.n_accounts)
    return result_frame(features, inc.accounts, score, level, cid)


def run_fraudar_files(
    dataset: str | Path, *, threads: int | None = None, timings: dict[str, float] | None = None
) -> tuple[pd.DataFrame, FileIncidence]:
    """The stand-alone peer: FRAUDAR straight from the dataset's files.

    The incidence is aggregated by DuckDB from the files
    (:func:`linkage.baselines._files.incidence_from_files`: IP, device, payment,
    e-mail, sign-up IP and the identifiers table, trimmed and lower-cased), then the
    same blocks and scores as :func:`run_fraudar`.  Returns ``account_id, score,
    level, cluster_id`` for every account of the accounts table (sorted by id) and
    the incidence; ``timings`` (if given) receives the seconds of ``incidence`` and
    ``peel``.
    """
    t0 = time.perf_counter()
    inc = incidence_from_files(dataset, threads=threads)
    t1 = time.perf_counter()
    w = column_weights(inc.degree)[inc.cols]
    blocks, _ = dense_blocks(inc.n_accounts, inc.rows, inc.cols, w)
    score, level, cid = block_scores(blocks, inc.n_accounts)
    frame = pd.DataFrame(
        {
            "account_id": inc.accounts,
            "score": np.clip(score, 0.0, 1.0),
            "level": level,
            "cluster_id": pd.array(cid, dtype="string"),
        }
    )
    if timings is not None:
        timings["incidence"] = t1 - t0
        timings["peel"] = time.perf_counter() - t1
    return frame, inc


def detect_files(
    dataset: str | Path, out: str | Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Run the stand-alone peer on ``dataset``'s files and write a run directory.

    ``OUT`` gets ``accounts.csv``, ``clusters.jsonl`` and ``manifest.json`` like
    ``linkage detect --method fraudar`` (readable by :func:`linkage.store.load_run`),
    but nothing of the engine runs: no ingest, no identifiers stage.  The manifest's
    ``timings`` has the stages ``identifiers`` (DuckDB aggregation from the files),
    ``detect`` (weights, pruning, peel, scores), ``write`` and ``total``; its
    ``peak_rss_mb`` is the process's own peak RSS (:func:`linkage.memory.peak_rss_mb`).
    Returns the manifest.
    """
    from linkage import __version__
    from linkage.baselines._common import cluster_records
    from linkage.store.rundir import write_manifest, write_run

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    frame, inc = run_fraudar_files(dataset, threads=threads, timings=stages)
    t = time.perf_counter()
    records = cluster_records(frame)
    levels = frame["level"].value_counts().to_dict()
    manifest: dict[str, Any] = {
        "linkage_version": __version__,
        "method": "fraudar",
        "variant": "stand-alone: DuckDB incidence from the files, compiled peel",
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "source": str(dataset),
        "counts": {
            "accounts": inc.n_accounts,
            "requests": inc.n_requests,
            "identifier_edges": inc.n_pairs,
            "linking_edges": len(inc.rows),
            "linking_identifiers": len(inc.degree),
            "clusters": len(records),
            "levels": {k: int(levels.get(k, 0)) for k in ("clear", "review", "block")},
        },
    }
    write_run(out, accounts=frame, clusters=records, manifest=manifest)
    manifest["timings"] = {
        "identifiers": round(stages["incidence"], 3),
        "detect": round(stages["peel"], 3),
        "write": round(time.perf_counter() - t, 3),
        "total": round(time.perf_counter() - t_start, 3),
    }
    manifest["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_manifest(out, manifest)
    return manifest
