"""POST /v1/share/export on a real app, a real SQLite store and the tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
import stix2
from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.share.hashing import PartnershipKey
from linkage.store.db import Store
from tests.share.conftest import FARM, FARM_VALUES


@pytest.fixture
def client(tiny_run: Path, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_run(tiny_run)
    tokens = {s: store.create_key(f"t-{s}", [s])[1] for s in ("admin", "read")}
    store.close()
    app = create_app(ServiceSettings(store_url=url))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.tokens = tokens  # type: ignore[attr-defined]
        yield c
    app.state.store.close()


def _h(client, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[scope]}"}


def test_admin_exports_a_stix_bundle_of_keyed_hashes(client) -> None:
    key = PartnershipKey(bytes(range(32)))
    r = client.post(
        "/v1/share/export",
        json={"key": key.secret.hex(), "producer": "A"},
        headers=_h(client, "admin"),
    )
    assert r.status_code == 200, r.text
    bundle = stix2.parse(r.json(), allow_custom=True)
    (ind,) = [o for o in bundle.objects if o.type == "indicator"]
    assert ind.x_linkage_hashes["payment"] == {key.digest("payment", FARM_VALUES["payment"]): 1.0}
    assert not any(v in r.text for v in [*FARM, *FARM_VALUES.values()])
    assert key.secret.hex() not in r.text


def test_export_needs_admin_and_a_real_key(client) -> None:
    body = {"key": "00" * 32}
    assert client.post("/v1/share/export", json=body, headers=_h(client, "read")).status_code == 403
    assert client.post("/v1/share/export", json=body).status_code == 401
    bad = client.post("/v1/share/export", json={"key": "@" * 60}, headers=_h(client, "admin"))
    assert bad.status_code == 422 and "hex or base64" in bad.json()["error"]["message"]
    short = client.post("/v1/share/export", json={"key": "ab" * 10}, headers=_h(client, "admin"))
    assert short.status_code == 422
