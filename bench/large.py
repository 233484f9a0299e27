"""Large rows of the benchmark (issue 15, part 4): ~100M requests on one machine.

Run from the repository root, one at a time (each loads the 2-core machine)::

    python -m bench.large generate  --scale 60 --shards 60      # the world, shard by shard
    python -m bench.large aggregate --scale 60 --shards 60 --memory-limit 4GB
    python -m bench.large detect    --scale 3  --shards 60      # end to end on 3 shards

``generate`` writes the world with :func:`fixtures.world.write_world_shards` to
``--cache``/``scale-S-seed-0-shards-K`` in a fresh process (peak RSS of that process =
the largest shard's), or, when that directory is already complete, records it from its
``world.json`` (per-shard seconds and the generating process's peak RSS after each
shard). ``aggregate`` runs the identifiers stage's SQL (:mod:`linkage.identifiers.sql`)
on DuckDB over the Parquet parts with ``memory_limit`` and ``temp_directory`` set, so
it spills instead of growing; the outputs are written to Parquet with ``COPY`` (at 100M
requests the ``edges`` output alone is ~70M rows, ~5 GB as Arrow, more than the budget
once DuckDB's own memory is added), and the largest size of the spill directory is
sampled. ``detect`` runs ``linkage detect`` (graph method, as ``bench.run``) on the
first ``--scale / shard scale`` shards of the sharded world: shard ``k`` of a world
depends only on ``(seed, k, shard scale)``, so those parts *are* the sharded world of
that scale (no new generation), and records time, peak RSS and quality.

Every run is a fresh subprocess killed above ``--max-rss-mb`` (default 8,000: the
issue's budget, and other jobs share the machine). Rows are merged by name into
``--out``/``large.json`` and rendered to ``large.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python bench/large.py``
    sys.path.insert(0, str(REPO))

from bench.run import commit_info, machine_info, run_child, run_method  # noqa: E402

SEED = 0
TABLES = ("accounts", "requests", "signups", "labels", "identifiers")

GENERATE_CODE = """
import json, sys
from linkage.fixtures.world import write_world_shards
m = write_world_shards(sys.argv[1], scale=float(sys.argv[2]), seed=int(sys.argv[3]),
                       shards=int(sys.argv[4]), progress=lambda e: print(json.dumps(e), flush=True))
"""

# run_aggregation's steps, with each output written to Parquet instead of fetched
AGGREGATE_CODE = """
import json, os, sys, threading, time
from pathlib import Path
from linkage.memory import peak_rss_mb
from linkage.engine import DuckDBEngine
from linkage.identifiers.sql import aggregation_steps
from linkage.settings import IdentifierSettings

root, out, mem, tmp, threads, result = sys.argv[1:7]
Path(out).mkdir(parents=True, exist_ok=True)
spill = {"max_bytes": 0}
stop = threading.Event()

def watch():
    while not stop.wait(0.5):
        n = 0
        for dirpath, _, files in os.walk(tmp):
            for f in files:
                try:
                    n += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
        spill["max_bytes"] = max(spill["max_bytes"], n)

threading.Thread(target=watch, daemon=True).start()
settings = IdentifierSettings()
t0 = time.perf_counter()
steps = {}
with DuckDBEngine(threads=int(threads), memory_limit=mem, temp_directory=tmp) as eng:
    eng.execute("SET enable_progress_bar = false")
    t = time.perf_counter()
    for name, sql in aggregation_steps(eng, requests=f"{root}/requests/*.parquet",
                                       accounts=f"{root}/accounts/*.parquet", settings=settings):
        if sql is not None:
            path = str(Path(out) / f"{name}.parquet").replace("'", "''")
            eng.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        steps[name] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
    rows = {p.stem: eng.connection.execute(
                f"SELECT count(*) FROM read_parquet('{p}')").fetchone()[0]
            for p in sorted(Path(out).glob("*.parquet"))}
stop.set()
json.dump({"seconds": round(time.perf_counter() - t0, 2), "steps": steps, "rows": rows,
           "output_bytes": sum(p.stat().st_size for p in Path(out).glob("*.parquet")),
           "spill_max_bytes": spill["max_bytes"],
           "peak_rss_mb": round(peak_rss_mb(), 1)},
          open(result, "w"))
