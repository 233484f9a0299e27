"""Shared fixtures: one small generated world and one engine run, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkage.fixtures import make_world, write_world

WORLD_SCALE = 0.05
WORLD_SEED = 11  # never used to fit the shipped model (those are 101-104)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(make_world(scale=WORLD_SCALE, seed=WORLD_SEED), out, fmt="parquet")
    return out


@pytest.fixture(scope="session")
def small_run(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from linkage.pipeline import run_detect
    from linkage.settings import Settings

    out = tmp_path_factory.mktemp("run")
    run_detect(small_world, out, settings=Settings())
    return out
