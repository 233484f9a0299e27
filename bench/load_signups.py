"""Load test of ``POST /v1/signups/score`` against a real uvicorn on loopback.

Prepares a store (a synthetic run written with ``write_run``, or ``--run-dir``),
starts ``uvicorn --factory linkage.api.main:create_app`` on 127.0.0.1 (random free port)
in a subprocess, drives signups at a fixed rate with an httpx async client
(open loop: requests are sent on schedule whether or not earlier ones finished),
bounded in time and count, then prints p50/p99/max and errors and writes JSON.

    python bench/load_signups.py --rate 200 --duration 30 --out load_signups.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def local_server(
    store_url: str,
    work: Path,
    *,
    ready_s: float = 90.0,
    cpus: set[int] | None = None,
    info: dict[str, Any] | None = None,
) -> Iterator[str]:
    """``uvicorn linkage.api.main:create_app`` on 127.0.0.1 (a free port) over ``store_url``; yields
    its base URL once ``/readyz`` answers 200, and stops it on exit.  ``cpus``: pin the
    server to these cores (Linux ``sched_setaffinity``), e.g. to keep the load generator
    off them.  ``info``: filled with the server's ``pid``."""
    port = free_port()
    env = {**os.environ, "LINKAGE_STORE_URL": store_url, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "uvicorn", "linkage.api.main:create_app", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    proc = subprocess.Popen(cmd, env=env, cwd=str(work), preexec_fn=pin)
    if info is not None:
        info["pid"] = proc.pid
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready after {ready_s:.0f} s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def synthetic_run(out: Path, *, n_clusters: int = 300, seed: int = 0) -> tuple[Path, list[str]]:
    """A run dir with ``n_clusters`` farms (5–30 accounts) plus loners; returns (path, farm cards)."""
    from linkage.store.rundir import write_run

    rng = random.Random(seed)
    acc, clusters, index, cards = [], [], [], []
    for c in range(n_clusters):
        cid = f"c{c}"
        size = rng.randint(5, 30)
        score = round(rng.uniform(0.3, 0.99), 3)
        level = "block" if score >= 0.9 else "review" if score >= 0.5 else "clear"
        members = [f"a{c}_{i}" for i in range(size)]
        card = f"card-{c}"
        cards.append(card)
        for m in members:
            acc.append({"account_id": m, "cluster_id": cid, "score": score, "level": level})
            index += [
                {"kind": "payment", "value": card, "account_id": m, "weight": 1.0},
                {"kind": "device", "value": f"dev-{c}", "account_id": m, "weight": 1.0},
                {
                    "kind": "subnet",
                    "value": f"10.{c // 250}.{c % 250}.0/24",
                    "account_id": m,
                    "weight": 0.5,
                },
            ]
        clusters.append(
            {
                "cluster_id": cid,
                "size": size,
                "score": score,
                "level": level,
                "members": members,
                "evidence": [
                    {
                        "kind": "shared_payment",
                        "summary": f"{size} accounts share {card}",
                        "contribution": 1.0,
                        "details": {"payment": card},
                    }
                ],
            }
        )
    acc += [
        {"account_id": f"solo{i}", "cluster_id": None, "score": 0.02, "level": "clear"}
        for i in range(5000)
    ]
    path = write_run(
        out,
        accounts=pd.DataFrame(acc),
        clusters=clusters,
        manifest={"settings": {"seed": seed}, "method": "graph", "synthetic": True},
        signup_index=pd.DataFrame(index),
    )
    return path, cards


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_signup(i: int, rng: random.Random, cards: list[str]) -> dict[str, Any]:
    """30 % reuse a farm's card, 5 % a burst card (velocity), the rest look unique."""
    r = rng.random()
    card = (
        rng.choice(cards)
        if (r < 0.3 and cards)
        else ("card-burst" if r < 0.35 else f"card-new-{i}")
    )
    return {
        "account_id": f"load-{i}",
        "email": f"user{i}@example.org",
        "signup_ip": f"192.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "device_fingerprint": f"dev-new-{i}",
        "payment_fingerprint": card,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
    }


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def server_timing_ms(header: str | None) -> float | None:
    """``dur`` of the ``app`` metric of a ``Server-Timing`` header, in ms (None if absent)."""
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() != "app":
            continue
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "dur":
                try:
                    return float(value)
                except ValueError:
                    return None
    return None


async def drive(
    base: str,
    token: str,
    *,
    rate: float,
    duration: float,
    max_requests: int,
    timeout: float,
    cards: list[str],
    seed: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    n = min(int(rate * duration), max_requests)
    rng = random.Random(seed)
    bodies = [make_signup(i, rng, cards) for i in range(n)]
    lat: list[float] = []
    server_lat: list[float] = []  # the server's own time (Server-Timing: app;dur=ms)
    sched_lat: list[float] = []
    statuses: dict[str, int] = {}
    levels: dict[str, int] = {}
    degraded = 0
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    # At most ``conns`` requests are handed to httpx at once; the rest wait here, on an
    # O(1) semaphore, and that wait counts in latency_from_schedule (the run stays open
    # loop).  Without it a stall of the server left thousands of requests queued in
    # httpcore's pool, whose per-event scan of every queued request is quadratic: the
    # client then spent its whole core there, with the server idle, and never caught up.
    conns = 64
    gate = asyncio.Semaphore(conns)
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=timeout, limits=limits
    ) as client:
        # warm-up (first key use pays scrypt once; connections open)
        for i in range(20):
            await client.post("/v1/signups/score", json={**bodies[0], "account_id": f"warm{i}"})

        async def one(i: int, scheduled: float) -> None:
            nonlocal errors, degraded
            await gate.acquire()
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/signups/score", json=bodies[i])
                code = str(r.status_code)
                dur = server_timing_ms(r.headers.get("server-timing"))
                if dur is not None:
                    server_lat.append(dur / 1e3)
                if r.status_code == 200:
                    body = r.json()
                    levels[body["level"]] = levels.get(body["level"], 0) + 1
                    degraded += bool(body["degraded"])
                else:
                    errors += 1
            except httpx.HTTPError as exc:
                code = type(exc).__name__
                errors += 1
            finally:
                gate.release()
            t1 = time.perf_counter()
            statuses[code] = statuses.get(code, 0) + 1
            lat.append(t1 - t0)
            sched_lat.append(t1 - scheduled)

        print(f"warm-up done; sending {n} requests at {rate}/s", file=sys.stderr, flush=True)
        cpu0 = cpu_seconds(server_pid)
        load0 = os.getloadavg()
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
            if time.perf_counter() - start > duration + timeout:
                break  # the client itself fell behind: stop scheduling (bounded in time)
        _, pending = await asyncio.wait(tasks, timeout=timeout + 5)
        for t in pending:  # bounded: anything still running is counted as an error
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        errors += len(pending)
        if pending:
            statuses["unfinished"] = len(pending)
        elapsed = time.perf_counter() - start
        cpu1 = cpu_seconds(server_pid)
        try:
            metrics = (await client.get("/metrics", timeout=30)).text
        except httpx.HTTPError:
            metrics = ""
    ms = 1e3
    return {
        "requests": len(tasks),
        "requests_planned": n,
        "rate_target": rate,
        "rate_achieved": round(len(tasks) / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
        "errors": errors,
        "statuses": statuses,
        # the server's CPU over the measured phase: what each request costs it, and how
        # much of its core it needed (robust to a shared machine, unlike latency)
        "server_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
        "server_cpu_ms_per_request": None
        if cpu0 is None or cpu1 is None or not lat
        else round((cpu1 - cpu0) / len(lat) * 1e3, 3),
        "server_cpu_share": None
        if cpu0 is None or cpu1 is None
        else round((cpu1 - cpu0) / elapsed, 3),
        "loadavg_start": [round(x, 2) for x in load0],
        "levels": levels,
        "degraded": degraded,
        "latency_ms": {
            k: round(v * ms, 2)
            for k, v in (
                ("p50", pct(lat, 0.5)),
                ("p90", pct(lat, 0.9)),
                ("p99", pct(lat, 0.99)),
                ("max", max(lat)),
            )
        },
        "server_time_ms": {
            k: round(v * ms, 3)
            for k, v in (
                ("p50", pct(server_lat, 0.5)),
                ("p90", pct(server_lat, 0.9)),
                ("p99", pct(server_lat, 0.99)),
                ("max", max(server_lat, default=float("nan"))),
            )
        },
        "latency_from_schedule_ms": {
            k: round(v * ms, 2)
            for k, v in (
                ("p50", pct(sched_lat, 0.5)),
                ("p99", pct(sched_lat, 0.99)),
                ("max", max(sched_lat)),
            )
        },
        "server_scorer_seconds": [
            line
            for line in metrics.splitlines()
            if line.startswith("linkage_signup_score_duration_seconds_")
        ][-2:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds (default 30, max 300)")
    ap.add_argument("--max-requests", type=int, default=60_000, help="hard cap on requests")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    ap.add_argument(
        "--run-dir", type=Path, default=None, help="run directory to import (default: synthetic)"
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to put the store (default: temp dir)"
    )
    ap.add_argument("--out", type=Path, default=Path("load_signups.json"), help="JSON results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pin",
        action="store_true",
        help="server on core 0, this client on the other cores (needs 2+ cores): the "
        "client's CPU does not land in the server's latency",
    )
    args = ap.parse_args(argv)
    server_cpus = None
    if args.pin:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            raise SystemExit("--pin needs at least 2 cores")
        server_cpus = {cores[0]}
        os.sched_setaffinity(0, set(cores[1:]))
    duration = min(args.duration, 300.0)
    sys.path.insert(0, str(REPO))
    from linkage.store.db import Store

    work = args.workdir or Path(tempfile.mkdtemp(prefix="linkage-load-"))
    work.mkdir(parents=True, exist_ok=True)
    cards: list[str] = []
    if args.run_dir is None:
        run_dir, cards = synthetic_run(work / "run")
    else:
        run_dir = args.run_dir
        idx = run_dir / "signup_index.parquet"
        if idx.is_file():
            ix = pd.read_parquet(idx)
            cards = sorted(ix.loc[ix["kind"] == "payment", "value"].astype(str).unique())[:1000]
    url = f"sqlite:///{work / 'store.db'}"
    store = Store(url)
    res = store.import_run(run_dir)
    _, token = store.create_key("load-test", ["score"])
    store.close()
    info: dict[str, Any] = {}
    with local_server(url, work, cpus=server_cpus, info=info) as base:
        print(f"server ready on {base}", file=sys.stderr, flush=True)
        result = asyncio.run(
            drive(
                base,
                token,
                rate=args.rate,
                duration=duration,
                max_requests=args.max_requests,
                timeout=args.timeout,
                cards=cards,
                seed=args.seed,
                server_pid=info.get("pid"),
            )
        )
    result = {
        "run": str(run_dir),
        "clusters": res.n_clusters,
        "accounts": res.n_accounts,
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.load_signups", *sys.argv[1:]]),
        "pinned": bool(args.pin),
        **result,
    }
    args.out.write_text(json.dumps(result, indent=2))
    lat, srv = result["latency_ms"], result["server_time_ms"]
    print(
        f"{result['requests']} requests at {result['rate_achieved']}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms (server's own time: p50 {srv['p50']} ms, p99 {srv['p99']} ms), "
        f"errors {result['errors']}, degraded {result['degraded']}, server CPU "
        f"{result['server_cpu_ms_per_request']} ms/request ({result['server_cpu_share']} of a core), "
        f"load {result['loadavg_start']} -> {args.out}"
    )
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
