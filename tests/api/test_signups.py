"""Signup scoring with the real scorer on a real run: decision, record, velocity, fail-open/closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from linkage.store.models import SignupRow
from tests.api.conftest import Env, Template, assert_error, build_env

FARM_SIGNUP = {
    "account_id": "new-farm-1",
    "created_at": "2026-03-01T10:00:00Z",
    "email": "someone@example.com",
    "signup_ip": "203.0.113.9",
    "device_fingerprint": "dev-farm",
    "payment_fingerprint": "card-farm",
    "user_agent": "Mozilla/5.0",
}
CLEAN_SIGNUP = {
    "account_id": "new-clean-1",
    "email": "alice@example.org",
    "signup_ip": "198.51.100.7",
    "device_fingerprint": "dev-unique-1",
    "payment_fingerprint": "card-unique-1",
}


def _signups(env: Env) -> list:
    with env.store.engine.connect() as conn:
        return conn.execute(select(SignupRow).order_by(SignupRow.id)).all()


def test_ready_with_model(env: Env) -> None:
    r = env.client.get("/readyz", headers=env.h("metrics"))
    assert r.status_code == 200, r.text
    assert r.json()["details"]["model"] is True and r.json()["details"]["run_id"] == 1


def test_signup_attaching_to_farm(env: Env) -> None:
    r = env.client.post("/v1/signups/score", json=FARM_SIGNUP, headers=env.h("score"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["degraded"] is False
    assert out["cluster_id"] == env.ids["farm"]  # the run's "farm" mapped to its stable id
    assert out["level"] in ("review", "block") and out["score"] > 0.5
    assert out["evidence"] and out["evidence"][0]["kind"] == "attaches_to_cluster"
    rows = _signups(env)
    assert (
        len(rows) == 1
        and rows[0].account_id == "new-farm-1"
        and rows[0].cluster_id == env.ids["farm"]
    )
    assert rows[0].payload["payment_fingerprint"] == "card-farm" and rows[0].degraded is False
    acc = env.client.get("/v1/accounts/new-farm-1", headers=env.h("read")).json()
    assert acc["source"] == "signup" and acc["signup"]["cluster_id"] == env.ids["farm"]


def test_clean_signup_is_clear(env: Env) -> None:
    out = env.client.post("/v1/signups/score", json=CLEAN_SIGNUP, headers=env.h("score")).json()
    assert out["level"] == "clear" and out["cluster_id"] is None and out["degraded"] is False


def test_velocity_counts_recent_signups(env: Env) -> None:
    h = env.h("score")
    last = None
    for i in range(6):
        body = {
            "account_id": f"burst{i}",
            "payment_fingerprint": "card-burst",
            "email": f"u{i}@example.org",
        }
        last = env.client.post("/v1/signups/score", json=body, headers=h).json()
    assert last is not None and last["velocity"].get("payment") == 6
    assert last["level"] != "clear"
    assert any(e["kind"] == "velocity" for e in last["evidence"])


def test_velocity_window_is_warmed_from_the_store(tmp_path: Path, template: Template) -> None:
    e1 = build_env(tmp_path, template)
    for i in range(3):
        e1.client.post(
            "/v1/signups/score",
            json={"account_id": f"w{i}", "payment_fingerprint": "card-w"},
            headers=e1.h("score"),
        )
    e1.store.close()
    # a restarted service (same store file) sees the recent signups
    from fastapi.testclient import TestClient

    from linkage.api.config import ServiceSettings
    from linkage.api.main import create_app

    app = create_app(ServiceSettings(store_url=e1.url))
    c = TestClient(app)
    out = c.post(
        "/v1/signups/score",
        json={"account_id": "w3", "payment_fingerprint": "card-w"},
        headers=e1.h("score"),
    ).json()
    assert out["velocity"]["payment"] == 4


def test_validation_and_size_limit(env: Env) -> None:
    h = env.h("score")
    err = assert_error(
        env.client.post(
            "/v1/signups/score", json={"account_id": "", "email": 5, "bogus": 1}, headers=h
        ),
        422,
        "validation_error",
    )
    assert {d["loc"][-1] for d in err["details"]} >= {"account_id", "email", "bogus"}
    assert_error(
        env.client.post(
            "/v1/signups/score", json={"account_id": "x", "created_at": "yesterday"}, headers=h
        ),
        422,
        "validation_error",
    )
    assert_error(
        env.client.post("/v1/signups/score", json=[1, 2], headers=h), 422, "validation_error"
    )
    big = {"account_id": "x", "user_agent": "A" * 70_000}
    err = assert_error(
        env.client.post("/v1/signups/score", json=big, headers=h), 413, "payload_too_large"
    )
    assert err["details"] == {"max_bytes": 65536}

    def chunks():
        yield b'{"account_id": "x", "user_agent": "'
        for _ in range(100):
            yield b"B" * 1000
        yield b'"}'

    r = env.client.post(
        "/v1/signups/score", content=chunks(), headers={**h, "content-type": "application/json"}
    )
    assert_error(r, 413, "payload_too_large")
    assert _signups(env) == []


def test_lone_surrogate_is_422_not_500(env: Env) -> None:
    body = b'{"account_id": "\\ud800x"}'
    r = env.client.post(
        "/v1/signups/score",
        content=body,
        headers={**env.h("score"), "content-type": "application/json"},
    )
    assert_error(r, 422, "validation_error")


def test_fail_open_without_model(tmp_path: Path, empty_template: Template) -> None:
    e = build_env(tmp_path, empty_template)
    assert_error(e.client.get("/readyz"), 503, "not_ready")
    out = e.client.post("/v1/signups/score", json=FARM_SIGNUP, headers=e.h("score")).json()
    assert out["level"] == "clear" and out["degraded"] is True and out["score"] == 0.0
    rows = _signups(e)
    assert len(rows) == 1 and rows[0].degraded is True


def test_fail_closed_without_model(tmp_path: Path, empty_template: Template) -> None:
    e = build_env(tmp_path, empty_template, fail_open=False)
    err = assert_error(
        e.client.post("/v1/signups/score", json=FARM_SIGNUP, headers=e.h("score")),
        503,
        "unavailable",
    )
    assert err["details"] == {"reason": "model not loaded"}


@pytest.mark.parametrize("fail_open", [True, False])
def test_scorer_exception(
    tmp_path: Path, template: Template, monkeypatch: pytest.MonkeyPatch, fail_open: bool
) -> None:
    e = build_env(tmp_path, template, fail_open=fail_open)

    def broken(record: dict, **_: object) -> None:
        raise RuntimeError("index corrupted")

    monkeypatch.setattr(e.app.state.signups.scorer, "score_one", broken)
    r = e.client.post("/v1/signups/score", json=FARM_SIGNUP, headers=e.h("score"))
    if fail_open:
        assert (
            r.status_code == 200 and r.json()["degraded"] is True and r.json()["level"] == "clear"
        )
    else:
        err = assert_error(r, 503, "unavailable")
        assert "index corrupted" not in r.text and "RuntimeError" in err["details"]["reason"]
    assert (
        'linkage_signup_errors_total{stage="model"} 1'
        in e.client.get("/metrics", headers=e.h("metrics")).text
    )


def _score(env: Env, body: dict) -> dict:
    r = env.client.post("/v1/signups/score", json=body, headers=env.h("score"))
    assert r.status_code == 200, r.text
    return r.json()


def test_velocity_runs_on_the_server_clock_whatever_created_at_says(env: Env) -> None:
    """Six signups on one card: a date hours ahead does not reset the window, dates in
    2001, 2002 … do not escape it; each is recorded as the client's claim."""
    now = datetime.now(UTC)
    claims = [
        now,
        now + timedelta(hours=2),
        now,
        datetime(2001, 1, 1, tzinfo=UTC),
        datetime(2002, 1, 1, tzinfo=UTC),
        now - timedelta(minutes=30),
    ]
    seen = []
    for i, t in enumerate(claims):
        body = {"account_id": f"clock{i}", "payment_fingerprint": "card-clock"}
        body["created_at"] = t.isoformat().replace("+00:00", "Z")
        seen.append(_score(env, body)["velocity"]["payment"])
    assert seen == [1, 2, 3, 4, 5, 6]
    rows = _signups(env)
    assert rows[3].payload["created_at"].startswith("2001-01-01")  # recorded as sent
    assert abs((rows[3].created_at.replace(tzinfo=UTC) - now).total_seconds()) < 60


