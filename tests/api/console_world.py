"""A small store for the console tests: a run with a 5-account cluster, a 500-account
cluster, a cluster of accounts whose ids hold markup, raw request rows, and keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from linkage.store.db import Store
from linkage.store.rundir import write_run

XSS_ID = '<script>document.title="pwned"</script>x'
XSS_IMG = "<img src=x onerror=\"document.title='pwned'\">"
XSS_PROMPT = "<script>document.title='pwned'</script> explain step by step"


@dataclass(frozen=True)
class ConsoleWorld:
    db: Path
    url: str
    keys: dict[str, str]  # scope name -> token
    key_ids: dict[str, str]
    ids: dict[str, str]  # run's cluster id -> stable id
    run_dir: Path


def _members(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def build_world(root: Path) -> ConsoleWorld:
    """Write the dataset's requests input, the run directory and the store (with keys)."""
    root.mkdir(parents=True, exist_ok=True)
    clusters = {
        # score 0.91: 0.01 from the block line, the most uncertain: top of the queue
        "five": (_members("f", 5), 0.91, "block"),
        "big": (_members("b", 500), 0.97, "block"),
        "xss": ([XSS_ID, XSS_IMG, "x002"], 0.62, "review"),
        "mid": (_members("m", 4), 0.70, "review"),
        "office": (_members("o", 6), 0.10, "clear"),
    }
    requests = []
    for cid, (members, _, _) in clusters.items():
        for i, m in enumerate(members[:5]):
            prompt = XSS_PROMPT if cid == "xss" else f"explain step by step item {i} of {cid}"
            requests.append({"account_id": m, "ts": "2026-01-05T07:00:00Z", "prompt": prompt})
    req = pd.DataFrame(requests)
    data = root / "data"
    data.mkdir(exist_ok=True)
    req_path = data / "requests.parquet"
    req.to_parquet(req_path)
    rows_of = {cid: [] for cid in clusters}
    for r, a in enumerate(req["account_id"]):
        for cid, (members, _, _) in clusters.items():
            if a in members:
                rows_of[cid].append(r)

    acc_rows, idx_rows, cl_rows = [], [], []
    for cid, (members, score, level) in clusters.items():
        for i, m in enumerate(members):
            m_level = level if not (cid == "big" and i % 5 == 4) else "review"
            acc_rows.append(
                {"account_id": m, "cluster_id": cid, "score": score - 0.0001 * i, "level": m_level}
            )
            idx_rows.append(("payment", f"card-{cid}", m, 6.0))
            if cid == "big":
                idx_rows.append(("ip", f"10.0.{i % 12}.1", m, 4.0))  # 12 proxies
                idx_rows.append(("device", f"dev-{i % 7}", m, 3.0))
                if i % 50 == 0:
                    idx_rows.append(("email_domain", f"mail{i // 50}.example", m, 5.0))
            elif cid == "five":
                if i < 3:
                    idx_rows.append(("ip", "10.9.9.9", m, 5.0))
                if i < 2:
                    idx_rows.append(("device", "dev-five", m, 7.0))
                idx_rows.append(("ip", f"10.8.8.{i}", m, 8.0))  # own ip: not shared
        evidence = [
            {
                "kind": "shared_payment",
                "summary": f"{len(members)} accounts share card-{cid}; "
                "without it the score would be 0.40",
                "contribution": 1.6,
                "details": {
                    "score_without": 0.40,
                    "identifiers": [
                        {
                            "kind": "payment",
                            "value": f"card-{cid}",
                            "members": len(members),
                            "holders": len(members),
                            "weight_nats": 6.0,
                        }
                    ],
                },
            },
            {
                "kind": "templates",
                "summary": "the same reasoning template; without it the score would be "
                f"{score - 0.05:.2f}",
                "contribution": 0.7,
                "details": {
                    "score_without": round(score - 0.05, 2),
                    "templates": [
                        {
                            "template_id": f"t-{cid}",
                            "requests_in_cluster": len(rows_of[cid]),
                            "skeleton": "explain step by step <n>",
                            "request_rows": rows_of[cid],
                        }
                    ],
                },
            },
            {
                "kind": "openness",
                "summary": "openly shared: nothing",
                "contribution": -0.3,
                "details": {"score_without": min(1.0, score + 0.02)},
            },
        ]
        cl_rows.append(
            {
                "cluster_id": cid,
                "size": len(members),
                "score": score,
                "level": level,
                "members": members,
                "evidence": evidence,
            }
        )
    acc_rows.append({"account_id": "lone", "cluster_id": None, "score": 0.05, "level": "clear"})
    run_dir = write_run(
        root / "run",
        accounts=pd.DataFrame(acc_rows),
        clusters=cl_rows,
        manifest={
            "settings": {"score": {"review_threshold": 0.5, "block_threshold": 0.9}},
            "inputs": {"requests": {"path": str(req_path), "bytes": req_path.stat().st_size}},
        },
        signup_index=pd.DataFrame(idx_rows, columns=["kind", "value", "account_id", "weight"]),
    )
    db = root / "store.db"
    url = f"sqlite:///{db}"
    store = Store(url)
    ids = store.import_run(run_dir).cluster_ids
    keys, key_ids = {}, {}
    for name, scopes in {
        "analyst": ["read", "feedback"],
        "viewer": ["read"],
        "admin": ["admin"],
    }.items():
        key, token = store.create_key(f"console-{name}", scopes)
        keys[name] = token
        key_ids[name] = key.id
    store.close()
    return ConsoleWorld(db, url, keys, key_ids, ids, run_dir)
