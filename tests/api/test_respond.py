"""GET /v1/accounts/{id}/action and POST /v1/watermark/detect (scope `respond`)."""

from __future__ import annotations

from linkage.fixtures.responses import responses
from linkage.respond.perturb import perturb
from linkage.respond.service import Responder
from linkage.settings import RespondSettings, Settings
from tests.api.conftest import Env, assert_error

FIELDS = {
    "account_id",
    "action",
    "perturbation_strength",
    "watermark_key_id",
    "reason",
    "level",
    "rate_limit_per_minute",
}


def _respond_key(env: Env) -> dict[str, str]:
    _, token = env.store.create_key("respond-test", ["respond"])
    return {"Authorization": f"Bearer {token}"}


def _degrading(env: Env) -> Responder:
    r = Responder(
        env.store, Settings(respond=RespondSettings(block_action="degrade")), refresh_seconds=0
    )
    env.app.state.responder = r
    return r


def test_auth_and_scope(env: Env):
    assert_error(env.client.get("/v1/accounts/f0/action"), 401, "unauthorized")
    assert_error(env.client.get("/v1/accounts/f0/action", headers=env.h("read")), 403, "forbidden")
    h = _respond_key(env)
    assert env.client.get("/v1/accounts/f0/action", headers=h).status_code == 200
    assert env.client.get("/v1/accounts/f0/action", headers=env.h("admin")).status_code == 200
    assert_error(env.client.get("/v1/accounts/nobody/action", headers=h), 404, "not_found")


def test_default_actions_per_level(env: Env):
    h = _respond_key(env)

    def act(a: str) -> dict:
        r = env.client.get(f"/v1/accounts/{a}/action", headers=h)
        assert r.status_code == 200, r.text
        assert set(r.json()) == FIELDS
        return r.json()

    assert act("f0")["action"] == "suspend"  # block, default block_action
    p = act("p0")
    assert p["action"] == "step_up" and p["rate_limit_per_minute"] == 20
    o = act("o0")
    assert o["action"] == "none" and o["perturbation_strength"] == 0
    assert o["watermark_key_id"] is None


def test_degrade_returns_key_id_and_upheld_appeal_clears(env: Env):
    _degrading(env)
    h = _respond_key(env)
    r = env.client.get("/v1/accounts/f1/action", headers=h).json()
    assert r["action"] == "degrade" and r["watermark_key_id"].startswith("wm-")
    assert 0.3 <= r["perturbation_strength"] <= 1.0
    assert "secret" not in str(r)
    fb = env.client.post(
        "/v1/feedback",
        headers=env.h("feedback"),
        json={
            "target_type": "account",
            "target_id": "f1",
            "verdict": "appeal_upheld",
            "who": "analyst@example.com",
            "why": "verified lab",
        },
    )
    assert fb.status_code == 201, fb.text
    r2 = env.client.get("/v1/accounts/f1/action", headers=h).json()
    assert r2["action"] == "none" and r2["watermark_key_id"] is None
    assert "appeal upheld" in r2["reason"]
    assert env.client.get("/v1/accounts/f2/action", headers=h).json()["action"] == "degrade"


def test_detect_attributes_the_cluster_and_not_clean_text(env: Env):
    r = _degrading(env)
    h = _respond_key(env)
    a = r.action("f0")
    secret = r.keys.secret(a.watermark_key_id)
    texts = responses(120, seed=31)
    leaked = [perturb(t, a.perturbation_strength, secret) for t in texts]
    res = env.client.post("/v1/watermark/detect", headers=h, json={"texts": leaked[:60]})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["results"][0]["key_id"] == a.watermark_key_id
    assert body["results"][0]["attributed"] and body["results"][0]["p_value"] < 1e-6
    assert body["results"][0]["log10_p"] < -6  # exact in log space, never rounded to 0
    assert body["attributed"] == [body["results"][0]["cluster_id"]]
    assert "secret" not in res.text
    clean = env.client.post("/v1/watermark/detect", headers=h, json={"texts": texts[:60]}).json()
    assert clean["attributed"] == []
    assert_error(
        env.client.post("/v1/watermark/detect", headers=h, json={"texts": []}),
        422,
        "validation_error",
    )
    assert_error(
        env.client.post("/v1/watermark/detect", headers=env.h("read"), json={"texts": ["x"]}),
        403,
        "forbidden",
    )


def test_detect_top_is_a_strict_integer(env: Env):
    h = _respond_key(env)
    for bad in (False, True, "5", 2.5):
        err = assert_error(
            env.client.post("/v1/watermark/detect", headers=h, json={"texts": ["x"], "top": bad}),
            422,
            "validation_error",
        )
        assert err["details"][0]["loc"] == ["body", "top"], bad
    ok = env.client.post("/v1/watermark/detect", headers=h, json={"texts": ["x"], "top": 5})
    assert ok.status_code == 200
