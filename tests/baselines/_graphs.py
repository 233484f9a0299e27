"""Small hand-built identifier frames with known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURE_COLUMNS = (
    "req_per_active_hour",
    "topic_top_share",
    "template_repetition",
    "template_top_share",
    "mean_response_tokens",
    "n_requests",
)


def edges_frame(pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Edges frame from ``(account_id, kind, value)`` triples."""
    ts = pd.Timestamp("2026-01-01", tz="UTC")
    df = pd.DataFrame(pairs, columns=["account_id", "kind", "value"])
    df["n"] = np.int64(1)
    df["first_ts"] = ts
    df["last_ts"] = ts
    return df


def features_frame(accounts: list[str], seed: int = 0) -> pd.DataFrame:
    """Random but plausible features for ``accounts`` (index = account_id)."""
    rng = np.random.default_rng(seed)
    n = len(accounts)
    data = {c: rng.random(n) for c in FEATURE_COLUMNS}
    return pd.DataFrame(data, index=pd.Index(accounts, name="account_id"))


def two_groups_with_nat(with_nat: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two farms of 5 (each shares one card) and a loner; optionally one carrier-NAT IP
    seen with one member of each farm."""
    a = [f"a{i}" for i in range(5)]
    b = [f"b{i}" for i in range(5)]
    pairs = [(x, "payment", "card-A") for x in a] + [(x, "payment", "card-B") for x in b]
    pairs += [("loner", "email", "loner@example.com")]
    if with_nat:
        pairs += [("a0", "ip", "100.64.0.1"), ("b0", "ip", "100.64.0.1")]
    return edges_frame(pairs), features_frame([*a, *b, "loner"])


def two_cliques(size: int = 8) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Two groups whose members all share three identifiers, joined by one shared IP."""
    left = [f"l{i}" for i in range(size)]
    right = [f"r{i}" for i in range(size)]
    pairs = []
    for name, members in (("L", left), ("R", right)):
        for x in members:
            pairs += [
                (x, "payment", f"card-{name}"),
                (x, "template", f"tpl-{name}"),
                (x, "device", f"dev-{name}"),
            ]
    pairs += [(left[0], "ip", "10.0.0.1"), (right[0], "ip", "10.0.0.1")]
    return edges_frame(pairs), features_frame([*left, *right]), left, right


def planted_block(
    n_accounts: int = 300,
    n_identifiers: int = 600,
    per_account: int = 2,
    block_accounts: int = 15,
    block_identifiers: int = 10,
    n_popular: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Random sparse bipartite graph plus a fully dense planted block.

    ``n_popular`` identifiers are connected to *every* account (camouflage-like
    supernodes: a carrier NAT, the most common device)."""
    rng = np.random.default_rng(seed)
    accounts = [f"u{i:04d}" for i in range(n_accounts)]
    pairs = []
    for i, acc in enumerate(accounts):
        for j in rng.choice(n_identifiers, per_account, replace=False):
            pairs.append((acc, "ip", f"ip{j}"))
        for p in range(n_popular):
            pairs.append((acc, "device", f"popular{p}"))
        del i
    farm = sorted(rng.choice(accounts, block_accounts, replace=False).tolist())
    for acc in farm:
        for j in range(block_identifiers):
            pairs.append((acc, "template", f"farm-tpl{j}"))
    return edges_frame(pairs), features_frame(accounts, seed), farm
