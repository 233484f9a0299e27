"""Execute the analyst notebooks (jupytext .py -> notebook -> nbclient on a real kernel).

Each notebook must run without error and save its key figures as non-empty PNGs.
All four share one work dir, so the world and the engine run are built once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "python3"

FIGURES = {
    "01_quickstart": ["01_stage_timings", "01_top_clusters", "01_levels_by_population"],
    "02_investigate_cluster": [
        "02_evidence_waterfall",
        "02_cluster_drawing",
        "02_activity_timeline",
        "02_counterfactuals",
    ],
    "03_how_good_is_it": [
        "03_pr_roc",
        "03_score_distributions",
        "03_flag_rate_legit",
        "03_recall_per_group",
    ],
    "04_signup_verification": ["04_signup_scores", "04_attachment", "04_latency"],
    "05_respond": ["05_side_by_side", "05_edit_budget", "05_power_curve"],
}
MIN_BYTES = 5 * 1024


@pytest.fixture(scope="module")
def kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(user=True, kernel_name=KERNEL)
    return KERNEL


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tmp_path_factory.mktemp("nb-work"), tmp_path_factory.mktemp("nb-output")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(FIGURES))
def test_notebook_runs_and_saves_figures(
    name: str, kernel_name: str, dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, output = dirs
    # the kernel inherits the environment of the test process
    monkeypatch.setenv("NOTEBOOK_WORK_DIR", str(work))
    monkeypatch.setenv("NOTEBOOK_OUTPUT_DIR", str(output))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{name}: {time.perf_counter() - t0:.1f} s")
    for fig in FIGURES[name]:
        path = output / f"{fig}.png"
        assert path.exists(), f"{name} did not save {path.name}"
        assert path.stat().st_size > MIN_BYTES, f"{path.name} is only {path.stat().st_size} bytes"
