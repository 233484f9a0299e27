"""Every /v1 route needs a key with the right scope: 401 without / invalid, 403 wrong scope."""

from __future__ import annotations

import pytest

from tests.api.conftest import Env, assert_error

SIGNUP = {"account_id": "new1", "email": "x@example.com", "signup_ip": "10.0.0.1"}
FEEDBACK = {
    "target_type": "account",
    "target_id": "f0",
    "verdict": "confirmed_farm",
    "who": "a",
    "why": "b",
}


def _call(env: Env, route: str, headers: dict[str, str]):
    c = env.client
    if route == "clusters":
        return c.get("/v1/clusters", headers=headers)
    if route == "cluster":
        return c.get(f"/v1/clusters/{env.ids['farm']}", headers=headers)
    if route == "account":
        return c.get("/v1/accounts/f0", headers=headers)
    if route == "signup":
        return c.post("/v1/signups/score", json=SIGNUP, headers=headers)
    return c.post("/v1/feedback", json=FEEDBACK, headers=headers)


NEEDS = {
    "clusters": "read",
    "cluster": "read",
    "account": "read",
    "signup": "score",
    "feedback": "feedback",
}


@pytest.mark.parametrize("route", list(NEEDS))
def test_missing_and_invalid_keys_are_401(env: Env, route: str) -> None:
    err = assert_error(_call(env, route, {}), 401, "unauthorized")
    assert "Bearer" in err["message"]
    assert _call(env, route, {}).headers["www-authenticate"] == "Bearer"
    for bad in (
        "Bearer nope",
        "Bearer lk_abc_def",
        "Basic dXNlcjpwYXNz",
        f"Bearer {env.keys['read']}x",
    ):
        assert_error(_call(env, route, {"Authorization": bad}), 401, "unauthorized")


@pytest.mark.parametrize("route", list(NEEDS))
def test_scopes(env: Env, route: str) -> None:
    needed = NEEDS[route]
    for scope in ("read", "score", "feedback"):
        r = _call(env, route, env.h(scope))
        if scope == needed:
            assert r.status_code in (200, 201), r.text
        else:
            err = assert_error(r, 403, "forbidden")
            assert err["details"]["required_scope"] == needed
    assert _call(env, route, env.h("admin")).status_code in (200, 201)  # admin implies all


def test_revoked_key_is_refused_immediately(env: Env) -> None:
    assert env.client.get("/v1/clusters", headers=env.h("read")).status_code == 200
    key_id = env.keys["read"].split("_")[1]
    assert env.store.revoke_key(key_id)
    assert_error(env.client.get("/v1/clusters", headers=env.h("read")), 401, "unauthorized")


def test_healthz_is_open_metrics_and_readyz_details_need_a_key(env: Env) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    r = env.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "details": None}
    assert str(env.run_dir) not in r.text
    assert_error(env.client.get("/metrics"), 401, "unauthorized")
    assert_error(env.client.get("/metrics", headers=env.h("read")), 403, "forbidden")
    for scope in ("metrics", "admin"):
        assert env.client.get("/metrics", headers=env.h(scope)).status_code == 200
        d = env.client.get("/readyz", headers=env.h(scope)).json()["details"]
        assert d["run_path"] == str(env.run_dir.resolve()) and d["store"]["write"] is True
    # a key without the scope sees no details
    assert env.client.get("/readyz", headers=env.h("read")).json()["details"] is None


def test_plain_key_is_nowhere_in_the_database(env: Env, tmp_path) -> None:
    env.store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    for token in env.keys.values():
        assert token.split("_", 2)[2].encode() not in raw
