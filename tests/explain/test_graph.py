"""linkage.explain.graph: a cluster as a networkx graph, raw rows, GraphML/GEXF export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pandas as pd
import pytest

from linkage.errors import RunError
from linkage.explain.graph import cluster_graph, read_rows, write_graph
from linkage.store.rundir import write_run


def _run(tmp: Path, fmt: str = "parquet") -> Path:
    """A run of one 3-account cluster (a, b, c) + one loner, with a requests input."""
    data = tmp / "data"
    data.mkdir()
    requests = pd.DataFrame(
        {
            "account_id": ["a", "x", "b", "c", "a"],
            "prompt": ["p0 <script>alert(1)</script>", "p1", "p2", "p3", "p4"],
        }
    )
    if fmt == "parquet":
        path = data / "requests.parquet"
        requests.to_parquet(path, row_group_size=2)  # rows span three row groups
    elif fmt == "csv":
        path = data / "requests.csv.gz"
        requests.to_csv(path, index=False)
    else:
        path = data / "requests.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in requests.to_dict("records")))
    evidence = [
        {
            "kind": "coordination",
            "summary": "tied",
            "contribution": 1.5,
            "details": {
                "identifiers": [
                    {
                        "kind": "ip",
                        "value": "1.2.3.4",
                        "members": 3,
                        "holders": 3,
                        "weight_nats": 4.0,
                    }
                ],
                "templates": [
                    {
                        "template_id": "t1",
                        "requests_in_cluster": 3,
                        "skeleton": "explain <n>",
                        "request_rows": [0, 2, 4],
                    }
                ],
            },
        }
    ]
    accounts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "x"],
            "cluster_id": ["c1", "c1", "c1", None],
            "score": [0.95, 0.93, 0.6, 0.1],
            "level": ["block", "block", "review", "clear"],
        }
    )
    index = pd.DataFrame(
        [
            ("ip", "1.2.3.4", "a", 4.0),
            ("ip", "1.2.3.4", "b", 4.0),
            ("ip", "1.2.3.4", "c", 4.0),
            ("payment", "card-1", "a", 6.0),
            ("payment", "card-1", "b", 6.0),
            ("device", "dev-alone", "c", 8.0),  # held by one member only: not shared
            ("ip", "1.2.3.4", "x", 4.0),  # a non-member holding it
        ],
        columns=["kind", "value", "account_id", "weight"],
    )
    return write_run(
        tmp / "run",
        accounts=accounts,
        clusters=[
            {
                "cluster_id": "c1",
                "size": 3,
                "score": 0.93,
                "level": "block",
                "members": ["a", "b", "c"],
                "evidence": evidence,
            }
        ],
        manifest={"inputs": {"requests": {"path": str(path), "bytes": path.stat().st_size}}},
        signup_index=index,
    )


def test_cluster_graph_holds_members_shared_identifiers_and_templates(tmp_path: Path) -> None:
    g = cluster_graph(_run(tmp_path), "c1")
    types = {n: d["type"] for n, d in g.nodes(data=True)}
    assert sorted(n for n, t in types.items() if t == "account") == [
        "account:a",
        "account:b",
        "account:c",
    ]
    assert sorted(n for n, t in types.items() if t == "identifier") == [
        "ip:1.2.3.4",
        "payment:card-1",
    ]  # the device held by one member is not shared; the outsider x is not drawn
    assert set(g["ip:1.2.3.4"]) == {"account:a", "account:b", "account:c"}
    assert g.nodes["payment:card-1"]["members"] == 2
    assert g.edges["account:a", "payment:card-1"]["weight"] == 6.0
    assert g.nodes["ip:1.2.3.4"]["evidence"] == "coordination"
    assert g.nodes["account:c"]["level"] == "review"
    # the template is tied to the members that sent its rows 0, 2 and 4 (a, b, a)
    assert set(g["template:t1"]) == {"account:a", "account:b"}
    assert g.edges["account:a", "template:t1"]["request_rows"] == "0,4"
    assert g.graph["level"] == "block"
    assert json.loads(g.graph["evidence"])[0]["kind"] == "coordination"


def test_unknown_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="cluster 'nope' not found"):
        cluster_graph(_run(tmp_path), "nope")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_read_rows_returns_the_rows_evidence_points_to(tmp_path: Path, fmt: str) -> None:
    run = _run(tmp_path, fmt)
    manifest = json.loads((run / "manifest.json").read_text())
    rows = read_rows(manifest, "requests", [4, 0, 99])
    assert rows["_row"].tolist() == [0, 4]  # ordered, past-the-end left out
    assert rows["account_id"].tolist() == ["a", "a"]
    assert rows["prompt"].iloc[0] == "p0 <script>alert(1)</script>"


def test_read_rows_refuses_an_input_that_changed(tmp_path: Path) -> None:
    run = _run(tmp_path, "csv")
    manifest = json.loads((run / "manifest.json").read_text())
    Path(manifest["inputs"]["requests"]["path"]).write_bytes(b"account_id,prompt\nz,q\n")
    with pytest.raises(RunError, match="changed since the run"):
        read_rows(manifest, "requests", [0])
    # the graph is still drawn, without the template edges it cannot prove
    g = cluster_graph(run, "c1")
    assert "template:t1" in g and g.degree("template:t1") == 0


@pytest.mark.parametrize("fmt", ["graphml", "gexf"])
def test_export_writes_a_file_networkx_reads_back(tmp_path: Path, fmt: str) -> None:
    g = cluster_graph(_run(tmp_path), "c1")
    out = write_graph(g, tmp_path / f"c1.{fmt}", fmt=fmt)
    back = nx.read_graphml(out) if fmt == "graphml" else nx.read_gexf(out)
    assert back.number_of_nodes() == g.number_of_nodes() == 6
    assert back.number_of_edges() == g.number_of_edges()


def test_export_graph_cli(tmp_path: Path) -> None:
    run = _run(tmp_path)
    out = tmp_path / "c1.gexf"
    cmd = [sys.executable, "-m", "linkage.cli", "export-graph", str(run), "c1"]
    ok = subprocess.run(
        [*cmd, "--format", "gexf", "--out", str(out)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "6 nodes" in ok.stderr
    assert nx.read_gexf(out).number_of_nodes() == 6
    bad = subprocess.run([*cmd[:-1], "nope", "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "cluster 'nope' not found" in bad.stderr and "Traceback" not in bad.stderr


def test_store_cluster_graph_reads_a_stable_id(tmp_path: Path) -> None:
    from linkage.explain.graph import store_cluster_graph
    from linkage.store.db import Store

    run = _run(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        stable = store.import_run(run).cluster_ids["c1"]
        g = store_cluster_graph(store, stable)
        direct = cluster_graph(run, "c1")
        assert sorted(g.nodes) == sorted(direct.nodes)
        assert sorted(g.edges) == sorted(direct.edges)
        assert g.graph["cluster_id"] == stable
        with pytest.raises(RunError, match="no cluster"):
            store_cluster_graph(store, "cl-999999")
    finally:
        store.close()
