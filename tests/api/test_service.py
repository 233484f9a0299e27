"""Health, readiness, metrics text, and the error envelope for unknown routes and crashes."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.api.conftest import Env, assert_error

_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$'
)


def parse_prometheus(text: str) -> dict[str, list[tuple[str, float]]]:
    """Tiny strict parser of the text exposition format: name -> [(labels, value)]."""
    out: dict[str, list[tuple[str, float]]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"sample without TYPE: {line!r}"
        out.setdefault(name, []).append(
            (m.group(2) or "", float(m.group(4).replace("+Inf", "inf")))
        )
    return out


def test_healthz_readyz(env: Env) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    assert env.client.get("/readyz").json() == {"status": "ready", "details": None}
    r = env.client.get("/readyz", headers=env.h("metrics")).json()
    d = r["details"]
    assert r["status"] == "ready" and d["store"]["ok"] is True and d["model"] is True
    assert d["store"]["write"] is True and d["store"]["schema"] is True
    assert d["run_path"] == str(env.run_dir.resolve())


def test_readyz_503_when_store_gone(env: Env) -> None:
    db = Path(env.url.split("///", 1)[1])
    db.unlink()
    assert_error(env.client.get("/readyz"), 503, "not_ready")
    # the key itself cannot be checked against a missing store: 503 as well
    assert env.client.get("/readyz", headers=env.h("admin")).status_code == 503
    check = env.store.check_ready()
    assert check["ok"] is False and check["write"] is False
    assert not db.exists()  # not silently recreated as an empty store


def test_metrics_parse(env: Env) -> None:
    h = env.h("read")
    env.client.get("/v1/clusters", headers=h)
    env.client.get("/v1/clusters/cl-nope", headers=h)
    env.client.post("/v1/signups/score", json={"account_id": "m1"}, headers=env.h("score"))
    r = env.client.get("/metrics", headers=env.h("metrics"))
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    m = parse_prometheus(r.text)
    reqs = dict(m["linkage_http_requests_total"])
    assert reqs['{method="GET",route="/v1/clusters",status="200"}'] == 1
    assert reqs['{method="GET",route="/v1/clusters/{cluster_id}",status="404"}'] == 1
    assert any('route="/v1/signups/score"' in k for k in reqs)
    assert dict(m["linkage_model_loaded"])[""] == 1
    counts = dict(m["linkage_http_request_duration_seconds_count"])
    assert counts['{method="GET",route="/v1/clusters"}'] == 1
    buckets = [
        v
        for k, v in m["linkage_http_request_duration_seconds_bucket"]
        if 'route="/v1/clusters"' in k
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 1  # cumulative, +Inf = count
    assert sum(v for _, v in m["linkage_signups_scored_total"]) == 1


def test_unknown_route_and_method(env: Env) -> None:
    assert_error(env.client.get("/v1/nothing"), 404, "not_found")
    assert_error(
        env.client.delete("/v1/clusters", headers=env.h("admin")), 405, "method_not_allowed"
    )


def test_unexpected_exception_is_a_clean_500(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(account_id: str) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(env.store, "get_account", boom)
    with caplog.at_level(logging.ERROR, logger="linkage.api"):
        r = env.client.get("/v1/accounts/f0", headers=env.h("read"))
    err = assert_error(r, 500, "internal_error")
    assert "secret internal detail" not in r.text and err["details"] is None
    assert any(
        "secret internal detail" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records
    )


def test_openapi_documents_errors_and_security(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/clusters",
        "/v1/clusters/{cluster_id}",
        "/v1/accounts/{account_id}",
        "/v1/signups/score",
        "/v1/feedback",
        "/v1/review-queue",
        "/v1/share/export",
        "/v1/audit",
        "/v1/accounts/{account_id}/action",
        "/v1/watermark/detect",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    op = spec["paths"]["/v1/signups/score"]["post"]
    assert {"401", "403", "413", "422", "500", "503"} <= set(op["responses"])
    assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    assert op["security"] == [{"HTTPBearer": []}]


def test_server_timing_header_is_the_apps_own_time(env: Env) -> None:
    """Every response says how long the service itself took (W3C Server-Timing), and the
    load test reads it back: the latency target can be checked apart from the client."""
    from bench.load_signups import server_timing_ms

    r = env.client.get("/healthz")
    dur = server_timing_ms(r.headers.get("server-timing"))
    assert dur is not None and 0.0 <= dur < 5_000.0
    missing = env.client.get("/no/such/route")
    assert server_timing_ms(missing.headers.get("server-timing")) is not None
    assert server_timing_ms("db;dur=3, app;dur=1.5") == 1.5
    assert server_timing_ms("app;desc=x") is None
    assert server_timing_ms(None) is None
