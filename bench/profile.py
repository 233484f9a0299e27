"""Profile ``linkage detect`` on a benchmark world with py-spy and summarise the hot spots.

Run from the repository root::

    python -m bench.profile --scale 1                      # -> bench/results/profile-scale-1.md
    python -m bench.profile --scale 0.3 --rate 100 --out /tmp/prof.md

py-spy samples the real process from outside (every thread, native frames of
pyarrow/igraph/numpy attributed to the Python line that called them), so the
numbers are those of a normal run: no instrumentation, no cProfile overhead.
The summary lists the pipeline functions by inclusive share of the samples and
the hottest leaf frames; the raw samples (``-f raw``, one stack per line) are
kept beside it for flame graphs (``flamegraph.pl``, speedscope).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.run import REPO, _scale_name, ensure_world

_FRAME = re.compile(r" \((.*?):\d+\)$")


def summarise(raw: Path, *, top: int = 40) -> str:
    """Markdown summary of a py-spy ``-f raw`` profile."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_FRAME.sub(r" (\1)", f) for f in stack.split(";")]
        leaf[frames[-1]] += n
        for name in set(frames):
            if "linkage/" in name and not name.startswith(("<module>", "main ", "detect (")):
                inclusive[name] += n
    if total == 0:
        return "no samples\n"
    out = [f"Samples (all threads): {total}\n", "| % samples | pipeline function |", "|---|---|"]
    for name, n in inclusive.most_common(top):
        out.append(f"| {100 * n / total:.1f} | `{name}` |")
    out += ["", "| % samples | leaf frame |", "|---|---|"]
    for name, n in leaf.most_common(15):
        out.append(f"| {100 * n / total:.1f} | `{name}` |")
    return "\n".join(out) + "\n"


#: The stage each pipeline function belongs to (the first one found from the stack's
#: root wins); samples of worker threads are put under the stage of their work function.
_STAGE_OF = (
    ("load_dataset (", "ingest"),
    ("extract (", "identifiers"),
    ("skeletonize_arrow.<locals>", "identifiers"),
    ("_signatures.<locals>", "identifiers"),
    ("_candidate_edges.<locals>", "identifiers"),
    ("_n_equal.<locals>", "identifiers"),
    ("build_graph (", "graph"),
    ("detect_clusters (", "detect"),
    ("model_inputs (", "features"),
    ("score_prepared (", "score"),
    ("_cluster_records (", "explain"),
    ("_signup_index (", "write"),
    ("write_run (", "write"),
    ("_write_communities (", "write"),
)


def stage_table(raw: Path, manifest: dict[str, Any], *, rate: int) -> str:
    """Markdown table per stage: the run's own wall seconds (manifest timings) and the
    CPU seconds py-spy saw in it (samples of every thread / rate)."""
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stage = "other (imports, CLI, threads outside the stages)"
        for frame in stack.split(";"):
            hit = next((st for key, st in _STAGE_OF if frame.startswith(key)), None)
            if hit is not None:
                stage = hit
                break
        samples[stage] += int(count)
    timings = manifest.get("timings", {})
    rows = ["| stage | wall s (manifest) | CPU s sampled (all threads) |", "|---|---:|---:|"]
    order = ["ingest", "identifiers", "graph", "detect", "features", "score", "explain", "write"]
    names = [k for k in order if k in timings or k in samples]
    names += [k for k in [*timings, *samples] if k not in names and k != "total"]
    for name in names:
        wall = f"{timings[name]:.2f}" if name in timings else "–"
        rows.append(f"| {name} | {wall} | {samples.get(name, 0) / rate:.1f} |")
    total = timings.get("total")
    rows.append(
        f"| **total** | {total if total is not None else '–'} | "
        f"{sum(samples.values()) / rate:.1f} |"
    )
    peak = manifest.get("peak_rss_mb")
    head = f"Peak RSS {peak:,.0f} MB (manifest).\n\n" if peak is not None else ""
    return head + "\n".join(rows) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="world scale (default 1)")
    ap.add_argument("--rate", type=int, default=50, help="samples per second (default 50)")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "worlds")
    ap.add_argument("--out", type=Path, help="Markdown summary (default bench/results/...)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    # on PATH, or beside the interpreter (a venv run without activating it)
    pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if pyspy is None:
        print("py-spy not found: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    world, _ = ensure_world(args.scale, args.cache, timeout=args.timeout)
    out = args.out or REPO / "bench" / "results" / f"profile-scale-{_scale_name(args.scale)}.md"
    raw = out.with_suffix(".raw.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [pyspy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--"]
        cmd += [sys.executable, "-m", "linkage.cli", "detect", str(world), "--out", run_dir]
        print("[profile]", " ".join(cmd), flush=True)
        res = subprocess.run(cmd, timeout=args.timeout, capture_output=True, text=True)
        manifest_path = Path(run_dir) / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if res.returncode != 0 or not raw.is_file():
        print(res.stdout[-2000:], res.stderr[-2000:], file=sys.stderr)
        return 1
    out.write_text(
        f"# Profile of `linkage detect`, scale {_scale_name(args.scale)}\n\n"
        + stage_table(raw, manifest, rate=args.rate)
        + summarise(raw)
    )
    print(f"[profile] wrote {out} and {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
