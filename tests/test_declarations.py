"""The identifier kinds are declared once (linkage/identifiers/kinds.py) and every other
module iterates or queries that declaration.

- no other module of ``linkage/`` or ``api/`` spells a kind's name or the provider
  prefix ``x:`` in a string (docstrings and comments may), except the few listed below
  with their reason;
- adding a kind is a change to the declaration alone: a copy of the package whose only
  edit is one more ``Kind`` in ``KINDS`` links accounts through it in the graph, the
  features, the evidence, the signup index and the signup scorer;
- the kind table of docs/MODEL.md is the declaration's.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from linkage.identifiers import kinds as K

ROOT = Path(__file__).resolve().parents[1]
DECLARATION = Path("linkage/identifiers/kinds.py")
PREFIX = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(K.EXTRA_PREFIX))

#: (file, string) still spelled outside the declaration, and why.  A fixed entry must go
#: (test_allowed_literals_still_exist fails on a stale one).
ALLOWED: dict[tuple[str, str], str] = {
    # column names that happen to equal a kind's name (the raw column, not the kind)
    ("linkage/ingest/validate.py", "ip"): "the requests column ip (IP_COLUMNS)",
    ("linkage/identifiers/prompts.py", "topic"): "the prompt-signal module's output column",
    ("linkage/identifiers/extract.py", "topic"): "reads the prompt-signal module's column",
}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            out.add(id(node.value))  # docstrings and bare string statements
    return out


def _column_declarations(tree: ast.AST) -> set[int]:
    """String arguments of ``Column(...)`` (the data contract names columns, not kinds)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Column":
            out |= {id(a) for a in node.args if isinstance(a, ast.Constant)}
    return out


def kind_literals() -> set[tuple[str, str]]:
    """(file, string) of every string constant naming a kind or holding ``x:``."""
    names = {k.name for k in K.KINDS}
    found: set[tuple[str, str]] = set()
    for top in ("linkage", "api"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel == DECLARATION:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = _docstrings(tree) | _column_declarations(tree)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in skip
                    and (node.value in names or PREFIX.search(node.value))
                ):
                    found.add((rel.as_posix(), node.value))
    return found


def test_no_kind_name_or_provider_prefix_outside_the_declaration() -> None:
    extra = sorted(kind_literals() - set(ALLOWED))
    assert not extra, f"kind names / {K.EXTRA_PREFIX!r} spelled outside {DECLARATION}: {extra}"


def test_allowed_literals_still_exist() -> None:
    stale = sorted(set(ALLOWED) - kind_literals())
    assert not stale, f"no longer spelled there, drop from ALLOWED: {stale}"


def test_the_scan_sees_a_literal(tmp_path: Path) -> None:
    """The scanner itself: a kind name in code is found, in a docstring it is not."""
    src = f'"""{K.KINDS[0].name} in a docstring"""\nx = {K.KINDS[0].name!r}\ny = "x:" + x\n'
    tree = ast.parse(src)
    skip = _docstrings(tree)
    hits = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and id(n) not in skip and isinstance(n.value, str)
    ]
    assert hits == [K.KINDS[0].name, "x:"] and PREFIX.search(hits[1])


def test_declaration_is_consistent() -> None:
    families = {f.name for f in K.LINK_FAMILIES}
    for k in K.KINDS:
        assert k.family in families, k.name
        assert k.roles <= set(K.ROLES), k.name
        assert not K.is_provider_kind(k.name), k.name
    ranks = [k.edge_rank for k in K.KINDS if k.edge_rank is not None]
    assert len(ranks) == len(set(ranks))
    shared = [k.share_rank for k in K.KINDS if k.share_rank is not None]
    assert len(shared) == len(set(shared))
    assert all(k.share_rank is not None for k in K.KINDS if k.personal)  # only shared ones
    # the roles the score reads a single kind for
    for role in ("card", "org_domain", "template_ids", "topic_ids"):
        K.the_kind(role)
    assert K.independent_family(K.provider_kind("phone")) == K.provider_kind("phone")
    assert K.link_family(K.provider_kind("phone")) == K.OTHER_FAMILY
    assert K.has_role(K.provider_kind("friend"), "exposure")


# -- adding a kind is a one-file change -------------------------------------------------

NEW_KIND = (
    '    Kind("phone", None, "phone_number", sql=sql_trim("{x}"), one=trim_one, '
    'velocity_limit=3, wording="phone", peer=True),\n'
)
PHONE = "+1 555 0100"
PAIR = ("farm-1", "farm-2")

