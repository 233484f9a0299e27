"""The service's Prometheus counters, gauges and histograms, on ``prometheus_client``.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (not the process-wide
default), so several apps in one process (tests, or a service next to a worker) never
share or collide on a metric. :class:`Metrics` keeps the call sites' small vocabulary
(``inc`` / ``set`` / ``observe`` by metric name with a dict of labels); the library does
the thread safety, the cumulative buckets and the text exposition format.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["LATENCY_BUCKETS", "Metrics", "service_metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_KINDS = ("counter", "gauge", "histogram")


class Metrics:
    """One registry of named metrics; labels are given by name on every update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}

    def describe(
        self,
        name: str,
        kind: str,
        help_text: str,
        *,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> None:
        """Declare a metric (``counter``, ``gauge`` or ``histogram``) and its label names."""
        names = tuple(sorted(labels))  # the exposition lists labels in this order
        if kind == "counter":
            self._counters[name] = Counter(name, help_text, names, registry=self.registry)
        elif kind == "gauge":
            self._gauges[name] = Gauge(name, help_text, names, registry=self.registry)
        elif kind == "histogram":
            self._histograms[name] = Histogram(
                name, help_text, names, registry=self.registry, buckets=buckets or LATENCY_BUCKETS
            )
        else:
            raise ValueError(f"unknown metric kind {kind!r} (one of {', '.join(_KINDS)})")

    def inc(self, name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> None:
        """Add to a counter."""
        c = self._counters[name]
        (c.labels(**labels) if labels else c).inc(value)

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set a gauge."""
        g = self._gauges[name]
        (g.labels(**labels) if labels else g).set(value)

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Record one observation in a histogram."""
        h = self._histograms[name]
        (h.labels(**labels) if labels else h).observe(value)

    def render(self) -> str:
        """The registry in the Prometheus text format 0.0.4."""
        return generate_latest(self.registry).decode("utf-8")


def service_metrics() -> Metrics:
    """A fresh registry with the service's metrics declared."""
    m = Metrics()
    m.describe(
        "linkage_http_requests_total",
        "counter",
        "HTTP requests by method, route and status.",
        labels=("method", "route", "status"),
    )
    m.describe(
        "linkage_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by method and route.",
        labels=("method", "route"),
    )
    m.describe(
        "linkage_signups_scored_total",
        "counter",
        "Signups scored, by level and degraded flag.",
        labels=("degraded", "level"),
    )
    m.describe(
        "linkage_signup_score_duration_seconds", "histogram", "Time spent in the signup scorer."
    )
    m.describe(
        "linkage_signup_errors_total",
        "counter",
        "Signup scoring failures by stage (model, store).",
        labels=("stage",),
    )
    m.describe(
        "linkage_feedback_total", "counter", "Feedback received by verdict.", labels=("verdict",)
    )
    m.describe("linkage_model_loaded", "gauge", "1 if a signup model is loaded.")
    m.describe(
        "linkage_auth_failures_total",
        "counter",
        "Failed API-key checks: invalid, limited_client, limited_key (429).",
        labels=("outcome",),
    )
    return m
