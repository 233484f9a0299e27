"""Set-up and docs: the README's two commands are what CI runs, `./dev`
is a working script, and docs/DATA_CONTRACT.md matches the contract in code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from linkage.contract import TABLES

ROOT = Path(__file__).resolve().parents[1]
#: what CI runs between the fresh-clone demo and the tests, in the dev environment
CI_LINTERS = [
    "./dev run ruff check .",
    "./dev run ruff format --check .",
    "./dev run mypy linkage",
]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert _bash_blocks(section) == ["./dev demo", "./dev test"]
    ci = [
        ln
        for ln in (ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.startswith(("#", "set ", "cd "))
    ]
    # the README's test command, preceded by the README's first command on a fresh clone
    # (.ci/fresh-demo), the linters, and by installing a JRE when java is missing (the
    # Spark engine's tests need one; a no-op where Java is there)
    assert ci[-1] == "./dev test"
    assert ci[0] == ".ci/fresh-demo"
    assert ci[1 : 1 + len(CI_LINTERS)] == CI_LINTERS
    before = "\n".join(ci[1 + len(CI_LINTERS) : -1])
    assert "./dev" not in before and "pytest" not in before
    assert not before or ("command -v java" in before and "default-jre-headless" in before)
    fresh = (ROOT / ".ci" / "fresh-demo").read_text()
    assert "git clone" in fresh and 'LINKAGE_VENV="$work/venv" ./dev demo' in fresh


def test_fresh_clone_demo_failure_fails_ci(tmp_path: Path) -> None:
    """.ci/fresh-demo clones the checkout and runs `./dev demo` there: when the demo
    cannot run (here: no such Python), it exits non-zero with the demo's own words."""
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "no-such-python3", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [str(ROOT / ".ci" / "fresh-demo")], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "./dev demo failed on a fresh clone" in proc.stderr
    assert "no no-such-python3 on PATH" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # the clone is removed


def test_dev_script_is_valid_and_explains_itself() -> None:
    dev = ROOT / "dev"
    assert dev.stat().st_mode & 0o111, "./dev must be executable"
    assert subprocess.run(["sh", "-n", str(dev)], check=False).returncode == 0
    proc = subprocess.run([str(dev), "nonsense"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "./dev demo" in proc.stderr and "./dev test" in proc.stderr
    proc = subprocess.run(
        [str(dev), "demo"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHON": "no-such-python3"},
    )
    assert proc.returncode == 1 and "no no-such-python3 on PATH" in proc.stderr


def test_data_contract_doc_lists_every_column_of_the_code() -> None:
    doc = (ROOT / "docs" / "DATA_CONTRACT.md").read_text()
    for name, table in TABLES.items():
        section = doc.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        documented = re.findall(r"^\| ([a-z_]+) \|", section, flags=re.M)
        if name == "signups":  # "Same columns as accounts"
            assert "Same columns as **accounts**" in section
            continue
        documented = [c for c in documented if c != "column"]
        # labels.split is documented but only informative (kept as an extra column)
        assert [c for c in documented if c != "split"] == table.column_names, name


def test_example_dataset_is_small_and_follows_the_contract() -> None:
    from linkage.ingest import load_dataset

    ex = ROOT / "examples" / "tiny"
    ds = load_dataset(ex)
    assert ds.report.rows_quarantined == 0 and ds.report.problem_counts == {}
    assert len(ds.accounts) == 11 and len(ds.requests) == 29 and ds.labels is not None
    assert "examples/tiny" in (ROOT / "README.md").read_text()


def _imported_top_modules() -> set[str]:
    """Top-level modules the shipped code (linkage, api, fixtures) imports, lazily or not."""
    found: set[str] = set()
    for folder in ("linkage", "api", "fixtures"):
        for path in (ROOT / folder).rglob("*.py"):
            for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(), re.M):
                found.add(m.group(1))
    return found


def test_every_core_dependency_is_imported_by_the_product() -> None:
    import tomllib
    from importlib.metadata import packages_distributions

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    imported = _imported_top_modules()
    unused = sorted(n for n in names if not (modules_of.get(n, {n.replace("-", "_")}) & imported))
    assert unused == [], f"declared in [project] dependencies but never imported: {unused}"
