"""Every function of ``linkage/`` and ``api/`` reads on one screen: at most 80 lines
from ``def`` to its last line, docstring included (``fixtures/`` and notebooks are
generators and walkthroughs, not the engine, and are not held to it).

The exceptions left are listed with their reason; a fixed one must be dropped from the
list (the test fails on a stale entry).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80

#: "file:function" still over the limit, and why.
ALLOWED: dict[str, str] = {}


def long_functions(root: Path = ROOT) -> dict[str, int]:
    """``"file:qualified name" -> lines`` of every function over :data:`MAX_LINES`."""
    found: dict[str, int] = {}
    for top in ("linkage", "api"):
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            stack: list[tuple[ast.AST, str]] = [(tree, "")]
            while stack:
                node, prefix = stack.pop()
                for child in ast.iter_child_nodes(node):
                    name = prefix
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        name = f"{prefix}{child.name}"
                        lines = (child.end_lineno or child.lineno) - child.lineno + 1
                        if not isinstance(child, ast.ClassDef) and lines > MAX_LINES:
                            found[f"{path.relative_to(root).as_posix()}:{name}"] = lines
                        name += "."
                    stack.append((child, name))
    return found


def test_no_function_over_the_limit() -> None:
    over = {k: v for k, v in long_functions().items() if k not in ALLOWED}
    assert not over, f"functions over {MAX_LINES} lines (split them by concept): {over}"


def test_allowed_long_functions_are_still_long() -> None:
    stale = set(ALLOWED) - set(long_functions())
    assert not stale, f"no longer over {MAX_LINES} lines, drop from ALLOWED: {stale}"


@pytest.mark.parametrize("body_lines, expected", [(MAX_LINES - 1, False), (MAX_LINES, True)])
def test_the_scan_measures_def_to_last_line(
    tmp_path: Path, body_lines: int, expected: bool
) -> None:
    pkg = tmp_path / "linkage"
    pkg.mkdir()
    (tmp_path / "api").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(body_lines))
    (pkg / "m.py").write_text(f"class C:\n    def f(self):\n{body.replace('    ', '        ')}\n")
    assert ("linkage/m.py:C.f" in long_functions(tmp_path)) is expected
