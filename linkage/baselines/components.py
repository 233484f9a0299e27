"""Connected components of shared identifiers: the naive linkage peer.

Two accounts are linked when they share *any* identifier value of any kind.
Built on the bipartite account–identifier graph (identifiers seen with at least
two accounts; the others link nothing) and solved with
:func:`scipy.sparse.csgraph.connected_components`, so no account projection is
ever materialised.  This is the method that one carrier-NAT IP or one popular
device glues into a giant component: it is here to show why rarity weighting
and community detection matter.

Score of an account: ``1 - 1/size`` of its component (0 when it shares nothing;
monotone in size, in [0, 1)).  Levels: ``block`` when the component holds at
least :data:`BLOCK_SIZE` accounts, ``review`` at least :data:`REVIEW_SIZE`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from linkage.baselines._common import build_incidence, cluster_labels, result_frame

REVIEW_SIZE = 3
BLOCK_SIZE = 10


def component_sizes(edges: pd.DataFrame, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Component label and size per account, in sorted-account order."""
    inc = build_incidence(edges, features)
    n_acc = inc.n_accounts
    deg = inc.identifier_degree()
    keep = deg[inc.cols] >= 2
    rows, cols = inc.rows[keep], inc.cols[keep]
    n = n_acc + inc.n_identifiers
    adj = coo_matrix(
        (np.ones(len(rows), dtype=np.int8), (rows, cols + n_acc)), shape=(n, n)
    ).tocsr()
    _, labels = connected_components(adj, directed=False)
    acc_labels = labels[:n_acc]
    sizes = np.bincount(acc_labels, minlength=labels.max() + 1 if n else 0)[acc_labels]
    return acc_labels, sizes


def run_components(*, edges: pd.DataFrame, features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Score every account by the size of its shared-identifier component."""
    del seed  # deterministic
    inc_accounts = np.asarray(sorted(features.index.astype(str)), dtype=object)
    labels, sizes = component_sizes(edges, features)
    score = np.where(sizes > 1, 1.0 - 1.0 / np.maximum(sizes, 1), 0.0)
    level = np.where(
        sizes >= BLOCK_SIZE, "block", np.where(sizes >= REVIEW_SIZE, "review", "clear")
    ).astype(object)
    multi = np.unique(labels[sizes > 1])
    cid = cluster_labels(labels, multi, "cc")
    return result_frame(features, inc_accounts, score, level, cid)