def test_scoring_an_account_again_is_an_update_with_history(env: Env) -> None:
    first = _score(env, FARM_SIGNUP)
    assert first["level"] == "block" and first["revision"] == 1
    harmless = {"account_id": FARM_SIGNUP["account_id"], "email": "nice.person@example.org"}
    again = _score(env, harmless)
    assert again["revision"] == 2 and again["previous_level"] == "block"
    assert again["level"] == "block"  # not silently overwritten by harmless attributes
    assert again["evidence"][0]["kind"] == "previous_decision"
    assert [r.level for r in _signups(env)] == ["block", "block"]  # both kept
    audit = env.client.get(
        "/v1/audit", params={"target_id": FARM_SIGNUP["account_id"]}, headers=env.h("admin")
    ).json()
    assert audit["total"] == 2
    a = env.client.get(f"/v1/accounts/{FARM_SIGNUP['account_id']}", headers=env.h("read")).json()
    assert a["signup"]["level"] == "block"
    # an analyst's verdict is what lowers it
    r = env.client.post(
        "/v1/feedback",
        json={
            "target_type": "account",
            "target_id": FARM_SIGNUP["account_id"],
            "verdict": "appeal_upheld",
            "who": "ana",
            "why": "verified",
        },
        headers=env.h("feedback"),
    )
    assert r.status_code == 201
    third = _score(env, harmless)
    assert third["revision"] == 3 and third["level"] == "clear"


