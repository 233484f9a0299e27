"""The feedback loop end to end: analysts post verdicts through the HTTP API, the next
`detect` reads them from the store, and the outcome changes (the issue's before/after)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from linkage.api.config import ServiceSettings
from linkage.api.main import create_app
from linkage.pipeline import run_detect
from linkage.settings import Settings
from linkage.store import load_run
from linkage.store.db import Store


def test_feedback_posted_over_http_changes_the_next_detect(
    small_world: Path, small_run: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_run(small_run)
    _, key = store.create_key("analyst", ["read", "feedback"])
    before = load_run(small_run)
    acc = before.accounts
    appealed = acc[acc["level"] == "block"]["account_id"].iloc[0]
    confirmed = acc[(acc["level"] == "clear") & acc["cluster_id"].isna()]["account_id"].iloc[0]

    app = create_app(ServiceSettings(store_url=url, run_dir=small_run))
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {key}"}
        for target, verdict in ((appealed, "appeal_upheld"), (confirmed, "confirmed_farm")):
            r = client.post(
                "/v1/feedback",
                headers=h,
                json={
                    "target_type": "account",
                    "target_id": target,
                    "verdict": verdict,
                    "who": "a@x",
                    "why": "ticket 1",
                },
            )
            assert r.status_code in (200, 201), r.text

    fb = Store(url).feedback_frame()
    assert set(fb["account_id"]) == {appealed, confirmed}
    run_detect(small_world, tmp_path / "run2", settings=Settings(), feedback=fb)
    after = load_run(tmp_path / "run2").accounts.set_index("account_id")
    b = acc.set_index("account_id")
    print(
        f"before: {appealed} {b.loc[appealed, 'level']} {b.loc[appealed, 'score']:.3f}, "
        f"{confirmed} {b.loc[confirmed, 'level']} {b.loc[confirmed, 'score']:.3f}; "
        f"after: {after.loc[appealed, 'level']} {after.loc[appealed, 'score']:.3f}, "
        f"{after.loc[confirmed, 'level']} {after.loc[confirmed, 'score']:.3f}"
    )
    assert b.loc[appealed, "level"] == "block" and after.loc[appealed, "level"] == "clear"
    assert b.loc[confirmed, "level"] == "clear" and after.loc[confirmed, "level"] == "block"
