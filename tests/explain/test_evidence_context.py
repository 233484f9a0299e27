"""build_context on integer codes gives what its pandas group-by formulation gave."""

from __future__ import annotations

import pandas as pd
import pytest

from linkage.explain.evidence import MAX_ITEMS, build_context
from linkage.fixtures.io import write_world
from linkage.fixtures.world import make_world
from linkage.pipeline import prepare, score_prepared
from linkage.score.features import kind_group
from linkage.score.model import load_model
from linkage.settings import Settings


def _reference_shared(ag, acc_cluster):  # type: ignore[no-untyped-def]
    """The group-by formulation build_context used before (members >= 2, strongest first)."""
    inc = ag.incidence
    idf = ag.identifiers
    cl = acc_cluster[inc["acc"].to_numpy()]
    sel = pd.notna(cl)
    sh = pd.DataFrame(
        {
            "cluster_id": cl[sel],
            "ident": inc["ident"].to_numpy()[sel],
            "acc": inc["acc"].to_numpy()[sel],
        }
    )
    shared = (
        sh.groupby(["cluster_id", "ident"], sort=True).agg(members=("acc", "size")).reset_index()
    )
    shared = shared[shared["members"] >= 2]
    ids = shared["ident"].to_numpy()
    shared = shared.assign(
        kind=idf["kind"].to_numpy()[ids],
        value=idf["value"].to_numpy()[ids],
        holders=idf["df"].to_numpy()[ids],
        weight=idf["weight"].to_numpy()[ids],
        group=kind_group(idf["kind"].to_numpy()[ids]),
    )
    shared["strength"] = shared["weight"] * shared["members"] / shared["holders"]
    shared = shared.sort_values(["cluster_id", "group", "strength"], ascending=[True, True, False])
    n_shared = shared.groupby(["cluster_id", "group"], sort=False).size()
    out: dict = {}
    for r in shared.groupby(["cluster_id", "group"], sort=False).head(MAX_ITEMS).itertuples():
        entry = out.setdefault(str(r.cluster_id), {}).setdefault(
            str(r.group), (int(n_shared[(r.cluster_id, r.group)]), [])
        )
        entry[1].append(
            (str(r.kind), str(r.value), int(r.members), int(r.holders), float(r.weight))
        )
    return out


def _reference_rows(scores, requests, request_template):  # type: ignore[no-untyped-def]
    acc_cluster = scores.accounts["cluster_id"].to_numpy(dtype=object)
    amap = pd.Series(acc_cluster, index=scores.accounts["account_id"].to_numpy())
    rq = pd.DataFrame(
        {
            "cluster_id": amap.reindex(requests["account_id"].astype(str).to_numpy()).to_numpy(),
            "template_id": request_template.to_numpy(dtype=object),
            "_row": requests["_row"].to_numpy(),
        }
    )
    rq = rq[pd.notna(rq["cluster_id"]) & pd.notna(rq["template_id"])]
    counts = rq.groupby(["cluster_id", "template_id"], sort=True).size().rename("n").reset_index()
    counts = counts.sort_values(["cluster_id", "n", "template_id"], ascending=[True, False, True])
    top = counts[counts.groupby("cluster_id").cumcount() < MAX_ITEMS]
    n_tpl = counts.groupby("cluster_id").size()
    out: dict = {}
    for r in top.itertuples():
        rows = rq[(rq["cluster_id"] == r.cluster_id) & (rq["template_id"] == r.template_id)]
        first = sorted(int(x) for x in rows["_row"])[:MAX_ITEMS]
        out.setdefault(str(r.cluster_id), (int(n_tpl[r.cluster_id]), []))[1].append(
            (str(r.template_id), int(r.n), first)
        )
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):  # type: ignore[no-untyped-def]
    settings = Settings()
    world = tmp_path_factory.mktemp("world")
    write_world(make_world(scale=0.02, seed=4), world)
    prep = prepare(world, settings=settings)
    model = load_model(settings.score)
    scores = score_prepared(prep, settings=settings, model=model)
    return prep, scores, model


def test_context_matches_group_by_formulation(prepared) -> None:  # type: ignore[no-untyped-def]
    prep, scores, model = prepared
    ctx = build_context(
        prep.graph,
        scores,
        model,
        templates=prep.ids.templates,
        requests=prep.dataset.requests,
        request_template=prep.ids.request_template,
        coordination=prep.coordination,
    )
    acc_cluster = scores.accounts["cluster_id"].to_numpy(dtype=object)
    assert ctx.shared  # the world has clusters that share identifiers
    assert ctx.shared == _reference_shared(prep.graph, acc_cluster)
    want_rows = _reference_rows(scores, prep.dataset.requests, prep.ids.request_template)
    assert ctx.template_rows and ctx.template_rows == want_rows
    # every template evidence can name is there, with its skeleton
    named = {t for _, items in ctx.template_rows.values() for t, _, _ in items}
    assert named <= set(ctx.templates.index)
    full = prep.ids.templates.drop_duplicates("template_id").set_index("template_id")
    for t in named:
        assert ctx.templates.at[t, "skeleton"] is full.at[t, "skeleton"] or (
            ctx.templates.at[t, "skeleton"] == full.at[t, "skeleton"]
        )
