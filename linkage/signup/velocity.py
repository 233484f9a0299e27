"""Signup velocity: how many distinct accounts signed up on one identifier within the
last ``window_s`` seconds, on the **server's clock**.

:class:`VelocityWindow` is the one-signup path (thread-safe, amortised O(1) per signup,
warmed from the store on start-up); :func:`batch_velocity` counts the same over a batch
in ``created_at`` order. Limits are declared per kind
(:data:`linkage.identifiers.kinds.VELOCITY_LIMITS`).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from linkage.identifiers.kinds import VELOCITY_LIMITS

__all__ = [
    "VELOCITY_LIMITS",
    "VELOCITY_WINDOW_S",
    "VelocityWindow",
    "batch_velocity",
    "epoch_seconds",
]

#: The window: how many signups sharing one value within it make it suspicious is the
#: kind's limit.
VELOCITY_WINDOW_S = 600.0

Key = tuple[str, str]


class VelocityWindow:
    """Distinct account ids per ``(kind, value)`` seen in the last ``window_s`` seconds."""

    def __init__(self, window_s: float = VELOCITY_WINDOW_S) -> None:
        self.window_s = float(window_s)
        self._lock = threading.Lock()
        #: (kind, value) -> {account id: server time first seen in the window}, oldest first
        self._recent: dict[Key, dict[str, float]] = {}
        #: every (time, key, account) recorded, oldest first: what leaves the window is
        #: evicted on each call whatever its key, so the window holds only its last
        #: ``window_s`` (identifiers seen once are forgotten too, not kept for ever)
        self._expiry: deque[tuple[float, Key, str]] = deque()

    def count(self, keys: list[Key], t: float, *, record: bool, account: str) -> dict[str, int]:
        """Distinct accounts per identifier kind in ``[t - window, t]``, this one included;
        ``record``: remember this account at ``t`` (unless already in the window)."""
        out: dict[str, int] = {}
        cutoff = t - self.window_s
        with self._lock:
            self._evict(cutoff)
            for key in keys:
                if key[0] not in VELOCITY_LIMITS:
                    continue
                seen = self._recent.get(key)
                if seen is None:
                    seen = {}
                    if record:
                        self._recent[key] = seen
                while seen:  # oldest first: drop what left the window
                    first = next(iter(seen))
                    if seen[first] >= cutoff:
                        break
                    del seen[first]
                # O(1): entries are server times, none after t (a concurrent later
                # signup already recorded counts too)
                count = len(seen)
                if account not in seen:
                    count += 1
                    if record:
                        seen[account] = t
                        self._expiry.append((t, key, account))
                out[key[0]] = max(out.get(key[0], 0), count)
        return out

    def _evict(self, cutoff: float) -> None:
        """Forget what was recorded before ``cutoff`` (call with the lock held): amortised
        O(1) per signup, and an identifier whose window empties is dropped."""
        expiry, recent = self._expiry, self._recent
        while expiry and expiry[0][0] < cutoff:
            t0, key, account = expiry.popleft()
            seen = recent.get(key)
            if seen is None:
                continue
            if seen.get(account) == t0:
                del seen[account]
            if not seen:
                del recent[key]

    def size(self) -> tuple[int, int]:
        """(identifiers, account entries) held in the window now."""
        with self._lock:
            return len(self._recent), sum(len(v) for v in self._recent.values())

    def retract(self, keys: Iterable[Key], account: str, t: float) -> None:
        """Undo what :meth:`count` recorded for ``account`` at ``t``."""
        with self._lock:
            for key in keys:
                seen = self._recent.get(key)
                if seen is not None and seen.get(account) == t:
                    del seen[account]
                    if not seen:
                        del self._recent[key]

    def warm(self, entries: Iterable[tuple[float, Key, str]]) -> None:
        """Record ``(time, key, account)`` entries seen before (in time order; kinds
        without a velocity limit are skipped), keeping every window oldest first."""
        with self._lock:
            for t, key, account in entries:
                if key[0] not in VELOCITY_LIMITS:
                    continue
                seen = self._recent.setdefault(key, {})
                if account not in seen:
                    seen[account] = t
                    self._expiry.append((t, key, account))
            for key, seen in self._recent.items():  # keep each window oldest first
                if len(seen) > 1:
                    self._recent[key] = dict(sorted(seen.items(), key=lambda kv: kv[1]))
            self._expiry = deque(sorted(self._expiry, key=lambda e: e[0]))


def batch_velocity(ids: pd.DataFrame, ts: np.ndarray, window_s: float) -> dict[int, dict[str, int]]:
    """Per row of a batch, distinct signups per kind sharing one of its values within
    ``window_s`` before it (itself included), vectorised: ``ids`` holds ``row, kind,
    value`` pairs, ``ts`` each row's time in epoch seconds."""
    sel = ids["kind"].isin(list(VELOCITY_LIMITS)).to_numpy()
    sub = ids.loc[sel, ["row", "kind", "value"]].reset_index(drop=True)
    if sub.empty:
        return {}
    code, _ = pd.factorize(sub["kind"] + "\x1f" + sub["value"])
    t = ts[sub["row"].to_numpy()]
    order = np.lexsort((t, code))
    c, tt = code[order], t[order]
    # position of the first signup of the same value within the window, via one searchsorted
    key = c.astype(np.float64) * 1e12 + tt
    lo = np.searchsorted(key, c.astype(np.float64) * 1e12 + tt - window_s, side="left")
    counts = np.arange(len(key)) - lo + 1
    out: dict[int, dict[str, int]] = defaultdict(dict)
    rows = sub["row"].to_numpy()[order]
    kinds = sub["kind"].to_numpy()[order]
    for r, k, n in zip(rows, kinds, counts, strict=True):
        out[int(r)][k] = max(out[int(r)].get(k, 0), int(n))
    return out


def epoch_seconds(col: Any, n: int) -> np.ndarray:
    """A column of timestamps -> epoch seconds (now where unknown or absent)."""
    now = pd.Timestamp.now(tz="UTC").timestamp()
    if col is None:
        return np.full(n, now)
    ts = pd.to_datetime(
        pd.Series(col).reset_index(drop=True), utc=True, errors="coerce", format="ISO8601"
    )
    secs = ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)
    return np.where(ts.isna().to_numpy(), now, secs)
