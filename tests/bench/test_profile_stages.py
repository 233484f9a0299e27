"""bench.profile's per-stage table: samples put under the stage of their pipeline frame."""

from __future__ import annotations

from pathlib import Path

from bench.profile import stage_table


def test_stage_table_attributes_samples_to_stages(tmp_path: Path) -> None:
    raw = tmp_path / "p.raw.txt"
    raw.write_text(
        "\n".join(
            [
                "main (cli.py:1);run_detect (linkage/pipeline.py:3);prepare (linkage/pipeline.py:9);"
                "extract (linkage/identifiers/extract.py:5);assign_templates (t.py:1) 50",
                "_bootstrap (threading.py:1);skeletonize_arrow.<locals>.<lambda> (s.py:2) 25",
                "main (cli.py:1);run_detect (linkage/pipeline.py:3);"
                "build_graph (linkage/graph/build.py:2) 10",
                "main (cli.py:1);import (x.py:1) 5",
            ]
        )
        + "\n"
    )
    text = stage_table(raw, {"timings": {"identifiers": 1.25, "graph": 0.2, "total": 1.5}}, rate=50)
    lines = text.splitlines()
    assert "| identifiers | 1.25 | 1.5 |" in lines  # 75 samples at 50 Hz, threads included
    assert "| graph | 0.20 | 0.2 |" in lines
    assert any(line.startswith("| other") and line.endswith("| 0.1 |") for line in lines)
    assert "| **total** | 1.5 | 1.8 |" in lines
