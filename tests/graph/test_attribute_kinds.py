"""Provider identifiers (``x:<kind>``) are attributes: a long friend list does not dilute them."""

from __future__ import annotations

import pandas as pd
import pytest

from linkage.evaluate import evaluate
from linkage.fixtures.friends import friend_world
from linkage.graph import build_graph
from linkage.ingest import load_dataset
from linkage.pipeline import run_detect
from linkage.settings import GraphSettings, Settings


def test_each_extra_identifier_value_weighs_as_a_whole_attribute():
    rows = [("a", "x:friend", f"f{i}", 1) for i in range(50)] + [("a", "ip", "1.1.1.1", 3)]
    rows += [("a", "ip", "2.2.2.2", 1), ("b", "x:friend", "f0", 1)]
    e = pd.DataFrame(rows, columns=["account_id", "kind", "value", "n"])
    ag = build_graph(e, pd.Index(["a", "b"]), settings=GraphSettings())
    inc = ag.incidence
    friends = inc[inc["kind"] == "x:friend"]
    assert (friends["a"] == 1.0).all()  # not 1/50
    ips = inc[inc["kind"] == "ip"].sort_values("n")
    assert ips["a"].tolist() == [0.25, 0.75]  # traffic kinds keep their usage share


@pytest.mark.slow
def test_friend_list_world_batches_are_clusters_and_no_community_is_blocked(tmp_path):
    world = friend_world(tmp_path / "w", seed=3)
    run_detect(world, tmp_path / "run", settings=Settings())
    acc = pd.read_csv(tmp_path / "run" / "accounts.csv", dtype={"cluster_id": "string"})
    rep = evaluate(acc, load_dataset(world).labels)
    assert rep.pair_recall >= 0.8  # each seller's batch comes out (mostly) as one cluster
    for p in rep.populations:
        if p.n_farm == 0:
            assert p.block_rate <= 0.05, p
