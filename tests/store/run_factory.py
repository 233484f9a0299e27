"""Small hand-built run directories in the real format (written with ``write_run``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from linkage.store.rundir import write_run


def make_run(
    out: Path,
    clusters: Mapping[str, Sequence[str]],
    *,
    levels: Mapping[str, str] | None = None,
    scores: Mapping[str, float] | None = None,
    loners: Sequence[str] = (),
    index: Sequence[tuple[str, str, str, float]] | None = None,
) -> Path:
    """Write a run dir: ``clusters`` maps the run's cluster id -> members.

    Every cluster gets two evidence items (deliberately written out of order) and,
    unless ``index`` is given, a signup index with one shared IP, card and device
    per cluster (``ip-<cid>``, ``card-<cid>``, ``dev-<cid>``).
    """
    levels = dict(levels or {})
    scores = dict(scores or {})
    acc_rows: list[dict[str, Any]] = []
    cl_rows: list[dict[str, Any]] = []
    idx_rows: list[dict[str, Any]] = []
    for cid, members in clusters.items():
        level = levels.get(cid, "review")
        score = scores.get(cid, {"clear": 0.2, "review": 0.7, "block": 0.95}[level])
        for i, m in enumerate(members):
            acc_rows.append(
                {
                    "account_id": m,
                    "cluster_id": cid,
                    "score": round(score - 0.01 * i, 4),
                    "level": level,
                }
            )
            idx_rows += [
                {"kind": "ip", "value": f"ip-{cid}", "account_id": m, "weight": 1.0},
                {"kind": "payment", "value": f"card-{cid}", "account_id": m, "weight": 1.0},
                {"kind": "device", "value": f"dev-{cid}", "account_id": m, "weight": 1.0},
            ]
        cl_rows.append(
            {
                "cluster_id": cid,
                "size": len(members),
                "score": score,
                "level": level,
                "members": list(members),
                "evidence": [
                    {
                        "kind": "shared_ip",
                        "summary": f"{len(members)} accounts share ip-{cid}",
                        "contribution": 0.4,
                        "details": {"ip": f"ip-{cid}", "accounts": list(members[:2])},
                    },
                    {
                        "kind": "shared_payment",
                        "summary": f"{len(members)} accounts share card-{cid}",
                        "contribution": 1.2,
                        "details": {"payment": f"card-{cid}"},
                    },
                ],
            }
        )
    for a in loners:
        acc_rows.append({"account_id": a, "cluster_id": None, "score": 0.05, "level": "clear"})
    if index is not None:
        idx_rows = [{"kind": k, "value": v, "account_id": a, "weight": w} for k, v, a, w in index]
    accounts = pd.DataFrame(acc_rows, columns=["account_id", "cluster_id", "score", "level"])
    return write_run(
        out,
        accounts=accounts,
        clusters=cl_rows,
        manifest={"settings": {"seed": 0}, "counts": {"accounts": len(acc_rows)}},
        signup_index=pd.DataFrame(idx_rows, columns=["kind", "value", "account_id", "weight"]),
    )


def members(prefix: str, n: int, start: int = 0) -> list[str]:
    """``[prefix0, prefix1, ...]``."""
    return [f"{prefix}{i}" for i in range(start, start + n)]
