"""The service reads its settings and checks its inputs: velocity window from the environment, evidence that
names the store's cluster ids, peer runs refused at import, non-UTF-8 bodies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from linkage.errors import StoreError
from linkage.store.db import Store
from tests.api.conftest import CLUSTERS, LEVELS, SCORES, Env, Template, assert_error, build_env
from tests.store.run_factory import make_run


def _burst(env: Env, gap_s: float) -> dict:
    """Two signups on one card ``gap_s`` seconds apart (server clock: the client's
    created_at says 30 s apart and does not matter); the second's response."""
    out = {}
    for i, t in enumerate(("2026-03-01T10:00:00Z", "2026-03-01T10:00:30Z")):
        if i:
            time.sleep(gap_s)
        out = env.client.post(
            "/v1/signups/score",
            json={"account_id": f"v{i}", "payment_fingerprint": "card-v", "created_at": t},
            headers=env.h("score"),
        ).json()
    return out


def test_velocity_window_from_the_environment_reaches_the_scorer(
    tmp_path: Path, template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKAGE_VELOCITY_WINDOW_SECONDS", "1")
    (tmp_path / "short").mkdir()
    (tmp_path / "default").mkdir()
    short = build_env(tmp_path / "short", template)
    assert short.app.state.signups.scorer.window_s == 1.0
    assert _burst(short, 1.3)["velocity"]["payment"] == 1  # 1.3 s apart: outside a 1 s window
    monkeypatch.delenv("LINKAGE_VELOCITY_WINDOW_SECONDS")
    default = build_env(tmp_path / "default", template)
    assert default.app.state.signups.scorer.window_s == 600.0
    assert _burst(default, 0)["velocity"]["payment"] == 2  # inside the default 600 s


def test_signup_evidence_names_the_stable_cluster_id(env: Env) -> None:
    body = {
        "account_id": "nf",
        "payment_fingerprint": "card-farm",
        "device_fingerprint": "dev-farm",
    }
    out = env.client.post("/v1/signups/score", json=body, headers=env.h("score")).json()
    stable = env.ids["farm"]
    assert out["cluster_id"] == stable and stable != "farm"
    attach = next(e for e in out["evidence"] if e["kind"] == "attaches_to_cluster")
    assert f"cluster {stable} " in attach["summary"]
    assert "cluster farm" not in attach["summary"]
    assert attach["details"]["cluster_id"] == stable
    assert attach["details"]["run_cluster_id"] == "farm"


def test_importing_a_peer_run_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    graph = make_run(tmp_path / "g", CLUSTERS, levels=LEVELS, scores=SCORES)
    first = store.import_run(graph)
    rules = make_run(tmp_path / "r", {}, loners=["a", "b"])
    manifest = json.loads((rules / "manifest.json").read_text())
    manifest["method"] = "rules"
    (rules / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="made with `--method rules`"):
        store.import_run(rules)
    latest = store.latest_run()
    assert latest is not None and latest["run_id"] == first.run_id  # still the graph run
    store.close()


def test_non_utf8_body_gets_the_documented_message(env: Env) -> None:
    r = env.client.post(
        "/v1/signups/score",
        content=b'{"account_id": "caf\xe9"}',
        headers={**env.h("score"), "Content-Type": "application/json"},
    )
    err = assert_error(r, 400, "bad_request")
    assert err["message"] == "request body is not valid UTF-8"


def test_docs_page_works_offline(env: Env) -> None:
    page = env.client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    js = env.client.get("/docs/assets/swagger-ui-bundle.js")
    css = env.client.get("/docs/assets/swagger-ui.css")
    assert js.status_code == 200 and len(js.content) > 100_000 and b"SwaggerUIBundle" in js.content
    assert css.status_code == 200 and b".swagger-ui" in css.content
    assert env.client.get("/openapi.json").status_code == 200
