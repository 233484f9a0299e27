"""Clusters: filters, sort, paging, detail (members, evidence, lineage), 404, 422."""

from __future__ import annotations

from tests.api.conftest import CLUSTERS, Env, assert_error
from tests.store.run_factory import members


def test_list_default_sorted_by_score(env: Env) -> None:
    r = env.client.get("/v1/clusters", headers=env.h("read"))
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 4 and page["run_id"] == 1 and page["next_offset"] is None
    scores = [c["score"] for c in page["items"]]
    assert scores == sorted(scores, reverse=True)
    assert page["items"][0]["cluster_id"] == env.ids["farm"]
    assert page["items"][0]["top_evidence"]["kind"] == "shared_payment"


def test_filters(env: Env) -> None:
    get = lambda **q: env.client.get("/v1/clusters", params=q, headers=env.h("read")).json()  # noqa: E731
    assert {c["cluster_id"] for c in get(level="review")["items"]} == {
        env.ids["pair"],
        env.ids["mid"],
    }
    both = env.client.get("/v1/clusters?level=block&level=clear", headers=env.h("read")).json()
    assert both["total"] == 2
    assert [c["cluster_id"] for c in get(min_score=0.7)["items"]] == [
        env.ids["farm"],
        env.ids["mid"],
    ]
    assert get(min_size=5)["total"] == 2
    assert get(min_size=5, min_score=0.5)["total"] == 1


def test_sort_and_paging(env: Env) -> None:
    h = env.h("read")
    sizes = [c["size"] for c in env.client.get("/v1/clusters?sort=size", headers=h).json()["items"]]
    assert sizes == sorted(sizes)
    seen = []
    offset = 0
    while offset is not None:
        page = env.client.get(
            "/v1/clusters", params={"limit": 3, "offset": offset, "sort": "-size"}, headers=h
        ).json()
        assert page["total"] == 4
        seen += [c["cluster_id"] for c in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == 4 and len(set(seen)) == 4
    assert seen[0] == env.ids["farm"]


def test_bad_query_is_422_with_field_details(env: Env) -> None:
    r = env.client.get("/v1/clusters?limit=0&level=purple&sort=bogus", headers=env.h("read"))
    err = assert_error(r, 422, "validation_error")
    locs = {tuple(d["loc"]) for d in err["details"]}
    assert ("query", "limit") in locs and ("query", "sort") in locs
    assert any(loc[:2] == ("query", "level") for loc in locs)


def test_detail(env: Env) -> None:
    cid = env.ids["farm"]
    r = env.client.get(f"/v1/clusters/{cid}", headers=env.h("read"))
    assert r.status_code == 200
    c = r.json()
    assert (
        c["size"] == 8
        and c["level"] == "block"
        and c["current"] is True
        and c["source_id"] == "farm"
    )
    assert [m["account_id"] for m in c["members"]][:2] == ["f0", "f1"]
    contrib = [e["contribution"] for e in c["evidence"]]
    assert contrib == sorted(contrib, reverse=True)
    assert c["evidence"][0]["details"] == {"payment": "card-farm"}
    assert c["lineage"]["parents"] == [
        {
            "run_id": 1,
            "cluster_id": cid,
            "parent_cluster_id": None,
            "relation": "new",
            "overlap": 0.0,
        }
    ]
    small = env.client.get(
        f"/v1/clusters/{cid}?members_limit=3&members_offset=1", headers=env.h("read")
    ).json()
    assert [m["account_id"] for m in small["members"]] == ["f1", "f2", "f3"]


def test_detail_404(env: Env) -> None:
    err = assert_error(
        env.client.get("/v1/clusters/cl-999999", headers=env.h("read")), 404, "not_found"
    )
    assert err["details"] == {"cluster_id": "cl-999999"}


def test_lineage_across_imports(env: Env, tmp_path) -> None:
    from tests.store.run_factory import make_run

    clusters = dict(CLUSTERS)
    del clusters["farm"]  # the blocked farm is taken down...
    clusters["office"] = [*CLUSTERS["office"], "o9"]  # ...the office continues
    clusters["regrown"] = ["f0", "f1", *members("g", 4)]  # ...and two of its accounts regrow
    env.store.import_run(make_run(tmp_path / "run2", clusters))
    h = env.h("read")
    page = env.client.get("/v1/clusters", params={"limit": 50}, headers=h).json()
    ids = {c["cluster_id"] for c in page["items"]}
    assert env.ids["office"] in ids and env.ids["farm"] not in ids and page["run_id"] == 2
    regrown = [c for c in ids if c not in env.ids.values()]
    assert len(regrown) == 1
    detail = env.client.get(f"/v1/clusters/{regrown[0]}", headers=h).json()
    assert {(p["relation"], p["parent_cluster_id"]) for p in detail["lineage"]["parents"]} == {
        ("regrew", env.ids["farm"])
    }
    farm = env.client.get(f"/v1/clusters/{env.ids['farm']}", headers=h).json()
    assert farm["current"] is False
    assert [(ch["relation"], ch["cluster_id"]) for ch in farm["lineage"]["children"]] == [
        ("regrew", regrown[0])
    ]
