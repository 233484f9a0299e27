"""`/readyz` for anonymous callers: a read per call, no committed write, no INFO lines,
and a per-address limit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from linkage.store.models import StoreProbe
from tests.api.conftest import Env, Template, assert_error, build_env


def _probe_ts(env: Env) -> object:
    with env.store.engine.connect() as conn:
        return conn.execute(select(StoreProbe.ts)).scalar()


def test_anonymous_readyz_makes_no_write_per_call_and_logs_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    assert env.client.get("/readyz").status_code == 200
    first = _probe_ts(env)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(10):
            assert env.client.get("/readyz").json() == {"status": "ready", "details": None}
    assert _probe_ts(env) == first  # the last write probe (< 5 s old) was reused
    noisy = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert noisy == [], [f"{r.name}: {r.getMessage()}" for r in noisy]
    # a metrics key gets a fresh probe (a committed write) and the details
    r = env.client.get("/readyz", headers=env.h("metrics")).json()
    assert r["details"]["store"]["write"] is True and "write_age" not in r["details"]["store"]
    assert _probe_ts(env) != first


def test_anonymous_readyz_is_rate_limited_per_address(tmp_path: Path, template: Template) -> None:
    e = build_env(tmp_path, template, ready_anonymous_limit=3, ready_anonymous_window_seconds=60)
    codes = [e.client.get("/readyz").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = e.client.get("/readyz")
    err = assert_error(r, 429, "too_many_requests")
    assert int(r.headers["Retry-After"]) >= 1 and err["details"]["retry_after_seconds"] >= 1
    # a monitoring key is not limited
    assert e.client.get("/readyz", headers=e.h("metrics")).status_code == 200
    e.client.close()
    e.store.close()