def test_retries_do_not_count_twice_in_velocity(env: Env) -> None:
    body = {"account_id": "retry1", "payment_fingerprint": "card-retry"}
    assert [_score(env, body)["velocity"]["payment"] for _ in range(3)] == [1, 1, 1]
    other = {"account_id": "retry2", "payment_fingerprint": "card-retry"}
    assert _score(env, other)["velocity"]["payment"] == 2


def _refuse_inserts(env: Env, table: str) -> None:
    """A real SQLite failure on the real write path: the table refuses every INSERT."""
    with env.store.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        )


def _allow_inserts(env: Env, table: str) -> None:
    with env.store.engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER refuse_{table}"))


def test_a_signup_that_could_not_be_recorded_does_not_count_in_velocity(env: Env) -> None:
    _refuse_inserts(env, "signups")
    lost = {"account_id": "lost1", "payment_fingerprint": "card-lost"}
    r = env.client.post("/v1/signups/score", json=lost, headers=env.h("score"))
    assert_error(r, 503, "unavailable")
    assert r.json()["error"]["details"] == {"recorded": False}
    _allow_inserts(env, "signups")
    kept = {"account_id": "kept1", "payment_fingerprint": "card-lost"}
    assert _score(env, kept)["velocity"]["payment"] == 1
    assert _score(env, lost)["velocity"]["payment"] == 2  # now recorded, it counts


def test_provider_identifiers_are_accepted_recorded_and_bounded(env: Env) -> None:
    h = env.h("score")
    body = {**CLEAN_SIGNUP, "identifiers": {"referral": "R-1", "phone": ["h1", "h2"]}}
    out = _score(env, body)
    assert out["level"] == "clear" and out["cluster_id"] is None  # nobody holds them
    assert _signups(env)[-1].payload["identifiers"] == body["identifiers"]
    for bad in (
        {"": "x"},  # an empty kind
        {"phone": ["h"] * 17},  # more than 16 values of one kind
        {f"k{i}": "v" for i in range(33)},  # more than 32 kinds
        {"phone": 5},  # not text
        ["phone", "h1"],  # not a mapping
    ):
        assert_error(
            env.client.post(
                "/v1/signups/score", json={"account_id": "x", "identifiers": bad}, headers=h
            ),
            422,
            "validation_error",
        )
