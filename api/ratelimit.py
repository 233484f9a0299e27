"""Failed-authentication limits, per key id and per client address (in memory, per process).

Key secrets are 256-bit random values: guessing is hopeless, so these limits are
about cost and noise, not about slowing a search.  What they do:

* **per client** (``auth_fail_limit`` failures in ``auth_fail_window_seconds``
  from one address): every further request *with credentials* from that address
  gets 429 with ``Retry-After`` before any lookup, until the window has passed.
  Requests without credentials are not counted (they cost nothing: plain 401).
* **per key id**: once a key id collects that many failures, further *wrong*
  secrets for it answer 429 instead of 401 (and a legacy scrypt key is not hashed
  at all); the right secret still works, so an attacker who knows an id cannot
  lock its owner out.

The client address is the socket peer (``X-Forwarded-For`` is not trusted):
behind a proxy, rate-limit there too.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque


class FailureLimiter:
    """Sliding-window failure counts for a bounded number of names (oldest evicted)."""

    def __init__(self, limit: int, window_s: float, *, max_names: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_names = max_names
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, name: str, now: float | None = None) -> int | None:
        """Seconds until ``name`` may fail again, or None if it is under the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._fails.get(name)
            if q is None:
                return None
            self._trim(q, now)
            if len(q) < self.limit:
                if not q:
                    del self._fails[name]
                return None
            return max(1, math.ceil(q[0] + self.window_s - now))

    def fail(self, name: str, now: float | None = None) -> None:
        """Count one failure of ``name``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._fails.get(name)
            if q is None:
                q = self._fails[name] = deque(maxlen=self.limit)
                while len(self._fails) > self.max_names:
                    self._fails.popitem(last=False)
            else:
                self._fails.move_to_end(name)
                self._trim(q, now)
            q.append(now)


class RequestLimiter(FailureLimiter):
    """At most ``limit`` requests per ``window_s`` per name (e.g. anonymous ``/readyz``
    callers per client address); the same sliding window, counting every request."""

    def hit(self, name: str, now: float | None = None) -> int | None:
        """Count one request of ``name``; seconds to wait (and not counted) if over the limit."""
        wait = self.retry_after(name, now)
        if wait is None:
            self.fail(name, now)
        return wait
