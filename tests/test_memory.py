"""linkage._memory: the allocator and GC helpers used between stages and by the service."""

from __future__ import annotations

import gc
import weakref

import pytest

from linkage._memory import freeze_heap, release_memory


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
