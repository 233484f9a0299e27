"""A few Prometheus counters and histograms, rendered in the text exposition format.

Written by hand (``prometheus_client`` is not a dependency): thread-safe, one
registry per app so tests are isolated.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

LabelSet = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(ls: LabelSet, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = ls + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _fmt(x: float) -> str:
    if x == float("inf"):
        return "+Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Metrics:
    """Counters, gauges and histograms with HELP/TYPE metadata."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[LabelSet, float]] = defaultdict(dict)
        self._hist: dict[str, dict[LabelSet, list[float]]] = defaultdict(dict)
        self._buckets: dict[str, Sequence[float]] = {}

    def describe(
        self, name: str, kind: str, help_text: str, buckets: Sequence[float] | None = None
    ) -> None:
        """Declare a metric (``counter``, ``gauge`` or ``histogram``)."""
        self._meta[name] = (kind, help_text)
        if kind == "histogram":
            self._buckets[name] = tuple(buckets or LATENCY_BUCKETS)

    def inc(self, name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> None:
        """Add to a counter."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            d = self._values[name]
            d[key] = d.get(key, 0.0) + value

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set a gauge."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            self._values[name][key] = float(value)

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Record one observation in a histogram."""
        key = tuple(sorted((labels or {}).items()))
        buckets = self._buckets[name]
        with self._lock:
            h = self._hist[name].get(key)
            if h is None:
                h = self._hist[name][key] = [0.0] * (len(buckets) + 2)  # buckets..., sum, count
            for i, b in enumerate(buckets):
                if value <= b:
                    h[i] += 1
            h[-2] += value
            h[-1] += 1

    def render(self) -> str:
        """The registry in Prometheus text format 0.0.4."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in self._meta.items():
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "histogram":
                    buckets = self._buckets[name]
                    for key, h in sorted(self._hist.get(name, {}).items()):
                        for i, b in enumerate(buckets):
                            lines.append(
                                f"{name}_bucket{_labels(key, (('le', _fmt(b)),))} {_fmt(h[i])}"
                            )
                        lines.append(
                            f"{name}_bucket{_labels(key, (('le', '+Inf'),))} {_fmt(h[-1])}"
                        )
                        lines.append(f"{name}_sum{_labels(key)} {_fmt(h[-2])}")
                        lines.append(f"{name}_count{_labels(key)} {_fmt(h[-1])}")
                else:
                    for key, v in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_labels(key)} {_fmt(v)}")
        return "\n".join(lines) + "\n"


def service_metrics() -> Metrics:
    """The registry with the service's metrics declared."""
    m = Metrics()
    m.describe(
        "linkage_http_requests_total", "counter", "HTTP requests by method, route and status."
    )
    m.describe(
        "linkage_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by method and route.",
    )
    m.describe(
        "linkage_signups_scored_total", "counter", "Signups scored, by level and degraded flag."
    )
    m.describe(
        "linkage_signup_score_duration_seconds", "histogram", "Time spent in the signup scorer."
    )
    m.describe(
        "linkage_signup_errors_total", "counter", "Signup scoring failures by stage (model, store)."
    )
    m.describe("linkage_feedback_total", "counter", "Feedback received by verdict.")
    m.describe("linkage_model_loaded", "gauge", "1 if a signup model is loaded.")
    m.describe(
        "linkage_auth_failures_total",
        "counter",
        "Failed API-key checks: invalid, limited_client, limited_key (429).",
    )
    return m
