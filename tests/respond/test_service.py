"""Responder over a real SQLite store: actions, keys, rotation, attribution, lookup latency."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from linkage.fixtures.responses import responses
from linkage.respond.service import Responder
from linkage.settings import RespondSettings, Settings
from linkage.store.db import Store
from linkage.store.watermark_keys import WatermarkKeys
from tests.store.run_factory import make_run, members

CLUSTERS = {"farm": members("f", 8), "office": members("o", 5), "pair": members("p", 2)}
LEVELS = {"farm": "block", "office": "clear", "pair": "review"}
SCORES = {"farm": 0.97, "office": 0.1, "pair": 0.6}
DEGRADE = Settings(respond=RespondSettings(block_action="degrade"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = make_run(tmp_path / "run", CLUSTERS, levels=LEVELS, scores=SCORES, loners=["lone"])
    s.import_run(run)
    yield s
    s.close()


def test_actions_per_level_and_unknown_account(store: Store):
    r = Responder(store, refresh_seconds=0)  # defaults: block -> suspend
    assert r.action("f0").action == "suspend"
    assert r.action("o0").action == "none"
    p = r.action("p0")
    assert p.action == "step_up" and p.rate_limit_per_minute == 20
    assert r.action("nobody") is None
    assert WatermarkKeys(store.engine).list() == []  # suspension needs no key


def test_degrade_gives_the_cluster_one_key_and_feedback_clears(store: Store):
    r = Responder(store, DEGRADE, refresh_seconds=0)
    a, b = r.action("f0"), r.action("f5")
    assert a.action == "degrade" and a.watermark_key_id and a.watermark_key_id == b.watermark_key_id
    assert 0.3 <= a.perturbation_strength <= 1.0
    keys = WatermarkKeys(store.engine).list()
    assert len(keys) == 1 and keys[0].cluster_id.startswith("cl-")
    assert "secret" not in keys[0].to_dict()
    # an upheld appeal on one account clears it, not the others
    store.add_feedback(
        target_type="account", target_id="f0", verdict="appeal_upheld", who="a", why="ok"
    )
    assert r.action("f0").action == "none"
    assert r.action("f1").action == "degrade"
    # a false positive on the cluster clears every member
    store.add_feedback(
        target_type="cluster",
        target_id=keys[0].cluster_id,
        verdict="false_positive",
        who="a",
        why="x",
    )
    assert r.action("f1").action == "none"
    # a confirmed farm on a review account degrades it
    store.add_feedback(
        target_type="account", target_id="p0", verdict="confirmed_farm", who="a", why="y"
    )
    assert r.action("p0").action == "degrade"


def test_perturbed_outputs_are_attributed_to_the_cluster_even_after_rotation(store: Store):
    r = Responder(store, DEGRADE, refresh_seconds=0)
    texts = responses(200, seed=21)
    outs = [r.perturb_output("f0", t)[0] for t in texts]
    assert sum(o != t for o, t in zip(outs, texts, strict=True)) > 150
    assert r.perturb_output("o0", texts[0])[0] == texts[0]  # clear: never perturbed
    assert r.perturb_output("p0", texts[0])[0] == texts[0]  # review, review_strength 0
    r.action("f0")
    old = r.action("f0").watermark_key_id
    cluster = WatermarkKeys(store.engine).list()[0].cluster_id
    new = r.keys.rotate(cluster)
    assert new != old and r.action("f0").watermark_key_id == new
    res = r.detect(outs)
    assert res[0].key_id == old and res[0].attributed and res[0].retired
    assert res[0].cluster_id == cluster
    assert not any(x.attributed for x in res[1:])
    assert not any(x.attributed for x in r.detect(texts))


def test_action_lookup_p99_under_2ms(store: Store):
    r = Responder(store, DEGRADE)  # default refresh: one change check per second
    ids = [*CLUSTERS["farm"], *CLUSTERS["office"], *CLUSTERS["pair"], "lone"]
    for a in ids:
        r.action(a)  # warm (creates the key)
    t = []
    for i in range(3000):
        t0 = time.perf_counter()
        r.action(ids[i % len(ids)])
        t.append(time.perf_counter() - t0)
    p99 = float(np.percentile(t, 99))
    print(f"action lookup p50 {np.median(t) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    assert p99 < 0.002