"""


def world_dir(cache: Path, scale: float, shards: int) -> Path:
    return cache / f"scale-{scale:g}-seed-{SEED}-shards-{shards}"


def _manifest(root: Path) -> dict[str, Any] | None:
    p = root / "world.json"
    return json.loads(p.read_text()) if p.is_file() else None


def generate(args: argparse.Namespace) -> dict[str, Any]:
    root = world_dir(args.cache, args.scale, args.shards)
    m = _manifest(root)
    proc: dict[str, Any] = {"cached": True}
    if not (m and m.get("complete")):
        root.parent.mkdir(parents=True, exist_ok=True)
        proc = run_child(
            [
                sys.executable,
                "-c",
                GENERATE_CODE,
                str(root),
                str(args.scale),
                str(SEED),
                str(args.shards),
            ],
            timeout=args.timeout,
            log_path=root.parent / f"{root.name}.log",
            max_rss_mb=args.max_rss_mb,
        )
        proc["cached"] = False
        m = _manifest(root)
        if proc["returncode"] != 0 or not (m and m.get("complete")):
            raise SystemExit(f"generation failed: {proc}")
    parts = m["parts"]
    secs = [p["seconds"] for p in parts]
    return {
        "row": f"generate scale {args.scale:g} / {args.shards} shards",
        "kind": "generate",
        "dataset": str(root),
        "scale": m["scale"],
        "shards": m["shards"],
        "shard_scale": m["shard_scale"],
        "rows": m["rows"],
        "bytes": m["bytes"],
        "bytes_total": sum(m["bytes"].values()),
        "seconds_total": round(sum(secs), 1),
        "shard_seconds": {
            "min": min(secs),
            "median": statistics.median(secs),
            "max": max(secs),
        },
        "shard_requests": {
            "min": min(p["rows"]["requests"] for p in parts),
            "max": max(p["rows"]["requests"] for p in parts),
        },
        "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        "peak_rss_mb_after_first_shard": parts[0]["peak_rss_mb"],
        **{f"process_{k}": v for k, v in proc.items()},
    }


def aggregate(args: argparse.Namespace) -> dict[str, Any]:
    root = world_dir(args.cache, args.scale, args.shards)
    m = _manifest(root)
    if not (m and m.get("complete")):
        raise SystemExit(f"no complete world at {root}: run `python -m bench.large generate` first")
    with tempfile.TemporaryDirectory(dir=args.work, prefix="large-agg-") as work:
        w = Path(work)
        result = w / "result.json"
        proc = run_child(
            [
                sys.executable,
                "-c",
                AGGREGATE_CODE,
                str(root),
                str(w / "out"),
                args.memory_limit,
                str(w / "spill"),
                str(args.threads),
                str(result),
            ],
            timeout=args.timeout,
            log_path=args.work / "large-aggregate.log",
            max_rss_mb=args.max_rss_mb,
        )
        child = json.loads(result.read_text()) if result.is_file() else {}
    row = {
        "row": f"aggregate scale {args.scale:g} ({m['rows']['requests'] / 1e6:.1f}M requests)",
        "kind": "aggregate",
        "dataset": str(root),
        "requests": m["rows"]["requests"],
        "accounts": m["rows"]["accounts"],
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        **proc,
        **child,
    }
    if proc["returncode"] != 0:
        row["error"] = (args.work / "large-aggregate.log").read_text(errors="replace")[-2000:]
    return row


def subset(root: Path, k: int, dest: Path) -> Path:
    """A dataset directory of the first ``k`` parts of ``root`` (symlinks)."""
    if dest.exists() and (dest / "world.json").is_file():
        return dest
    m = _manifest(root)
    for t in TABLES:
        (dest / t).mkdir(parents=True, exist_ok=True)
        for i in range(k):
            link = dest / t / f"part-{i:05d}.parquet"
            if not link.exists():
                link.symlink_to(root / t / f"part-{i:05d}.parquet")
    sub = {**m, "scale": m["shard_scale"] * k, "shards": k, "parts": m["parts"][:k]}
    sub["rows"] = {t: sum(p["rows"][t] for p in sub["parts"]) for t in TABLES}
    sub.pop("bytes", None)
    (dest / "world.json").write_text(json.dumps(sub, indent=1))
    return dest


def detect(args: argparse.Namespace) -> dict[str, Any]:
    big = world_dir(args.cache, args.from_scale, args.shards)
    m = _manifest(big)
    if not (m and m.get("complete")):
        raise SystemExit(f"no complete world at {big}: run `python -m bench.large generate` first")
    k = round(args.scale / m["shard_scale"])
    if k < 1 or k > m["shards"] or abs(k * m["shard_scale"] - args.scale) > 1e-9:
        raise SystemExit(f"--scale must be a multiple of the shard scale {m['shard_scale']:g}")
    data = subset(big, k, args.cache / f"scale-{args.scale:g}-seed-{SEED}-shards-{k}-of-{big.name}")
    sub = _manifest(data)
    with tempfile.TemporaryDirectory(dir=args.work, prefix="large-detect-") as work:
        res = run_method(
            data, Path(work) / "run", "graph", timeout=args.timeout, max_rss_mb=args.max_rss_mb
        )
    return {
        "row": f"detect scale {args.scale:g} ({k} shards)",
        "kind": "detect",
        "dataset": str(data),
        "requests": sub["rows"]["requests"],
        "accounts": sub["rows"]["accounts"],
        **res,
    }


def _mb(b: float | None) -> str:
    return "–" if b is None else f"{b / 1e6:,.0f}"


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    out = [
        "# Large benchmark rows (issue 15, part 4)",
        "",
        "Written by `python -m bench.large` (see its docstring). Each run is a fresh "
        "process on the 2-core, 24 GB development machine shared with other jobs; wall "
        "times are noisy (load average recorded), peak RSS is that process's own peak "
        "(`bench.run.run_child`).",
        "",
    ]
    gen = [r for r in rows.values() if r["kind"] == "generate"]
    if gen:
        out += [
            "## World generated to Parquet in shards",
            "",
            "| world | shards × scale | accounts | requests | Parquet MB | total s | shard s min / median / max | peak RSS MB | when |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in gen:
            s = r["shard_seconds"]
            out.append(
                f"| {r['row']} | {r['shards']} × {r['shard_scale']:g} | {r['rows']['accounts']:,} "
                f"| {r['rows']['requests']:,} | {_mb(r['bytes_total'])} | {r['seconds_total']:,.0f} "
                f"| {s['min']:.0f} / {s['median']:.0f} / {s['max']:.0f} | {r.get('peak_rss_mb') or 0:,.0f} "
                f"| {r['at']} |"
            )
        out.append("")
    agg = [r for r in rows.values() if r["kind"] == "aggregate"]
    if agg:
        out += [
            "## Identifier aggregation (SQL on DuckDB, out of core)",
            "",
            "| run | requests | memory_limit | threads | wall s | CPU s | peak RSS MB | spill max MB | output rows (edges) | output MB | load | when |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in agg:
            edges = (r.get("rows") or {}).get("edges")
            out.append(
                f"| {r['row']} | {r['requests']:,} | {r['memory_limit']} | {r['threads']} "
                f"| {r['wall_s']:,.0f} | {r.get('cpu_s') or 0:,.0f} | {r.get('peak_rss_mb') or 0:,.0f} "
                f"| {_mb(r.get('spill_max_bytes'))} | {edges if edges is None else f'{edges:,}'} "
                f"| {_mb(r.get('output_bytes'))} | {r['loadavg_before'][0]:.1f} | {r['at']} |"
                + (" FAILED" if r.get("returncode") else "")
            )
        out.append("")
    det = [r for r in rows.values() if r["kind"] == "detect"]
    if det:
        out += [
            "## `linkage detect` end to end (graph method)",
            "",
            "| run | accounts | requests | total s | wall s | CPU s | peak RSS MB | AP | block R | stage s (ingest / identifiers / graph / detect) | load | when |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in det:
            t = r.get("timings") or {}
            q = r.get("quality") or {}
            stages = " / ".join(
                f"{t.get(s, 0):.0f}" for s in ("ingest", "identifiers", "graph", "detect")
            )
            out.append(
                f"| {r['row']} | {r['accounts']:,} | {r['requests']:,} | {t.get('total', 0):,.0f} "
                f"| {r['wall_s']:,.0f} | {r.get('cpu_s') or 0:,.0f} | {r.get('peak_rss_mb') or 0:,.0f} "
                f"| {q.get('ap', '–')} | {q.get('block_recall', '–')} | {stages} "
                f"| {r['loadavg_before'][0]:.1f} | {r['at']} |"
                + (f" FAILED ({r.get('killed') or 'error'})" if r.get("returncode") else "")
            )
        out.append("")
    notes = res.get("notes")
    if notes:
        out += ["## Notes", "", notes, ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("generate", "aggregate", "detect", "render"))
    p.add_argument("--scale", type=float, default=60.0)
    p.add_argument("--shards", type=int, default=60, help="shards of the big world")
    p.add_argument(
        "--from-scale", type=float, default=60.0, help="detect: the sharded world to take parts of"
    )
    p.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit (aggregate)")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (aggregate)")
    p.add_argument("--max-rss-mb", type=float, default=8000.0)
    p.add_argument("--timeout", type=float, default=4 * 3600.0)
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "worlds")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "large.json"
    res = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    if args.what != "render":
        load = [round(x, 2) for x in os.getloadavg()]
        t0 = time.perf_counter()
        row = {"generate": generate, "aggregate": aggregate, "detect": detect}[args.what](args)
        row.setdefault("loadavg_before", load)
        row["at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
        row["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        row.update(commit_info())
        res["rows"][row["row"]] = row
        res["machine"] = machine_info()
        path.write_text(json.dumps(res, indent=1, default=str))
        print(json.dumps({k: v for k, v in row.items() if k != "error"}, indent=1, default=str))
    (args.out / "large.md").write_text(render(res))
    return res


if __name__ == "__main__":
    main()
