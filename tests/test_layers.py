"""Layers point down and private names stay private, read from the sources with ``ast``.

- The packages of ``linkage/`` (each sub-package or top-level module is one node; the
  imports inside functions count too) form no cycle: what a stage imports is below it.
- No module imports another module's ``_private`` name, and a ``_private`` module is
  imported only from inside the package that holds it.

The few exceptions left are listed with their reason; a fixed one must be dropped from
its list (the tests fail on a stale entry).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Package cycles still there (all of the named packages form one cycle), and why.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}

#: (importing file, "module:name") of private names still used across modules, and why.
ALLOWED_PRIVATE: dict[tuple[str, str], str] = {}


#: Folders at the top of the repository that install inside ``linkage`` (through the
#: links ``linkage/api`` and ``linkage/fixtures``): their modules are ``linkage.<folder>.*``.
LINKED = ("api", "fixtures")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in LINKED:
        parts.insert(0, "linkage")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _node(module: str) -> str:
    """The layer node of a ``linkage`` module: its sub-package or top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import in ``path`` (any depth)."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names]))
    return out


def _sources(*tops: str) -> list[Path]:
    return [p for top in tops for p in sorted((ROOT / top).rglob("*.py"))]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources("linkage", "api"):
        src = _node(_module_name(path))
        graph[src]
        for target, _ in _imports(path):
            if target == "linkage" or target.startswith("linkage."):
                dst = _node(target)
                if dst != src:
                    graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.add(frozenset(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def private_imports() -> set[tuple[str, str]]:
    """(file, "module:name") of private names imported from another module, and
    (file, "module:") of private modules imported from outside their package."""
    found: set[tuple[str, str]] = set()
    for path in _sources("linkage", "api"):
        rel = path.relative_to(ROOT).as_posix()
        importer = _module_name(path)
        for target, names in _imports(path):
            if not (target == "linkage" or target.startswith("linkage.")):
                continue
            parts = target.split(".")
            for i, part in enumerate(parts):  # a private module on the path
                if part.startswith("_") and not part.startswith("__"):
                    holder = ".".join(parts[:i])
                    if not (importer + ".").startswith(holder + "."):
                        found.add((rel, f"{'.'.join(parts[: i + 1])}:"))
            for name in names:
                if not name.startswith("_") or name.startswith("__"):
                    continue
                as_module = ROOT.joinpath(*parts, name)
                if as_module.with_suffix(".py").exists() or as_module.is_dir():
                    if not (importer + ".").startswith(target + "."):
                        found.add((rel, f"{target}.{name}:"))
                elif importer != target:
                    found.add((rel, f"{target}:{name}"))
    return found


def test_no_import_cycle_between_packages() -> None:
    extra = cycles(package_graph()) - set(ALLOWED_CYCLES)
    assert not extra, f"packages importing each other: {sorted(sorted(c) for c in extra)}"


def test_allowed_cycles_still_exist() -> None:
    stale = set(ALLOWED_CYCLES) - cycles(package_graph())
    assert not stale, f"no longer a cycle, drop from ALLOWED_CYCLES: {stale}"


def test_no_private_name_used_outside_its_module() -> None:
    extra = sorted(private_imports() - set(ALLOWED_PRIVATE))
    assert not extra, f"private names imported across modules: {extra}"


def test_allowed_private_imports_still_exist() -> None:
    stale = sorted(set(ALLOWED_PRIVATE) - private_imports())
    assert not stale, f"no longer imported, drop from ALLOWED_PRIVATE: {stale}"


def test_cycle_finder() -> None:
    """The cycle finder on made-up graphs (the private check is exercised by the allowed
    entries it must still find)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def _top_level_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in LINKED]


def test_the_service_and_the_generator_are_imported_inside_linkage() -> None:
    """``api/`` and ``fixtures/`` stay at the top of the repository but are the packages
    ``linkage.api`` and ``linkage.fixtures``: nothing imports them as the generic top-level
    ``api`` / ``fixtures`` (which would load every module twice under two names), the
    links stand for the folders, and the distribution installs ``linkage`` alone."""
    import tomllib

    bad = {
        path.relative_to(ROOT).as_posix(): found
        for path in _sources("linkage", "api", "fixtures", "tests", "bench", "notebooks")
        if (found := _top_level_imports(path))
    }
    assert not bad, f"imports of top-level api/fixtures (use linkage.api / linkage.fixtures): {bad}"
    for folder in LINKED:
        link = ROOT / "linkage" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), link
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["linkage*"]


def test_the_import_scan_sees_a_top_level_import(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import api.deps\nfrom fixtures import world\nfrom linkage.api import deps\n")
    assert _top_level_imports(src) == ["api.deps", "fixtures"]


@pytest.mark.slow
def test_the_wheel_holds_linkage_alone(tmp_path: Path) -> None:
    """Built for real (pip and the build backend pyproject.toml names, as a user's
    ``pip install`` does): one top-level package, ``linkage``, with the service, its
    console's static files and the world generators inside it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # the tracked files alone (links kept as links), so the build's own build/ and
    # egg-info land in the copy and no stale build/lib of the checkout enters the wheel
    src = tmp_path / "src"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True)
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, tracked):
        if (ROOT / rel).exists() or (ROOT / rel).is_symlink():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel, follow_symlinks=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("linkage-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "linkage",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    for path in (
        "linkage/api/main.py",
        "linkage/api/console/static/index.html",
        "linkage/fixtures/world.py",
        "linkage/fixtures/redteam/__init__.py",
    ):
        assert path in names, path
