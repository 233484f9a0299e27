"""A real app on a real SQLite file with a real run directory imported."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.store.db import Store
from tests.store.run_factory import make_run, members

CLUSTERS = {
    "farm": members("f", 8),
    "office": members("o", 5),
    "pair": members("p", 2),
    "mid": members("m", 3),
}
LEVELS = {"farm": "block", "office": "clear", "pair": "review", "mid": "review"}
SCORES = {"farm": 0.97, "office": 0.1, "pair": 0.6, "mid": 0.75}


@dataclass
class Env:
    """The app under test, its store, the stable ids and one key per scope."""

    app: FastAPI
    client: TestClient
    store: Store
    url: str
    ids: dict[str, str]
    keys: dict[str, str]
    run_dir: Path

    def h(self, scope: str) -> dict[str, str]:
        """Authorization header for a key with ``scope``."""
        return {"Authorization": f"Bearer {self.keys[scope]}"}


@dataclass(frozen=True)
class Template:
    """A prepared store file (run imported, keys created), copied into each test."""

    db: Path
    run_dir: Path
    ids: dict[str, str]
    keys: dict[str, str]


def make_template(root: Path, *, import_run: bool = True) -> Template:
    """Build a store with the standard run and one key per scope (copied into each test)."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "template.db"
    store = Store(f"sqlite:///{db}")
    run_dir = make_run(
        root / "run1", CLUSTERS, levels=LEVELS, scores=SCORES, loners=["lone1", "lone2"]
    )
    ids = store.import_run(run_dir).cluster_ids if import_run else {}
    keys = {
        s: store.create_key(f"test-{s}", [s])[1]
        for s in ("read", "score", "feedback", "metrics", "admin")
    }
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return Template(db, run_dir, ids, keys)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def empty_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Keys but no run imported (no model can be loaded)."""
    return make_template(tmp_path_factory.mktemp("empty"), import_run=False)


def build_env(tmp_path: Path, template: Template, **settings: object) -> Env:
    """A fresh copy of ``template`` and an app on it (extra ``ServiceSettings`` fields)."""
    db = tmp_path / "store.db"
    shutil.copyfile(template.db, db)
    db.chmod(0o600)
    # the HMAC key of the API keys lives beside the store: copy it with the store
    shutil.copyfile(f"{template.db}.keysecret", f"{db}.keysecret")
    url = f"sqlite:///{db}"
    app = create_app(ServiceSettings(store_url=url, **settings))  # type: ignore[arg-type]
    client = TestClient(app, raise_server_exceptions=False)
    return Env(
        app, client, app.state.store, url, dict(template.ids), dict(template.keys), template.run_dir
    )


@pytest.fixture
def env(tmp_path: Path, template: Template) -> Iterator[Env]:
    e = build_env(tmp_path, template)
    yield e
    e.client.close()
    e.store.close()


def assert_error(resp: object, status: int, code: str) -> dict:
    """The response has ``status`` and the error envelope with ``code``; returns the error."""
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert "Traceback" not in resp.text  # type: ignore[attr-defined]
    return body["error"]
