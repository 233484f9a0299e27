"""Issue 16: verdicts and decisions are trustworthy, dates bounded, key checks cheap and limited."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.store.models import ApiKeyRow, FeedbackRow, SignupRow
from tests.api.conftest import Env, Template, assert_error, build_env

FB = {"target_type": "account", "target_id": "f0", "who": "ana", "why": "ticket T-1"}


def _key_id(env: Env, scope: str) -> str:
    return env.keys[scope].split("_")[1]


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ feedback
def test_verdict_time_is_server_time(env: Env) -> None:
    """A client-dated false_positive cannot outrank a later confirmed_farm."""
    h = env.h("feedback")
    later = _iso(datetime.now(UTC) + timedelta(hours=20))  # inside the window, still "future"
    r = env.client.post(
        "/v1/feedback", json={**FB, "verdict": "false_positive", "ts": later}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["client_ts"] == later
    assert datetime.fromisoformat(r.json()["ts"]) <= datetime.now(UTC)
    r = env.client.post("/v1/feedback", json={**FB, "verdict": "confirmed_farm"}, headers=h)
    assert r.status_code == 201
    acc = env.client.get("/v1/accounts/f0", headers=env.h("read")).json()
    assert acc["verdict"] == "confirmed_farm" and acc["effective_level"] == "block"
    frame = env.store.feedback_frame()
    assert frame.loc[frame.account_id == "f0", "verdict"].tolist()[-1] == "confirmed_farm"


def test_far_future_verdict_is_422_not_500(env: Env) -> None:
    for ts in ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"):
        body = {**FB, "verdict": "false_positive", "ts": ts}
        err = assert_error(
            env.client.post("/v1/feedback", json=body, headers=env.h("feedback")),
            422,
            "validation_error",
        )
        assert err["details"][0]["loc"] == ["body", "ts"]


def test_verdict_records_the_key_not_the_label(env: Env) -> None:
    body = {**FB, "verdict": "confirmed_farm", "who": "someone-else@example.com"}
    r = env.client.post("/v1/feedback", json=body, headers=env.h("feedback"))
    assert r.status_code == 201 and r.json()["key_id"] == _key_id(env, "feedback")
    assert r.json()["run_id"] == 1
    with env.store.engine.connect() as conn:
        assert conn.execute(select(FeedbackRow.key_id)).scalar_one() == _key_id(env, "feedback")
    got = env.client.get("/v1/accounts/f0", headers=env.h("read")).json()["feedback"]
    assert got[0]["key_id"] == _key_id(env, "feedback")


def test_same_verdict_twice_is_idempotent(env: Env) -> None:
    h = env.h("feedback")
    body = {**FB, "verdict": "false_positive"}
    first = env.client.post("/v1/feedback", json=body, headers=h)
    again = env.client.post("/v1/feedback", json=body, headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()

    def n() -> int:
        with env.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(FeedbackRow)).scalar_one()

    assert n() == 1
    # a different verdict in between makes the same verdict a new fact again
    assert (
        env.client.post(
            "/v1/feedback", json={**FB, "verdict": "confirmed_farm"}, headers=h
        ).status_code
        == 201
    )
    assert env.client.post("/v1/feedback", json=body, headers=h).status_code == 201
    # the same verdict from another key is its own record
    assert env.client.post("/v1/feedback", json=body, headers=env.h("admin")).status_code == 201
    assert n() == 4


def test_signup_decision_records_key_and_run(env: Env) -> None:
    r = env.client.post(
        "/v1/signups/score",
        json={"account_id": "k1", "signup_ip": "10.1.1.1"},
        headers=env.h("score"),
    )
    assert r.status_code == 200
    with env.store.engine.connect() as conn:
        row = conn.execute(select(SignupRow).where(SignupRow.account_id == "k1")).one()
    assert row.key_id == _key_id(env, "score") and row.run_id == 1


def test_audit_route(env: Env) -> None:
    env.client.post(
        "/v1/feedback",
        json={**FB, "verdict": "confirmed_farm", "who": "bob"},
        headers=env.h("feedback"),
    )
    env.client.post("/v1/signups/score", json={"account_id": "au1"}, headers=env.h("score"))
    assert_error(env.client.get("/v1/audit", headers=env.h("read")), 403, "forbidden")
    assert_error(env.client.get("/v1/audit", headers=env.h("feedback")), 403, "forbidden")
    page = env.client.get("/v1/audit", headers=env.h("admin")).json()
    assert page["total"] == 2 + 5  # and the creation of the template's five keys
    by_kind = {i["kind"]: i for i in page["items"]}
    fb, su = by_kind["feedback"], by_kind["signup"]
    assert page["items"][0]["kind"] == "signup"  # newest first
    assert (fb["key_id"], fb["key_name"], fb["who"]) == (
        _key_id(env, "feedback"),
        "test-feedback",
        "bob",
    )
    assert (fb["decision"], fb["target_id"], fb["run_id"]) == ("confirmed_farm", "f0", 1)
    assert (su["key_id"], su["key_name"], su["target_id"]) == (
        _key_id(env, "score"),
        "test-score",
        "au1",
    )
    assert su["decision"] in ("clear", "review", "block") and su["run_id"] == 1
    only = env.client.get(
        f"/v1/audit?key_id={_key_id(env, 'score')}", headers=env.h("admin")
    ).json()
    assert [i["kind"] for i in only["items"]] == ["signup"]
    only = env.client.get("/v1/audit?kind=feedback&target_id=f0", headers=env.h("admin")).json()
    assert only["total"] == 1 and only["items"][0]["id"] == fb["id"]


def test_key_and_watermark_changes_land_in_the_audit(env: Env) -> None:
    from linkage.store.watermark_keys import WatermarkKeys

    key, _ = env.store.create_key("ops", ["read"], actor="cli:alice")
    assert env.store.revoke_key(key.id, actor="cli:bob")
    wm = WatermarkKeys(env.store.engine)
    first = wm.ensure(env.ids["farm"])
    second = wm.rotate(env.ids["farm"], actor="cli:carol")
    page = env.client.get("/v1/audit?kind=admin&limit=20", headers=env.h("admin")).json()
    got = [(i["target_type"], i["decision"], i["target_id"], i["who"]) for i in page["items"]]
    assert got[:5] == [
        ("watermark_key", "rotated", env.ids["farm"], "cli:carol"),
        ("watermark_key", "created", env.ids["farm"], "cli:carol"),
        ("watermark_key", "created", env.ids["farm"], "system:respond"),
        ("api_key", "revoked", key.id, "cli:bob"),
        ("api_key", "created", key.id, "cli:alice"),
    ]
    assert first in page["items"][0]["why"] and second in page["items"][0]["why"]
    assert "scopes read" in page["items"][4]["why"]
    assert not env.store.revoke_key(key.id)  # nothing to revoke: nothing recorded
    again = env.client.get("/v1/audit?kind=admin", headers=env.h("admin")).json()
    assert again["total"] == page["total"]


# ------------------------------------------------------------------ dates and JSON
def test_signup_dates_are_bounded_and_iso_only(env: Env) -> None:
    h = env.h("score")
    for bad in (
        "9999-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "1700000000",
        1700000000,
        "2026-13-01",
    ):
        r = env.client.post(
            "/v1/signups/score", json={"account_id": "d1", "created_at": bad}, headers=h
        )
        err = assert_error(r, 422, "validation_error")
        assert err["details"][0]["loc"] == ["body", "created_at"], bad
    ok = _iso(datetime.now(UTC) - timedelta(minutes=1))
    r = env.client.post("/v1/signups/score", json={"account_id": "d1", "created_at": ok}, headers=h)
    assert r.status_code == 200
    assert env.store.count_signups() == 1


def test_duplicate_json_keys_are_refused(env: Env) -> None:
    raw = b'{"account_id": "dup1", "account_id": "dup2"}'
    r = env.client.post(
        "/v1/signups/score",
        content=raw,
        headers={**env.h("score"), "Content-Type": "application/json"},
    )
    err = assert_error(r, 422, "validation_error")
    assert err["details"][0]["type"] == "duplicate_key" and err["details"][0]["loc"] == [
        "body",
        "account_id",
    ]
    raw = b'{"target_type": "account", "target_id": "f0", "verdict": "confirmed_farm", "verdict": "false_positive", "who": "a", "why": "b"}'
    r = env.client.post(
        "/v1/feedback",
        content=raw,
        headers={**env.h("feedback"), "Content-Type": "application/json"},
    )
    assert_error(r, 422, "validation_error")
    assert env.store.count_signups() == 0


def test_replay_skips_and_counts_bad_rows(tmp_path: Path, template: Template) -> None:
    """After a restart, stored signups are replayed at the server time they were received:
    one whose client date is 9999 counts like any other; a row whose payload is not an
    object is skipped and counted instead of stopping the model from loading."""
    e = build_env(tmp_path, template)
    with e.store.engine.begin() as conn:
        conn.execute(
            SignupRow.__table__.insert().values(
                account_id="old-broken",
                payload=["not", "an", "object"],
                score=0.0,
                level="clear",
                evidence=[],
                degraded=False,
                created_at=datetime.now(UTC),
            )
        )
    e.store.record_signup(
        account_id="old-bad",
        payload={
            "account_id": "old-bad",
            "created_at": "9999-12-31T23:59:59+00:00",
            "signup_ip": "10.9.9.9",
        },
        score=0.0,
        level="clear",
        cluster_id=None,
        evidence=[],
        degraded=False,
    )
    e.store.record_signup(
        account_id="old-ok",
        payload={
            "account_id": "old-ok",
            "created_at": _iso(datetime.now(UTC)),
            "signup_ip": "10.9.9.9",
        },
        score=0.0,
        level="clear",
        cluster_id=None,
        evidence=[],
        degraded=False,
    )
    e.client.close()
    e.store.close()
    app = create_app(ServiceSettings(store_url=e.url))  # the restart
    with TestClient(app, raise_server_exceptions=False) as c:
        assert app.state.signups.loaded, app.state.signups.load_error
        d = c.get("/readyz", headers=e.h("metrics")).json()["details"]
        assert d["replay_skipped"] == 1
        r = c.post(
            "/v1/signups/score",
            json={"account_id": "n1", "signup_ip": "10.9.9.9"},
            headers=e.h("score"),
        )
        assert r.status_code == 200 and r.json()["degraded"] is False
        assert max(r.json()["velocity"].values()) == 3  # both rows replayed at server time
    app.state.store.close()


# ------------------------------------------------------------------ key checks
def test_keys_are_hmac_and_wrong_secrets_are_cheap(env: Env) -> None:
    with env.store.engine.connect() as conn:
        assert set(conn.scalars(select(ApiKeyRow.scheme))) == {"hmac-sha256"}
    token = env.keys["read"]
    kid = token.split("_")[1]
    # fresh limiter-free measurement on the store itself
    wrong = [f"lk_{kid}_{'x' * 43}{i}" for i in range(40)]
    unknown = [f"lk_{'f' * 12}_{'x' * 43}{i}" for i in range(40)]

    def med(tokens: list[str]) -> float:
        out = []
        for t in tokens:
            t0 = time.perf_counter()
            assert env.store.verify_key(t) is None
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    med(wrong[:5])
    mw, mu = med(wrong), med(unknown)
    assert mw < 0.005 and mu < 0.005, (mw, mu)  # scrypt took 45-66 ms a guess
    assert abs(mw - mu) < 0.001, (mw, mu)  # an id is not confirmed by timing


def test_failed_checks_are_limited_per_client(tmp_path: Path, template: Template) -> None:
    e = build_env(tmp_path, template, auth_fail_limit=5, auth_fail_window_seconds=60)
    bad = {"Authorization": "Bearer lk_ffffffffffff_nope"}
    codes = [e.client.get("/v1/clusters", headers=bad).status_code for _ in range(5)]
    assert codes == [401] * 5
    r = e.client.get("/v1/clusters", headers=bad)
    err = assert_error(r, 429, "too_many_requests")
    assert int(r.headers["retry-after"]) >= 1 and err["details"]["limited"] == "client"
    # another client is not affected; no-credential requests are not counted
    other = TestClient(e.app, raise_server_exceptions=False, client=("10.0.0.7", 5000))
    assert other.get("/v1/clusters", headers=e.h("read")).status_code == 200
    assert_error(other.get("/v1/clusters"), 401, "unauthorized")


def test_failed_checks_are_limited_per_key_without_locking_out_its_owner(
    tmp_path: Path, template: Template
) -> None:
    e = build_env(tmp_path, template, auth_fail_limit=3, auth_fail_window_seconds=60)
    kid = _key_id(e, "read")
    statuses = []
    for i in range(6):  # an attacker spread over addresses, all guessing one key id
        c = TestClient(e.app, raise_server_exceptions=False, client=(f"10.1.0.{i}", 5000))
        statuses.append(
            c.get(
                "/v1/clusters", headers={"Authorization": f"Bearer lk_{kid}_guess{i}"}
            ).status_code
        )
    assert statuses[:2] == [401, 401] and statuses[-1] == 429
    owner = TestClient(e.app, raise_server_exceptions=False, client=("10.2.0.1", 5000))
    assert owner.get("/v1/clusters", headers=e.h("read")).status_code == 200
    m = e.client.get("/metrics", headers=e.h("metrics")).text
    assert 'linkage_auth_failures_total{outcome="limited_key"}' in m


def test_the_openapi_schema_states_the_timestamp_window_the_server_applies(env: Env) -> None:
    import re

    spec = env.client.get("/openapi.json").json()["components"]["schemas"]
    created = spec["SignupIn"]["properties"]["created_at"]["anyOf"][0]
    ts = spec["FeedbackIn"]["properties"]["ts"]["anyOf"][0]
    assert created["pattern"] == ts["pattern"] and "2000" in created["description"]
    pattern = re.compile(created["pattern"])
    h = env.h("score")
    for value in (
        "2000-01-01T00:00:00+05:00",
        "2004-02-29T12:00:00Z",
        "2099-12-31T23:59:59.123456-05:00",
        "2026-03-01 10:00",
        "2001-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2100-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2026-03-01",
        " 2026-03-01T10:00:00Z",
        "2026-03-01T24:00:00Z",
    ):
        r = env.client.post(
            "/v1/signups/score", json={"account_id": "tw", "created_at": value}, headers=h
        )
        schema_ok = pattern.fullmatch(value) is not None
        assert (r.status_code == 200) == schema_ok, (value, r.status_code, r.text)