FLOW = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import pandas as pd

    from linkage.baselines._files import IDENTIFIER_COLUMNS
    from linkage.identifiers.kinds import SIGNUP_KINDS, kind, link_family
    from linkage.pipeline import prepare, run_detect
    from linkage.settings import Settings
    from linkage.signup import SignupScorer

    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings()
    prep = prepare(data, settings=settings)
    edges = prep.ids.edges
    inc = prep.graph.incidence
    X = prep.X.loc[sys.argv[3].split(",")]
    run_detect(data, out, settings=settings)
    index = pd.read_parquet(out / "signup_index.parquet")
    clusters = [json.loads(line) for line in (out / "clusters.jsonl").read_text().splitlines()]
    cited = [
        i["kind"]
        for c in clusters
        for e in c["evidence"]
        for i in e.get("details", {}).get("identifiers", [])
    ]
    scorer = SignupScorer.from_run(out)
    res = scorer.score_one({"account_id": "new-1", "phone_number": " +1 555 0100 "}, now=1e9)
    attach = [
        i["kind"]
        for e in res.evidence
        if e.kind == "attaches_to_cluster"
        for i in e.details["identifiers"]
    ]
    print(json.dumps({
        "declared": kind("phone").accounts_column,
        "signup_kinds": list(SIGNUP_KINDS),
        "family": link_family("phone"),
        "edges": sorted(set(edges.loc[edges["kind"] == "phone", "value"])),
        "edge_kinds": list(dict.fromkeys(edges["kind"])),
        "incidence": int((inc["kind"] == "phone").sum()),
        "c_link_other": float(X["c_link_other"].min()),
        "index": int((index["kind"] == "phone").sum()),
        "cited": "phone" in cited,
        "velocity": res.velocity,
        "attach": "phone" in attach,
        "peer": [list(c) for c in IDENTIFIER_COLUMNS if c[2] == "phone"],
    }))
    """
)


@pytest.fixture
def package_with_a_new_kind(tmp_path: Path) -> Path:
    """A copy of ``linkage`` whose one edit is one more ``Kind`` in ``KINDS``."""
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "linkage", copy / "linkage", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = copy / DECLARATION
    text = path.read_text(encoding="utf-8")
    anchor = "KINDS: tuple[Kind, ...] = (\n"
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, anchor + NEW_KIND), encoding="utf-8")
    return copy


def test_adding_a_kind_is_a_one_file_change(package_with_a_new_kind: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "tiny", data)
    accounts = pd.read_csv(data / "accounts.csv", dtype=str)
    # two accounts of the example's farm give one phone (spelled with stray spaces once)
    farm = accounts["account_id"].isin(PAIR)
    accounts["phone_number"] = None
    accounts.loc[farm, "phone_number"] = PHONE
    accounts.loc[accounts.index[farm][0], "phone_number"] = f"  {PHONE}\t"
    accounts.to_csv(data / "accounts.csv", index=False)

    script = tmp_path / "flow.py"
    script.write_text(FLOW, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(data), str(tmp_path / "run"), ",".join(PAIR)],
        cwd=package_with_a_new_kind,
        env={"PYTHONPATH": str(package_with_a_new_kind), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["declared"] == "phone_number"
    assert "phone" in got["signup_kinds"]
    assert got["family"] == K.OTHER_FAMILY
    assert got["edges"] == [PHONE]  # normalised by its declared SQL (trimmed)
    assert got["edge_kinds"].index("phone") > got["edge_kinds"].index(K.KINDS[0].name)
    assert got["incidence"] == int(farm.sum())  # graph
    assert got["c_link_other"] > 0  # features: both are tied to their cluster through it
    assert got["index"] == int(farm.sum())  # the run's signup index
    assert got["cited"]  # evidence
    assert got["velocity"].get("phone") == 1  # signup velocity (its declared limit)
    assert got["attach"]  # the signup attaches to the farm through it
    assert got["peer"] == [["accounts", "phone_number", "phone"]]  # the FRAUDAR peer


def test_the_unmodified_package_has_no_such_kind() -> None:
    """The flow above is the edit's doing: the shipped declaration has no ``phone``."""
    assert "phone" not in {k.name for k in K.KINDS}


# -- docs -------------------------------------------------------------------------------


def test_model_docs_kind_table_is_the_declaration() -> None:
    text = (ROOT / "docs" / "MODEL.md").read_text(encoding="utf-8")
    begin, end = "<!-- kinds:begin -->", "<!-- kinds:end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert table == K.markdown_table().strip(), "regenerate with kinds.markdown_table()"
