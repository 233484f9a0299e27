"""Parallel maps on a thread pool: over row chunks of Arrow arrays, or over any items.

pyarrow's compute kernels (RE2 regexes, string functions) release the GIL, so
a thread pool over row chunks uses every core with no copies and no process
start-up. Results come back in chunk order, so the output never depends on the
number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")
U = TypeVar("U")

CHUNK_ROWS = 1 << 16  # rows per chunk: large enough to amortise a kernel call


def map_chunks(arr: pa.Array, func: Callable[[pa.Array], T], *, rows: int = CHUNK_ROWS) -> list[T]:
    """``[func(chunk) for chunk in row chunks of arr]``, on a thread pool."""
    if len(arr) <= rows:
        return [func(arr)]
    return map_parallel(func, [arr.slice(lo, rows) for lo in range(0, len(arr), rows)])


def map_parallel(func: Callable[[U], T], items: Iterable[U]) -> list[T]:
    """``[func(x) for x in items]`` in order, on a thread pool of at most one thread per
    core (in the caller's thread when one is enough). For compiled kernels and Arrow
    compute functions that release the GIL."""
    todo = list(items)
    workers = max(1, min(len(todo), os.cpu_count() or 1))
    if workers == 1:
        return [func(x) for x in todo]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, todo))
