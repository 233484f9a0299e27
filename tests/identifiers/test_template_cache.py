"""Cross-run template cache: a cached run equals an uncached one, whatever the cache holds."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.identifiers.arrow_text import as_arrow
from linkage.identifiers.template_cache import TemplateCache, TemplateCacheWarning, prompt_keys
from linkage.identifiers.templates import TemplateAssignment, assign_templates
from linkage.settings import TemplateSettings


def _run(prompts: pd.Series, cache_dir: Path | None, seed: int = 0) -> TemplateAssignment:
    st = TemplateSettings(cache_dir=None if cache_dir is None else str(cache_dir))
    return assign_templates(prompts, settings=st, seed=seed)


def _assert_same(a: TemplateAssignment, b: TemplateAssignment) -> None:
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(np.asarray(a.ids, dtype=str), np.asarray(b.ids, dtype=str))
    pd.testing.assert_frame_equal(a.templates, b.templates)


def _n_cached(cache_dir: Path, prompts: pd.Series, seed: int = 0) -> int:
    """How many of the distinct prompts the cache holds."""
    cache = TemplateCache(cache_dir, TemplateSettings(), seed)
    h1, h2 = prompt_keys(as_arrow(prompts.dropna().unique()))
    return int((cache.lookup(h1, h2).row >= 0).sum())


@pytest.fixture(scope="module")
def world_prompts(small_world: Path) -> pd.Series:
    return pd.read_parquet(small_world / "requests.parquet", columns=["prompt"])["prompt"]


@pytest.mark.slow
def test_second_run_reads_the_cache_and_equals_uncached(
    world_prompts: pd.Series, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "not" / "yet" / "there"  # created on first write
    t0 = time.process_time()
    plain = _run(world_prompts, None)
    t_plain = time.process_time() - t0
    cold = _run(world_prompts, cache_dir)
    n_distinct = world_prompts.dropna().nunique()
    assert _n_cached(cache_dir, world_prompts) == n_distinct
    t0 = time.process_time()
    warm = _run(world_prompts, cache_dir)
    t_warm = time.process_time() - t0
    _assert_same(plain, cold)
    _assert_same(plain, warm)
    print(f"uncached {t_plain:.2f} s CPU, warm cache {t_warm:.2f} s CPU")  # measured, not asserted
    # another seed is another cache key: its own file, same answer as its uncached run
    _assert_same(_run(world_prompts, None, seed=5), _run(world_prompts, cache_dir, seed=5))
    assert len(list(cache_dir.glob("templates-*.parquet"))) == 2


def test_partial_overlap_merges_and_stays_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = [
        f"Please summarise chapter {i} of the handbook for {n}"
        for i, n in zip(range(300), rng.choice(["Alice", "Bob"], 300), strict=True)
    ]
    other = [f"Translate sentence {i} into French, keep the tone" for i in range(200)]
    organic = [" ".join(rng.choice(list("abcdefgh"), 12)) + f" q{i}" for i in range(200)]
    a = pd.Series(base[:200] + organic[:100] + [None, "", "   "])
    b = pd.Series(base[100:] + other + organic[50:])
    both = pd.concat([a, b], ignore_index=True)
    for prompts in (a, b, both, a):
        _assert_same(_run(prompts, None), _run(prompts, tmp_path))
    assert _n_cached(tmp_path, both) == both.dropna().nunique()
    assert len(TemplateCache(tmp_path, TemplateSettings(), 0)) == both.dropna().nunique()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "foreign"])
def test_damaged_cache_is_ignored_with_a_warning(tmp_path: Path, damage: str) -> None:
    prompts = pd.Series(
        [f"Write a haiku about {w} number {i}" for i, w in enumerate(["sea", "sky"] * 150)]
        + [f"unrelated prompt {i} {'xyz' * (i % 5)}" for i in range(300)]
    )
    plain = _run(prompts, None)
    _run(prompts, tmp_path)
    (path,) = tmp_path.glob("templates-*.parquet")
    data = bytearray(path.read_bytes())
    if damage == "flip":  # bit rot inside the data pages
        for off in range(len(data) // 4, len(data) // 2, 101):
            data[off] ^= 0x5A
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a parquet file" * 100)
    elif damage == "empty":
        data = bytearray()
    else:  # a valid cache file of other settings under this file's name
        other = tmp_path / "other"
        assign_templates(
            prompts, settings=TemplateSettings(cache_dir=str(other), num_perm=32, bands=8), seed=0
        )
        data = bytearray(next(other.glob("templates-*.parquet")).read_bytes())
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _run(prompts, tmp_path)
    assert any(issubclass(w.category, TemplateCacheWarning) for w in caught)
    _assert_same(plain, got)
    # the damaged file was replaced by a good one
    with warnings.catch_warnings():
        warnings.simplefilter("error", TemplateCacheWarning)
        _assert_same(plain, _run(prompts, tmp_path))
    assert _n_cached(tmp_path, prompts) == prompts.nunique()


def test_unwritable_cache_dir_warns_and_answers(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    prompts = pd.Series(["hello there friend", "hello there friend", "what is 2 + 2"])
    with pytest.warns(TemplateCacheWarning, match="could not be written"):
        got = _run(prompts, blocker)
    _assert_same(_run(prompts, None), got)
