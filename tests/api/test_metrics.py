"""api.metrics: one prometheus-client registry per app, the service's names and labels."""

from __future__ import annotations

import pytest

from linkage.api.metrics import service_metrics
from tests.api.test_service import parse_prometheus


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    a, b = service_metrics(), service_metrics()  # the global registry would refuse the second
    a.inc("linkage_feedback_total", {"verdict": "farm"})
    a.inc("linkage_feedback_total", {"verdict": "farm"})
    b.inc("linkage_feedback_total", {"verdict": "legit"})
    assert parse_prometheus(a.render())["linkage_feedback_total"] == [('{verdict="farm"}', 2.0)]
    assert parse_prometheus(b.render())["linkage_feedback_total"] == [('{verdict="legit"}', 1.0)]


def test_histogram_buckets_are_cumulative_and_labels_sorted() -> None:
    m = service_metrics()
    for seconds in (0.002, 0.02, 3.0):
        m.observe(
            "linkage_http_request_duration_seconds", seconds, {"route": "/x", "method": "GET"}
        )
    parsed = parse_prometheus(m.render())
    buckets = dict(parsed["linkage_http_request_duration_seconds_bucket"])
    assert buckets['{le="0.0025",method="GET",route="/x"}'] == 1
    assert buckets['{le="0.025",method="GET",route="/x"}'] == 2
    assert buckets['{le="+Inf",method="GET",route="/x"}'] == 3
    assert parsed["linkage_http_request_duration_seconds_count"] == [
        ('{method="GET",route="/x"}', 3.0)
    ]


def test_a_metric_is_updated_only_as_its_kind() -> None:
    m = service_metrics()
    with pytest.raises(KeyError):
        m.inc("linkage_model_loaded")  # a gauge
    with pytest.raises(ValueError, match="unknown metric kind"):
        m.describe("linkage_x", "summary", "not offered")
