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
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="world scale (default 1)")
    ap.add_argument("--rate", type=int, default=50, help="samples per second (default 50)")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "worlds")
    ap.add_argument("--out", type=Path, help="Markdown summary (default bench/results/...)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy")
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
    if res.returncode != 0 or not raw.is_file():
        print(res.stdout[-2000:], res.stderr[-2000:], file=sys.stderr)
        return 1
    out.write_text(
        f"# Profile of `linkage detect`, scale {_scale_name(args.scale)}\n\n" + summarise(raw)
    )
    print(f"[profile] wrote {out} and {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
