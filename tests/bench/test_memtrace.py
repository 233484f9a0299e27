"""bench.memtrace: the RSS + stack sampler finds where memory is held."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.memtrace import Sample, Sampler, main, report, rss_mb

pytestmark = pytest.mark.skipif(rss_mb() is None, reason="needs Linux /proc")


def hold_memory(mb: int, seconds: float) -> float:
    block = np.ones(mb * 1024 * 1024 // 8)  # written, so resident
    time.sleep(seconds)
    return float(block[-1])


def test_sampler_names_the_function_holding_the_peak() -> None:
    with Sampler(interval=0.01) as s:
        time.sleep(0.1)
        hold_memory(200, 0.3)
        time.sleep(0.1)
    base = min(x.rss_mb for x in s.samples)
    peak = max(x.rss_mb for x in s.samples)
    inside = [x.rss_mb for x in s.samples if any("hold_memory" in f for f in x.stack)]
    assert peak - base > 150
    # the peak is taken inside hold_memory (a sample just after its return, before the
    # block is unmapped, may tie with it)
    assert inside and max(inside) >= peak - 5
    text = report(s.samples, title="t")
    top_rows = text.split("|---|---|---|\n")[1].splitlines()[:2]
    assert any("hold_memory" in row for row in top_rows)


def test_report_keeps_one_row_per_line_of_code() -> None:
    samples = [
        Sample(0.0, 100.0, ("a.py:1:f",)),
        Sample(0.5, 300.0, ("a.py:1:f", "b.py:2:g")),
        Sample(1.2, 250.0, ("a.py:1:f", "b.py:2:g")),
        Sample(1.5, 200.0, ("a.py:1:f", "c.py:3:h")),
    ]
    text = report(samples, title="t")
    assert "peak 300 MB at 0.5 s" in text
    highest = text.split("## Timeline")[0]
    assert highest.count("b.py:2:g") == 1 and "c.py:3:h" in highest
    assert "| 1 | 250 |" in text  # the highest sample of second 1


def test_empty_report() -> None:
    assert "no samples" in report([], title="t")


def test_main_on_a_dataset(small_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "mem.md"
    assert main(["--dataset", str(small_world), "--out", str(out), "--interval", "0.01"]) == 0
    text = out.read_text()
    assert "peak" in text and "| RSS MB |" in text
    # the stacks name the pipeline step they are under, however deep the peak sits
    highest = text.split("## Timeline")[0].split("| RSS MB | t s |")[1]
    rows = [r for r in highest.splitlines() if r.startswith("| ") and "`" in r]
    assert any("pipeline.py:" in r for r in rows), rows


def test_a_deep_stack_keeps_its_pipeline_step(tmp_path: Path) -> None:
    """The innermost frame of ``linkage/pipeline.py`` is kept in front of the innermost
    frames when it lies deeper than the sampler's depth."""
    import importlib.util
    import sys

    from bench.memtrace import _stack

    module = tmp_path / "linkage" / "pipeline.py"
    module.parent.mkdir()
    module.write_text("def step(depth, inner):\n    return inner(depth)\n")

    def dive(depth: int):  # library frames below the pipeline step
        return dive(depth - 1) if depth else sys._getframe()

    spec = importlib.util.spec_from_file_location("fake_pipeline", module)
    assert spec is not None and spec.loader is not None
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    frame = fake.step(10, dive)
    kept = _stack(frame, 3)
    assert [f.name for f in kept] == ["step", "dive", "dive", "dive"]
    assert _stack(sys._getframe(), 3)[0].name != "step"  # no pipeline frame: depth alone
