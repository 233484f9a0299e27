"""The review console's server side (/console), through the real app on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from tests.api.console_world import XSS_ID, XSS_PROMPT, ConsoleWorld, build_world

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ConsoleWorld:
    return build_world(tmp_path_factory.mktemp("console"))


@pytest.fixture
def client(world: ConsoleWorld) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(store_url=world.url))
    with TestClient(app, base_url=BASE) as c:
        yield c
    app.state.store.close()


def login(client: TestClient, token: str) -> str:
    r = client.post("/console/api/login", json={"key": token})
    assert r.status_code == 200, r.text
    return r.json()["csrf"]


def test_page_has_a_strict_csp_and_no_inline_script(client: TestClient) -> None:
    r = client.get("/console/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert '<script src="/console/static/app.js"' in r.text
    assert "<script>" not in r.text  # no inline script anywhere
    assert (
        client.get("/console/static/app.js").headers["content-type"].startswith("text/javascript")
    )
    assert client.get("/console/static/..%2Fqueries.py").status_code == 404
    assert client.get("/console/static/index.html").status_code == 404


def test_login_sets_an_httponly_strict_cookie_and_never_echoes_the_key(
    client: TestClient, world: ConsoleWorld
) -> None:
    assert client.get("/console/api/queue").status_code == 401
    bad = client.post("/console/api/login", json={"key": "lk_nope_nope"})
    assert bad.status_code == 401
    r = client.post("/console/api/login", json={"key": world.keys["viewer"]})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert world.keys["viewer"] not in cookie and world.keys["viewer"] not in r.text
    assert r.json()["scopes"] == ["read"]
    assert client.get("/console/api/queue").status_code == 200
    store = client.app.state.store  # type: ignore[attr-defined]
    _, scorer = store.create_key("scorer", ["score"])
    refused = client.post("/console/api/login", json={"key": scorer})
    assert refused.status_code == 403 and "read" in refused.json()["error"]["message"]


def test_writes_need_the_csrf_token_and_the_same_origin(
    client: TestClient, world: ConsoleWorld
) -> None:
    csrf = login(client, world.keys["analyst"])
    body = {
        "target_type": "account",
        "target_id": "m000",
        "verdict": "confirmed_farm",
        "who": "t",
        "why": "csrf",
    }
    assert client.post("/console/api/feedback", json=body).json()["error"]["code"] == "csrf"
    wrong = client.post("/console/api/feedback", json=body, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    evil = client.post(
        "/console/api/feedback",
        json=body,
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    ok = client.post(
        "/console/api/feedback", json=body, headers={"X-CSRF-Token": csrf, "Origin": BASE}
    )
    assert ok.status_code == 201, ok.text


def test_verdict_lands_in_the_audit_with_the_key_and_matches_v1(
    client: TestClient, world: ConsoleWorld
) -> None:
    csrf = login(client, world.keys["analyst"])
    body = {
        "target_type": "account",
        "target_id": "m001",
        "verdict": "false_positive",
        "who": "ana",
        "why": "a company's shared office",
    }
    r = client.post("/console/api/feedback", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["key_id"] == world.key_ids["analyst"]
    page = client.get("/console/api/account", params={"id": "m001"}).json()
    v1 = client.get(
        "/v1/accounts/m001", headers={"Authorization": f"Bearer {world.keys['admin']}"}
    ).json()
    assert page["effective_level"] == v1["effective_level"] == "clear"
    assert page["level"] == "review"
    audit = client.get(
        "/v1/audit",
        params={"target_id": "m001"},
        headers={"Authorization": f"Bearer {world.keys['admin']}"},
    ).json()
    assert audit["items"][0]["key_id"] == world.key_ids["analyst"]
    assert audit["items"][0]["why"] == "a company's shared office"


def test_read_only_key_cannot_record_a_verdict(client: TestClient, world: ConsoleWorld) -> None:
    csrf = login(client, world.keys["viewer"])
    r = client.post(
        "/console/api/feedback",
        json={
            "target_type": "cluster",
            "target_id": world.ids["five"],
            "verdict": "confirmed_farm",
            "who": "v",
            "why": "no",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403 and r.json()["error"]["details"]["required_scope"] == "feedback"


def test_queue_puts_the_most_uncertain_first_and_pages(
    client: TestClient, world: ConsoleWorld
) -> None:
    login(client, world.keys["viewer"])
    q = client.get("/console/api/queue").json()
    assert [i["cluster_id"] for i in q["items"]][:2] == [world.ids["five"], world.ids["big"]]
    assert q["total"] == 4  # flagged = review + block; the clear office is left out
    assert {i["level"] for i in q["items"]} == {"block", "review"}
    page2 = client.get("/console/api/queue", params={"limit": 3, "offset": 3}).json()
    assert len(page2["items"]) == 1 and page2["total"] == 4
    by_score = client.get("/console/api/queue", params={"sort": "-score"}).json()["items"]
    assert [i["score"] for i in by_score] == sorted((i["score"] for i in by_score), reverse=True)
    clear = client.get("/console/api/queue", params={"level": "clear"}).json()
    assert [i["cluster_id"] for i in clear["items"]] == [world.ids["office"]]
    assert client.get("/console/api/queue", params={"sort": "nope"}).status_code == 422


def test_queue_filters_by_verdict_status(client: TestClient, world: ConsoleWorld) -> None:
    csrf = login(client, world.keys["analyst"])
    mid = world.ids["mid"]
    client.post(
        "/console/api/feedback",
        json={
            "target_type": "cluster",
            "target_id": mid,
            "verdict": "confirmed_farm",
            "who": "a",
            "why": "b",
        },
        headers={"X-CSRF-Token": csrf},
    )
    labelled = client.get("/console/api/queue", params={"verdict": "any"}).json()["items"]
    assert [(i["cluster_id"], i["verdict"]) for i in labelled] == [(mid, "confirmed_farm")]
    open_ = client.get("/console/api/queue", params={"verdict": "none"}).json()["items"]
    assert mid not in {i["cluster_id"] for i in open_} and len(open_) == 3
    assert (
        client.get("/console/api/queue", params={"verdict": "false_positive"}).json()["total"] == 0
    )


def test_cluster_page_draws_members_and_shared_identifiers(
    client: TestClient, world: ConsoleWorld
) -> None:
    login(client, world.keys["viewer"])
    c = client.get(f"/console/api/clusters/{world.ids['five']}").json()
    d = c["drawing"]
    accounts = [n for n in d["nodes"] if n["type"] == "account"]
    idents = sorted(n["id"] for n in d["nodes"] if n["type"] == "identifier")
    assert len(accounts) == 5 and all(n["count"] == 1 for n in accounts)
    # own IPs (one member each) are not drawn
    assert idents == ["device:dev-five", "ip:10.9.9.9", "payment:card-five"]
    templates = [n for n in d["nodes"] if n["type"] == "template"]
    assert len(templates) == 1
    assert all(0 <= n["x"] <= 1 and 0 <= n["y"] <= 1 for n in d["nodes"])
    assert c["run"]["block_threshold"] == 0.9
    assert c["evidence"][0]["kind"] == "shared_payment"  # by contribution
    rows = client.get(f"/console/api/clusters/{world.ids['five']}/rows", params={"item": 1})
    assert [r["account_id"] for r in rows.json()["rows"]] == [f"f{i:03d}" for i in range(5)]
    assert client.get(f"/console/api/clusters/{world.ids['five']}/rows?item=9").status_code == 404


def test_a_500_account_cluster_is_drawn_grouped(client: TestClient, world: ConsoleWorld) -> None:
    login(client, world.keys["viewer"])
    d = client.get(f"/console/api/clusters/{world.ids['big']}").json()["drawing"]
    accounts = [n for n in d["nodes"] if n["type"] == "account"]
    assert d["accounts"] == 500
    assert sum(n["count"] for n in accounts) == 500  # every member is in one node
    assert len(accounts) <= 120
    assert {n["level"] for n in accounts} == {"block", "review"}
    assert any("drawn as" in note for note in d["notes"])


def test_raw_rows_and_ids_come_back_as_data(client: TestClient, world: ConsoleWorld) -> None:
    login(client, world.keys["viewer"])
    rows = client.get(f"/console/api/clusters/{world.ids['xss']}/rows?item=1").json()["rows"]
    assert rows[0]["prompt"] == XSS_PROMPT  # JSON data; the page puts it in as text
    a = client.get("/console/api/account", params={"id": XSS_ID})
    assert a.status_code == 200, a.text
    assert a.json()["account_id"] == XSS_ID


def test_revoking_the_key_ends_the_session(client: TestClient, world: ConsoleWorld) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    key, token = store.create_key("short-lived", ["read"])
    login(client, token)
    assert client.get("/console/api/session").status_code == 200
    store.revoke_key(key.id)
    assert client.get("/console/api/queue").status_code == 401
    assert client.get("/console/api/session").status_code == 401


def test_logout_forgets_the_session(client: TestClient, world: ConsoleWorld) -> None:
    csrf = login(client, world.keys["viewer"])
    assert client.post("/console/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/console/api/queue").status_code == 401


def test_static_files_ship_with_the_package() -> None:
    static = Path(__file__).resolve().parents[2] / "api" / "console" / "static"
    names = {p.name for p in static.iterdir()}
    assert {"index.html", "app.js", "console.css"} <= names
    text = (static / "app.js").read_text()
    for unsafe in (".innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in text, unsafe
    assert "localStorage" not in text and "sessionStorage" not in text


def test_lineage_and_the_run_filter_follow_a_second_run(
    world: ConsoleWorld, tmp_path: Path
) -> None:
    import shutil

    from linkage.store.db import Store
    from linkage.store.rundir import load_run, write_run

    db = tmp_path / "store.db"
    shutil.copyfile(world.db, db)
    shutil.copyfile(f"{world.db}.keysecret", f"{db}.keysecret")
    url = f"sqlite:///{db}"
    run = load_run(world.run_dir)  # the same farms seen again, the office gone: ids continue
    kept = [c for c in run.clusters if c["cluster_id"] != "office"]
    manifest = {k: v for k, v in run.manifest.items() if k not in ("files", "format_version")}
    run2 = write_run(
        tmp_path / "run2",
        accounts=run.accounts[run.accounts["cluster_id"] != "office"],
        clusters=kept,
        manifest=manifest,
        signup_index=run.signup_index,
    )
    store = Store(url)
    second = store.import_run(run2)
    store.close()
    assert second.run_id == 2 and second.cluster_ids["five"] == world.ids["five"]
    app = create_app(ServiceSettings(store_url=url))
    with TestClient(app, base_url=BASE) as client:
        login(client, world.keys["viewer"])
        c = client.get(f"/console/api/clusters/{world.ids['five']}").json()
        assert c["run_id"] == 2 and c["current"]
        assert [(p["relation"], p["run_id"]) for p in c["lineage"]["parents"]] == [
            ("new", 1),
            ("continued", 2),
        ]
        v1 = client.get(
            f"/v1/clusters/{world.ids['five']}",
            headers={"Authorization": f"Bearer {world.keys['admin']}"},
        ).json()
        assert c["lineage"] == v1["lineage"]
        assert client.get("/console/api/queue").json()["run_id"] == 2
        old = client.get("/console/api/queue", params={"run": 1}).json()
        assert old["run_id"] == 1 and old["total"] == 4
        runs = client.get("/console/api/runs").json()["runs"]
        assert [r["run_id"] for r in runs] == [2, 1]
    app.state.store.close()
