"""Accounts and feedback: evidence that concerns an account, verdicts, cleared state."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.conftest import Env, assert_error


def test_account_detail(env: Env) -> None:
    r = env.client.get("/v1/accounts/f0", headers=env.h("read"))
    assert r.status_code == 200
    a = r.json()
    assert a["cluster_id"] == env.ids["farm"] and a["level"] == "block" and a["source"] == "run"
    # f0 is named in the shared_ip evidence details: that is the evidence that concerns it
    assert [e["kind"] for e in a["evidence"]] == ["shared_ip"]
    assert a["cleared"] is False and a["verdict"] is None and a["effective_level"] == "block"
    # f5 is not named in any details: it gets its cluster's evidence, ordered
    f5 = env.client.get("/v1/accounts/f5", headers=env.h("read")).json()
    assert [e["kind"] for e in f5["evidence"]] == ["shared_payment", "shared_ip"]
    lone = env.client.get("/v1/accounts/lone1", headers=env.h("read")).json()
    assert lone["cluster_id"] is None and lone["evidence"] == []


def test_account_404(env: Env) -> None:
    err = assert_error(
        env.client.get("/v1/accounts/nobody", headers=env.h("read")), 404, "not_found"
    )
    assert err["details"] == {"account_id": "nobody"}


def test_appeal_upheld_clears_account_and_reaches_feedback_frame(env: Env) -> None:
    body = {
        "target_type": "account",
        "target_id": "f3",
        "verdict": "appeal_upheld",
        "who": "analyst@example.com",
        "why": "verified university lab, ticket T-12",
    }
    r = env.client.post("/v1/feedback", json=body, headers=env.h("feedback"))
    assert r.status_code == 201, r.text
    fb = r.json()
    assert fb["id"] >= 1 and fb["verdict"] == "appeal_upheld" and fb["ts"]
    a = env.client.get("/v1/accounts/f3", headers=env.h("read")).json()
    assert (
        a["cleared"] is True and a["verdict"] == "appeal_upheld" and a["effective_level"] == "clear"
    )
    assert a["level"] == "block"  # the engine's level is kept; the next detect keeps it clear
    assert a["feedback"][0]["who"] == "analyst@example.com"
    frame = env.store.feedback_frame()
    assert frame.loc[frame.account_id == "f3", "verdict"].tolist() == ["appeal_upheld"]


def test_cluster_feedback_is_expanded(env: Env) -> None:
    body = {
        "target_type": "cluster",
        "target_id": env.ids["mid"],
        "verdict": "confirmed_farm",
        "who": "ana",
        "why": "same card on all three",
        "ts": "2026-01-02T03:04:05Z",
    }
    before = datetime.now(UTC)
    r = env.client.post("/v1/feedback", json=body, headers=env.h("feedback"))
    assert r.status_code == 201
    assert r.json()["client_ts"] == "2026-01-02T03:04:05Z"  # kept as data
    frame = env.store.feedback_frame()
    assert sorted(frame.account_id) == ["m0", "m1", "m2"]
    assert before <= frame.ts.iloc[0] <= datetime.now(UTC)  # server time
    c = env.client.get(f"/v1/clusters/{env.ids['mid']}", headers=env.h("read")).json()
    assert c["feedback"][0]["verdict"] == "confirmed_farm"


def test_feedback_validation(env: Env) -> None:
    h = env.h("feedback")
    err = assert_error(
        env.client.post(
            "/v1/feedback",
            json={"target_type": "user", "target_id": "", "verdict": "meh", "who": "a", "extra": 1},
            headers=h,
        ),
        422,
        "validation_error",
    )
    fields = {d["loc"][-1] for d in err["details"]}
    assert {"target_type", "target_id", "verdict", "why", "extra"} <= fields
    ok = {
        "target_type": "account",
        "target_id": "ghost",
        "verdict": "false_positive",
        "who": "a",
        "why": "b",
    }
    assert_error(env.client.post("/v1/feedback", json=ok, headers=h), 404, "not_found")
    assert_error(
        env.client.post(
            "/v1/feedback", content=b"{not json", headers={**h, "content-type": "application/json"}
        ),
        422,
        "validation_error",
    )


def _verdict(env: Env, target_type: str, target_id: str, verdict: str) -> None:
    body = {
        "target_type": target_type,
        "target_id": target_id,
        "verdict": verdict,
        "who": "ana",
        "why": f"{verdict} on {target_id}",
    }
    r = env.client.post("/v1/feedback", json=body, headers=env.h("feedback"))
    assert r.status_code == 201, r.text


def _views(env: Env, account_id: str) -> tuple[dict, dict]:
    if getattr(env.app.state, "responder", None) is None:  # no 1 s cache in these tests
        from linkage.respond.service import Responder

        env.app.state.responder = Responder(env.store, refresh_seconds=0)
    a = env.client.get(f"/v1/accounts/{account_id}", headers=env.h("read")).json()
    act = env.client.get(f"/v1/accounts/{account_id}/action", headers=env.h("admin")).json()
    return a, act


def test_a_cluster_verdict_reaches_the_account_view_and_the_action_alike(env: Env) -> None:
    _verdict(env, "cluster", env.ids["mid"], "confirmed_farm")
    a, act = _views(env, "m1")
    assert a["level"] == "review"  # the engine's level
    assert a["verdict"] == "confirmed_farm" and a["verdict_source"] == "cluster"
    assert a["effective_level"] == "block" == act["level"] and act["action"] == "suspend"
    c = env.client.get(f"/v1/clusters/{env.ids['mid']}", headers=env.h("read")).json()
    assert c["verdict"] == "confirmed_farm" and c["effective_level"] == "block"


def test_an_upheld_appeal_survives_a_later_cluster_verdict_in_every_view(env: Env) -> None:
    _verdict(env, "account", "m0", "appeal_upheld")
    _verdict(env, "cluster", env.ids["mid"], "confirmed_farm")
    a, act = _views(env, "m0")
    assert a["cleared"] is True and a["verdict"] == "appeal_upheld"
    assert a["effective_level"] == "clear" == act["level"] and act["action"] == "none"
    other, other_act = _views(env, "m2")
    assert other["effective_level"] == "block" == other_act["level"]
    # and the next detect reads the same resolution
    from linkage.score.scoring import latest_verdicts

    got = latest_verdicts(env.store.feedback_frame()).to_dict()
    assert got == {"m0": "appeal_upheld", "m1": "confirmed_farm", "m2": "confirmed_farm"}
    # a new verdict on the account itself is what changes it
    _verdict(env, "account", "m0", "confirmed_farm")
    a, act = _views(env, "m0")
    assert a["effective_level"] == "block" == act["level"] and a["cleared"] is False


def test_an_account_id_with_slashes_can_be_read_back(env: Env) -> None:
    aid = "org/team/42"
    r = env.client.post(
        "/v1/signups/score",
        json={"account_id": aid, "signup_ip": "10.1.2.3"},
        headers=env.h("score"),
    )
    assert r.status_code == 200
    for path in (f"/v1/accounts/{aid}", "/v1/accounts/org%2Fteam%2F42"):
        got = env.client.get(path, headers=env.h("read"))
        assert got.status_code == 200, (path, got.text)
        assert got.json()["account_id"] == aid and got.json()["source"] == "signup"
    act = env.client.get(f"/v1/accounts/{aid}/action", headers=env.h("admin"))
    assert act.status_code == 200 and act.json()["account_id"] == aid
    assert_error(env.client.get("/v1/accounts/org/none", headers=env.h("read")), 404, "not_found")


def test_cluster_list_and_members_show_the_resolved_levels(env: Env) -> None:
    _verdict(env, "account", "m0", "appeal_upheld")
    _verdict(env, "cluster", env.ids["mid"], "confirmed_farm")
    page = env.client.get("/v1/clusters", headers=env.h("read")).json()
    mid = next(i for i in page["items"] if i["cluster_id"] == env.ids["mid"])
    assert (mid["level"], mid["verdict"], mid["effective_level"]) == (
        "review",
        "confirmed_farm",
        "block",
    )
    c = env.client.get(f"/v1/clusters/{env.ids['mid']}", headers=env.h("read")).json()
    levels = {m["account_id"]: m["effective_level"] for m in c["members"]}
    assert levels == {"m0": "clear", "m1": "block", "m2": "block"}
    for aid, lvl in levels.items():
        a, act = _views(env, aid)
        assert a["effective_level"] == lvl == act["level"]


def test_a_newline_in_an_account_id_is_part_of_it(env: Env) -> None:
    assert_error(env.client.get("/v1/accounts/lone1%0A", headers=env.h("read")), 404, "not_found")
    assert_error(env.client.get("/v1/accounts/%0A", headers=env.h("read")), 404, "not_found")
    assert env.client.get("/v1/accounts/lone1", headers=env.h("read")).status_code == 200
