"""bench.templates: the template stage alone on synthetic prompts."""

from __future__ import annotations

from bench.templates import template_bench


def test_template_bench_reports_time_memory_and_templates() -> None:
    out = template_bench(4_000, seed=1)
    assert out["n_prompts"] == 4_000
    # half the prompts come from 300 farm templates: far fewer templates than prompts
    assert 300 <= out["n_templates"] < out["n_unique"] <= out["n_prompts"]
    assert out["seconds"] > 0 and out["cpu_seconds"] > 0
    assert out["peak_rss_mb"] >= out.get("input_rss_mb", 0) > 0
