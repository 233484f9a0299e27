"""Soak: legit traffic at 200 req/s for 60 s while 5 req/s of random-secret key guesses hit.

Starts ``uvicorn --factory linkage.api.main:create_app`` on 127.0.0.1 (random free port)
over a synthetic run (``bench.load_signups.synthetic_run``), then sends, open-loop:

* legit (from 127.0.0.1): 50% ``GET /v1/clusters?limit=20``, 25% ``GET
  /v1/accounts/{id}``, 25% ``POST /v1/signups/score``, each with a valid key;
* attack (from source address 127.0.0.2, still loopback): random secrets, half
  for a *known* key id and half for unknown ids.

Prints legit p50/p99/max, status counts, and the attack's latency for known vs
unknown ids (they should match: ids are not confirmed by timing).  Bounded:
``--duration`` ≤ 120 s, ``--max-requests`` caps the total.  Target (issue 16):
legit p99 ≤ 25 ms.

    python -m bench.soak --rate 200 --attack-rate 5 --duration 60 --out soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.load_signups import local_server, make_signup, pct, synthetic_run


async def _drive(
    base: str,
    keys: dict[str, str],
    accounts: list[str],
    cards: list[str],
    *,
    rate: float,
    attack_rate: float,
    duration: float,
    max_requests: int,
) -> dict[str, Any]:
    rng = random.Random(0)
    legit_lat: list[float] = []
    legit_codes: Counter[str] = Counter()
    attack_lat: dict[str, list[float]] = {"known_id": [], "unknown_id": []}
    attack_codes: Counter[str] = Counter()
    known_id = keys["read"].split("_")[1]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    legit = httpx.AsyncClient(base_url=base, timeout=5.0, limits=limits)
    attacker = httpx.AsyncClient(
        base_url=base,
        timeout=5.0,
        limits=limits,
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2", limits=limits),
    )

    async def one_legit(i: int) -> None:
        kind = i % 4
        t0 = time.perf_counter()
        try:
            if kind in (0, 2):
                r = await legit.get(
                    "/v1/clusters?limit=20", headers={"Authorization": f"Bearer {keys['read']}"}
                )
            elif kind == 1:
                r = await legit.get(
                    f"/v1/accounts/{rng.choice(accounts)}",
                    headers={"Authorization": f"Bearer {keys['read']}"},
                )
            else:
                r = await legit.post(
                    "/v1/signups/score",
                    json=make_signup(i, rng, cards),
                    headers={"Authorization": f"Bearer {keys['score']}"},
                )
            legit_codes[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            legit_codes[type(exc).__name__] += 1
        legit_lat.append((time.perf_counter() - t0) * 1000)

    async def one_attack(i: int) -> None:
        which = "known_id" if i % 2 == 0 else "unknown_id"
        kid = known_id if which == "known_id" else secrets.token_hex(6)
        t0 = time.perf_counter()
        try:
            r = await attacker.get(
                "/v1/clusters",
                headers={"Authorization": f"Bearer lk_{kid}_{secrets.token_urlsafe(32)}"},
            )
            attack_codes[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            attack_codes[type(exc).__name__] += 1
        attack_lat[which].append((time.perf_counter() - t0) * 1000)

    n_legit = min(int(rate * duration), max_requests)
    n_attack = min(int(attack_rate * duration), max_requests)
    schedule = sorted(
        [(i / rate, "l", i) for i in range(n_legit)]
        + [(i / attack_rate, "a", i) for i in range(n_attack)]
    )
    tasks = []
    t0 = time.perf_counter()
    for at, kind, i in schedule:
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_legit(i) if kind == "l" else one_attack(i)))
    # bounded: whatever has not answered 30 s after the last send is cancelled and counted
    _, pending = await asyncio.wait(
        tasks, timeout=max(0.0, t0 + duration + 30 - time.perf_counter())
    )
    for t in pending:
        t.cancel()
    legit_codes["unfinished"] += len(pending)
    wall = time.perf_counter() - t0
    await legit.aclose()
    await attacker.aclose()

    def summary(xs: list[float]) -> dict[str, float]:
        return {
            "n": len(xs),
            "p50": round(pct(xs, 0.50), 2),
            "p99": round(pct(xs, 0.99), 2),
            "max": round(max(xs), 2) if xs else 0.0,
        }

    return {
        "duration_s": round(wall, 1),
        "legit_rate_achieved": round(len(legit_lat) / wall, 1),
        "legit_latency_ms": summary(legit_lat),
        "legit_status": dict(legit_codes),
        "attack_status": dict(attack_codes),
        "attack_latency_ms": {k: summary(v) for k, v in attack_lat.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=200.0, help="legit requests per second")
    ap.add_argument("--attack-rate", type=float, default=5.0, help="random-secret attempts / s")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (max 120)")
    ap.add_argument("--max-requests", type=int, default=30_000, help="cap per traffic kind")
    ap.add_argument("--out", type=Path, default=Path("soak.json"))
    args = ap.parse_args(argv)
    duration = min(args.duration, 120.0)
    from linkage.store.db import Store

    work = Path(tempfile.mkdtemp(prefix="linkage-soak-"))
    run_dir, cards = synthetic_run(work / "run")
    url = f"sqlite:///{work / 'store.db'}"
    store = Store(url)
    store.import_run(run_dir)
    keys = {s: store.create_key(f"soak-{s}", [s])[1] for s in ("read", "score", "metrics")}
    _, _, page = store.list_clusters(limit=50)
    accounts = [
        m["account_id"]
        for c in page[:20]
        for m in (store.get_cluster(c["cluster_id"], members_limit=5) or {"members": []})["members"]
    ] or ["nobody"]
    store.close()
    with local_server(url, work) as base:
        result = asyncio.run(
            _drive(
                base,
                keys,
                accounts,
                cards,
                rate=args.rate,
                attack_rate=args.attack_rate,
                duration=duration,
                max_requests=args.max_requests,
            )
        )
        m = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {keys['metrics']}"}, timeout=5
        ).text
        result["auth_failure_metrics"] = [
            ln for ln in m.splitlines() if ln.startswith("linkage_auth_failures_total")
        ]
    result = {"cpu_count": os.cpu_count(), "loadavg": os.getloadavg(), **result}
    args.out.write_text(json.dumps(result, indent=2))
    lat = result["legit_latency_ms"]
    print(json.dumps(result, indent=2))
    print(
        f"legit {lat['n']} at {result['legit_rate_achieved']}/s: p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms; attack {result['attack_status']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
