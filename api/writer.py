"""Group commit of signup decisions: one writer thread, one transaction per batch.

Under load the signup route used to run in FastAPI's threadpool (40 threads), each
thread opening its own SQLite write transaction.  SQLite admits one writer at a
time; the others get ``SQLITE_BUSY`` and sleep in SQLite's busy handler (1, 2, 5,
10 … 100 ms), while the writer holding the lock waits for the GIL among 40 threads:
write throughput fell far below the arrival rate, the queue grew without bound and
the service collapsed (80–145 of 200 req/s, thousands of requests unfinished).

Here one thread owns the writes.  A request hands its row over and awaits it;
the thread takes every row queued meanwhile and commits them in **one**
transaction, then wakes the requests.  Nothing is answered before its row is
committed (the durability of one ``INSERT`` per request is kept: a 200 is never a
decision that was not stored), no thread waits for SQLite's lock, and the commit
cost is shared by a batch when requests arrive faster than one commit takes.
If a batch fails, its rows are retried one by one, so one bad row fails alone.

The WAL checkpoint (SQLite copies the WAL into the database and syncs it every ~1,000
pages, i.e. every ~250 single-row commits) is taken off the commit path: the batch
commits skip it and a second thread runs a passive checkpoint every
``checkpoint_every`` seconds while there are writes, beside the commits (SQLite lets
a checkpoint and a writer run at once), so the requests of one batch in ~250 no
longer wait for a file sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any

from linkage.store.db import Store

__all__ = ["SignupWriter"]

log = logging.getLogger("linkage.api.writer")

_Item = tuple[Mapping[str, Any], asyncio.AbstractEventLoop, "asyncio.Future[int]"]


class SignupWriter:
    """Records signup decisions on one thread, batching what arrives together.

    ``await writer.record(row)`` returns the row id once the row is committed, or
    raises what the store raised (``SQLAlchemyError`` / ``StoreError``).  ``row``
    holds :meth:`Store.record_signup`'s keyword arguments.  ``max_batch``: most rows
    in one transaction.  The thread starts on first use; :meth:`close` drains the
    queue and stops it.
    """

    def __init__(
        self, store: Store, *, max_batch: int = 256, checkpoint_every: float = 1.0
    ) -> None:
        self.store = store
        self.max_batch = max(1, int(max_batch))
        self.checkpoint_every = float(checkpoint_every)
        self._dirty = False
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        #: batches committed and rows in them (for tests and metrics)
        self.batches = 0
        self.rows = 0

    async def record(self, row: Mapping[str, Any]) -> int:
        """Commit ``row`` (with whatever else is queued) and return its id."""
        if self._closed:
            raise RuntimeError("signup writer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._ensure_started()
        self._queue.put((row, loop, fut))
        return await fut

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join(timeout)

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="signup-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._commit(batch)
            except BaseException:  # never let the thread die with requests waiting
                log.exception("signup writer failed on a batch of %d", len(batch))
        self._stop.set()

    def _checkpoints(self) -> None:
        while not self._stop.wait(self.checkpoint_every):
            self._checkpoint()
        self._checkpoint()

    def _checkpoint(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            self.store.checkpoint()
        except Exception as exc:  # the next one (or SQLite's own at close) catches up
            log.warning("WAL checkpoint failed: %s", exc.__class__.__name__)

    def _commit(self, batch: list[_Item]) -> None:
        outcomes: list[tuple[int | None, BaseException | None]]
        try:
            self._dirty = True
            ids = self.store.record_signups([row for row, _, _ in batch], checkpoint=False)
            outcomes = [(rid, None) for rid in ids]
            self.batches += 1
            self.rows += len(batch)
        except Exception as exc:
            if len(batch) == 1:
                outcomes = [(None, exc)]
            else:  # one by one: a row the store refuses must not fail the others
                outcomes = []
                for row, _, _ in batch:
                    try:
                        outcomes.append((self.store.record_signup(**row), None))
                        self.batches += 1
                        self.rows += 1
                    except Exception as one:
                        outcomes.append((None, one))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, int | None, Any]]] = {}
        for (_, loop, fut), (rid, err) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((fut, rid, err))
        for loop, done in by_loop.items():
            # RuntimeError: that event loop is closed, nobody waits any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, done)


def _resolve(done: list[tuple[asyncio.Future[int], int | None, BaseException | None]]) -> None:
    for fut, rid, exc in done:
        if fut.done():  # the request was cancelled (client gone); the row is stored
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(int(rid))  # type: ignore[arg-type]
