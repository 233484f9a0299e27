"""The service-side commands: `import-run` checks a run whole, `clusters` prints the ids
the service answers for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.store.db import Store
from tests.store.run_factory import make_run, members


def linkage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LINKAGE_STORE_URL"}
    return subprocess.run(
        [sys.executable, "-c", "from linkage.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_import_run_refuses_a_truncated_run_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = make_run(tmp_path / "run", {"farm": members("f", 4)}, levels={"farm": "block"})
    bad = make_run(tmp_path / "bad", {"farm": members("f", 4)}, levels={"farm": "block"})
    acc = bad / "accounts.csv"
    acc.write_bytes(acc.read_bytes()[:-5])
    r = linkage("import-run", str(bad), "--store", url)
    assert r.returncode == 2, r.stderr
    assert "failed verification" in r.stderr and "accounts.csv" in r.stderr
    assert "Traceback" not in r.stderr
    assert Store(url).latest_run() is None
    first = linkage("import-run", str(run), "--store", url)
    assert first.returncode == 0 and "imported run 1" in first.stdout
    again = linkage("import-run", str(run), "--store", url)
    assert again.returncode == 0 and "already in the store as run 1" in again.stdout
    assert Store(url).latest_run()["run_id"] == 1


def test_clusters_prints_the_ids_the_service_answers_for(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = make_run(tmp_path / "run", {"c0": members("a", 4), "c1": members("b", 3)})
    store = Store(url)
    ids = store.import_run(run).cluster_ids
    key = store.create_key("t", ["read"])[1]
    store.close()
    r = linkage("clusters", str(run), "--store", url, "--json")
    assert r.returncode == 0, r.stderr
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    assert {p["cluster_id"] for p in printed} == set(ids.values())
    assert {p["run_cluster_id"] for p in printed} == {"c0", "c1"}
    app = create_app(ServiceSettings(store_url=url))
    with TestClient(app) as c:
        for p in printed:
            got = c.get(
                f"/v1/clusters/{p['cluster_id']}", headers={"Authorization": f"Bearer {key}"}
            )
            assert got.status_code == 200 and got.json()["source_id"] == p["run_cluster_id"]
    app.state.store.close()
    shown = linkage("explain", str(run), ids["c0"], "--store", url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["cluster_id"] == ids["c0"]
    plain = linkage("clusters", str(run))  # no store: the run's ids, and a note saying so
    assert {line.split("\t")[0] for line in plain.stdout.splitlines()} == {"c0", "c1"}
    assert "--store" in plain.stderr
