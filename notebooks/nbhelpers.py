"""Shared plumbing of the analyst notebooks: where to work, the small world, cached runs.

Every notebook runs standalone.  Worlds and runs are written under
``NOTEBOOK_WORK_DIR`` (default: a fresh temporary directory) and reused when
already there, so running the four notebooks in one work dir builds the world
and the engine run once.  Figures go to ``NOTEBOOK_OUTPUT_DIR`` (default
``notebooks/_output/``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import matplotlib as mpl
import pandas as pd

# the small world every notebook uses: 4 farm campaigns (2 rotators, 1 hydra, 1 precision)
SCALE = 0.05
SEED = 3

HERE = Path(__file__).resolve().parent

# one colour per identifier kind, shared by all drawings
KIND_COLORS = {
    "account": "#4c72b0",
    "ip": "#dd8452",
    "subnet": "#f2b880",
    "email": "#55a868",
    "email_domain": "#8fd19e",
    "device": "#c44e52",
    "payment": "#8172b3",
    "user_agent": "#937860",
    "template": "#da8bc3",
    "x:": "#8c8c8c",
}


def kind_color(kind: str) -> str:
    return KIND_COLORS.get(kind, KIND_COLORS["x:"])


def setup_matplotlib() -> None:
    """Readable defaults for saved figures."""
    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 120,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 12,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )


def work_dir() -> Path:
    env = os.environ.get("NOTEBOOK_WORK_DIR")
    path = Path(env) if env else Path(tempfile.mkdtemp(prefix="linkage-nb-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir() -> Path:
    path = Path(os.environ.get("NOTEBOOK_OUTPUT_DIR") or HERE / "_output")
    path.mkdir(parents=True, exist_ok=True)
    return path


def savefig(fig, name: str) -> Path:
    """Save ``fig`` as ``<output dir>/<name>.png`` and return the path."""
    path = output_dir() / f"{name}.png"
    fig.savefig(path)
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} kB)")
    return path


def ensure_world(work: Path, *, scale: float = SCALE, seed: int = SEED) -> Path:
    """Generate the world once per work dir (Parquet, with labels and signups)."""
    from linkage.fixtures import make_world, write_world

    out = work / f"world_s{scale}_seed{seed}"
    done = work / f"{out.name}.done"
    if not done.exists():
        t0 = time.perf_counter()
        write_world(make_world(scale=scale, seed=seed), out, fmt="parquet")
        done.write_text("ok\n")
        print(f"world generated in {time.perf_counter() - t0:.1f} s -> {out}")
    else:
        print(f"world reused: {out}")
    return out


def ensure_run(world: Path, work: Path, *, method: str = "graph") -> Path:
    """Run detection once per (world, method) in the work dir; returns the run dir."""
    from linkage import Settings
    from linkage.pipeline import run_detect

    run = work / f"run_{world.name}_{method}"
    if not (run / "manifest.json").exists():
        t0 = time.perf_counter()
        run_detect(world, run, settings=Settings(), method=method)
        print(f"{method} run in {time.perf_counter() - t0:.1f} s -> {run}")
    else:
        print(f"run reused: {run}")
    return run


def read_table(world: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(world / f"{name}.parquet")
