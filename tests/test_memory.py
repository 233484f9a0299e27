"""linkage.memory: the allocator and GC helpers used between stages and by the service."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from linkage.memory import freeze_heap, peak_rss_mb, proc_status_kb, release_memory


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfreeze():
    yield
    gc.unfreeze()


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_freeze_heap_freezes_what_is_alive(unfreeze: None) -> None:
    keep = [_Node() for _ in range(100)]
    freeze_heap()
    assert gc.get_freeze_count() >= len(keep)
    # a frozen heap is not walked: a full collection finds nothing of it to collect
    assert gc.collect() == 0


def test_freeze_heap_collects_cycles_left_from_before_a_reload(unfreeze: None) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    freeze_heap()  # the "previous model" is frozen while alive
    del a, b  # dropped on reload: cyclic garbage in the frozen generation
    gc.collect()
    assert ref() is not None  # a plain collection does not see frozen objects
    freeze_heap()  # unfreeze, collect, freeze again
    assert ref() is None


def test_release_memory_keeps_live_objects() -> None:
    ref = _cycle()
    alive = ref()
    release_memory()
    assert ref() is alive is not None


def test_peak_rss_covers_what_this_process_touched() -> None:
    import psutil

    ballast = b"\x01" * (64 * 2**20)  # written, so resident
    now_mb = psutil.Process().memory_info().rss / 2**20
    assert peak_rss_mb() >= now_mb - 1 and now_mb > 64
    del ballast


_CHILD = """
import resource, sys
from linkage.memory import peak_rss_mb
print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def test_peak_rss_of_a_child_is_its_own_not_its_parents() -> None:
    """The manifests' ``peak_rss_mb`` (a run in a fresh process, as bench.run does) is
    the child's own peak: ``ru_maxrss`` would carry this process's 300 MB ballast."""
    ballast = b"\x01" * (300 * 2**20)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    own, ru_maxrss = float(out[0]), float(out[1])
    del ballast
    if proc_status_kb("VmHWM") is not None:  # Linux: VmHWM restarts at exec, ru_maxrss not
        assert own < 250 < 300 <= ru_maxrss
    else:  # ru_maxrss itself (KiB or bytes by platform: only its sign is comparable)
        assert own > 0 and ru_maxrss > 0
