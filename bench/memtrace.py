"""Where does ``linkage detect`` reach its peak memory? An RSS + stack sampler.

Run from the repository root::

    python -m bench.memtrace --scale 1                 # -> bench/results/memtrace-scale-1.md
    python -m bench.memtrace --scale 3 --interval 0.05 --out /tmp/mem3.md

A profiler says where the time goes; the memory peak is a moment. This runs the
pipeline in-process with a daemon thread that every ``--interval`` seconds reads
the process's resident set size (``/proc/self/status``, Linux) and the main
thread's innermost frames. The report lists the highest samples with the line
they were taken on (one row per distinct line), and the stage timeline (RSS
once per second). Worker threads are not attributed: when the main thread
waits on a pool (``threading.wait``), the outer frames still name the caller.
The sampler holds the GIL a few microseconds per sample; at 20 ms the run is
~1-2 % slower. A short spike can fall between two samples: ``peak_rss_mb`` of
``bench.run`` (the child's ``VmHWM``) is the exact peak, this is where it happens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench.run import REPO, _scale_name, ensure_world
from linkage.memory import proc_status_kb


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the sampler started
    rss_mb: float
    stack: tuple[str, ...]  # innermost last: "file.py:line:function"


def rss_mb() -> float | None:
    """Resident set size of this process in MB (Linux ``/proc``; None elsewhere)."""
    kb = proc_status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


@dataclass
class Sampler:
    """Samples (RSS, main-thread stack) until stopped; use as a context manager."""

    interval: float = 0.02
    depth: int = 6
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        target = threading.get_ident()
        t0 = time.perf_counter()

        def loop() -> None:
            while not self._stop.is_set():
                rss = rss_mb()
                if rss is None:
                    return
                frame = sys._current_frames().get(target)
                stack = _stack(frame, self.depth)
                self.samples.append(
                    Sample(
                        time.perf_counter() - t0,
                        rss,
                        tuple(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in stack),
                    )
                )
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="memtrace", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _stack(frame: FrameType | None, depth: int) -> list[traceback.FrameSummary]:
    """The ``depth`` innermost frames, with the innermost frame of the pipeline module
    put in front when it is deeper than that (a stage's peak inside numpy or scipy is
    still attributed to the pipeline step that called it)."""
    if frame is None:
        return []
    full = traceback.extract_stack(frame)
    kept = full[-depth:]
    stage = [f for f in full[:-depth] if Path(f.filename).parts[-2:] == ("linkage", "pipeline.py")]
    return [stage[-1], *kept] if stage else kept


def report(samples: list[Sample], *, top: int = 12, title: str = "memtrace") -> str:
    """Markdown: the peak, the highest samples (one per distinct line), an RSS timeline."""
    if not samples:
        return f"# {title}\n\nno samples (is /proc/self/status readable?)\n"
    peak = max(samples, key=lambda s: s.rss_mb)
    out = [
        f"# {title}",
        "",
        f"{len(samples)} samples; peak {peak.rss_mb:,.0f} MB at {peak.t:.1f} s.",
        "",
        "## Highest samples (one per line of code)",
        "",
        "| RSS MB | t s | where (innermost first) |",
        "|---|---|---|",
    ]
    seen: set[str] = set()
    for s in sorted(samples, key=lambda s: -s.rss_mb):
        key = s.stack[-1] if s.stack else ""
        if key in seen:
            continue
        seen.add(key)
        out.append(f"| {s.rss_mb:,.0f} | {s.t:.1f} | `{' <- '.join(reversed(s.stack))}` |")
        if len(seen) >= top:
            break
    out += [
        "",
        "## Timeline (highest sample per second)",
        "",
        "| t s | RSS MB | where |",
        "|---|---|---|",
    ]
    by_second: dict[int, Sample] = {}
    for s in samples:
        cur = by_second.get(int(s.t))
        if cur is None or s.rss_mb > cur.rss_mb:
            by_second[int(s.t)] = s
    for sec in sorted(by_second):
        s = by_second[sec]
        where = " <- ".join(reversed(s.stack[-3:]))
        out.append(f"| {sec} | {s.rss_mb:,.0f} | `{where}` |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.memtrace", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--scale", type=float, default=1.0, help="world scale (default 1)")
    ap.add_argument("--dataset", type=Path, help="a dataset directory instead of a bench world")
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between samples")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "worlds")
    ap.add_argument("--out", type=Path, help="Markdown report (default bench/results/...)")
    ap.add_argument("--timeout", type=float, default=3600, help="limit for making the world")
    args = ap.parse_args(argv)
    if rss_mb() is None:
        print("memtrace needs Linux /proc/self/status", file=sys.stderr)
        return 2
    from linkage.pipeline import run_detect

    if args.dataset is not None:
        world, name = args.dataset, args.dataset.name
    else:
        world, _ = ensure_world(args.scale, args.cache, timeout=args.timeout)
        name = f"scale-{_scale_name(args.scale)}"
    out = args.out or REPO / "bench" / "results" / f"memtrace-{name}.md"
    with tempfile.TemporaryDirectory() as run_dir, Sampler(interval=args.interval) as sampler:
        run_detect(world, run_dir)
    text = report(sampler.samples, title=f"Memory trace of `linkage detect`, {name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"[memtrace] {text.splitlines()[2]} -> {out}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
