"""The py-spy summary of ``bench.profile``: shares add up per function, not per line."""

from __future__ import annotations

from pathlib import Path

from bench.profile import summarise


def test_summary_counts_each_function_once_per_stack(tmp_path: Path) -> None:
    raw = tmp_path / "p.raw.txt"
    raw.write_text(
        # two frames of the same function in one stack count once (recursion, several lines)
        "<module> (linkage/cli.py:1);extract (linkage/identifiers/extract.py:10);"
        "extract (linkage/identifiers/extract.py:12);sub (pyarrow/compute.py:5) 30\n"
        "<module> (linkage/cli.py:1);build_graph (linkage/graph/build.py:3) 10\n"
        "Thread.run (threading.py:1);_skeleton_chunk (linkage/identifiers/templates.py:9) 60\n"
        "garbage line without count\n"
    )
    text = summarise(raw)
    assert "Samples (all threads): 100" in text
    assert "| 30.0 | `extract (linkage/identifiers/extract.py)` |" in text
    assert "| 60.0 | `_skeleton_chunk (linkage/identifiers/templates.py)` |" in text
    assert "| 10.0 | `build_graph (linkage/graph/build.py)` |" in text
    # entry points are not "hot spots"
    assert "<module>" not in text.split("leaf frame")[0]
    # leaf frames
    assert "| 30.0 | `sub (pyarrow/compute.py)` |" in text


def test_empty_profile(tmp_path: Path) -> None:
    raw = tmp_path / "empty.raw.txt"
    raw.write_text("")
    assert summarise(raw) == "no samples\n"
