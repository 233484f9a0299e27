"""The signup model the service loads: only a run that verifies whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.errors import RunError
from linkage.store.db import Store
from tests.api.conftest import make_template
from tests.store.run_factory import make_run

FARM_SIGNUP = {
    "account_id": "newcomer",
    "payment_fingerprint": "card-farm",
    "device_fingerprint": "dev-farm",
    "signup_ip": "ip-farm",
}


def _restart(url: str) -> tuple[TestClient, object]:
    app = create_app(ServiceSettings(store_url=url))
    return TestClient(app, raise_server_exceptions=False), app


def test_a_refused_empty_run_leaves_the_good_model_serving_after_restart(tmp_path: Path) -> None:
    t = make_template(tmp_path / "t")
    url = f"sqlite:///{t.db}"
    store = Store(url)
    empty = make_run(tmp_path / "empty", {})
    (empty / "clusters.jsonl").write_text("")
    (empty / "accounts.csv").write_text("account_id,cluster_id,score,level\n")
    with pytest.raises(RunError):
        store.import_run(empty)
    store.close()
    c, app = _restart(url)
    with c:
        assert c.get("/readyz").status_code == 200
        h = {"Authorization": f"Bearer {t.keys['score']}"}
        out = c.post("/v1/signups/score", json=FARM_SIGNUP, headers=h).json()
        assert out["level"] == "block" and out["degraded"] is False
    app.state.store.close()


def test_a_run_damaged_on_disk_after_import_is_not_served(tmp_path: Path) -> None:
    t = make_template(tmp_path / "t")
    acc = t.run_dir / "accounts.csv"
    acc.write_bytes(acc.read_bytes()[:40])  # truncated after the import
    c, app = _restart(f"sqlite:///{t.db}")
    with c:
        r = c.get("/readyz", headers={"Authorization": f"Bearer {t.keys['metrics']}"})
        assert r.status_code == 503
        details = r.json()["error"]["details"]
        assert details["model"] is False
        assert "failed verification" in details["model_error"]
        assert "accounts.csv" in details["model_error"]
    app.state.store.close()
