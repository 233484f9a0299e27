"""The account projection: weights from rarity, budgets per account, supernodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkage.graph import build_graph, reference_size
from linkage.settings import GraphSettings


def _edges(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["account_id", "kind", "value", "n"])


def _strength(ag, name: str) -> float:
    v = ag.graph.vs.find(name=name).index
    return float(sum(ag.graph.es[e]["weight"] for e in ag.graph.incident(v)))


def test_rare_card_links_strongly_and_nat_weakly() -> None:
    rows = [(f"f{i}", "payment", "card", 1) for i in range(4)]
    rows += [(f"u{i}", "ip", "nat", 1) for i in range(400)]
    rows += [("f0", "ip", "nat", 1)]
    ag = build_graph(
        _edges(rows), pd.Index([r[0] for r in rows]).unique(), settings=GraphSettings()
    )
    g = ag.graph
    f0, f1 = g.vs.find(name="f0").index, g.vs.find(name="f1").index
    card_w = g.es[g.get_eid(f0, f1)]["weight"]
    nat_edges = [e for e in g.incident(g.vs.find(name="u1").index)]
    nat_w = max(g.es[e]["weight"] for e in nat_edges)
    assert card_w > 50 * nat_w
    # every NAT holder gets the same total budget (idf) however many strangers share it
    n_ref = reference_size(ag.n_accounts)
    assert _strength(ag, "u7") == pytest.approx(np.log(n_ref / 401), rel=0.05)


def test_supernode_is_sparsified_to_bounded_degree() -> None:
    rows = [(f"u{i:04d}", "ip", "nat", 1) for i in range(2000)]
    s = GraphSettings(dense_clique_max=16)
    ag = build_graph(_edges(rows), pd.Index([r[0] for r in rows]), settings=s)
    deg = np.asarray(ag.graph.degree())
    assert ag.graph.ecount() <= 2000 * 16
    assert deg.max() <= 16 and deg.min() >= 1
    assert ag.graph.is_connected()  # the sparsifier keeps "they share one identifier"


def test_singletons_and_unknowns_make_no_edges() -> None:
    rows = [("a", "email", "a@x", 1), ("b", "email", "b@x", 1)]
    ag = build_graph(_edges(rows), pd.Index(["a", "b", "c"]), settings=GraphSettings())
    assert ag.graph.vcount() == 3 and ag.graph.ecount() == 0


def test_projection_is_invariant_to_row_order_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    rows = [
        (
            f"a{rng.integers(300)}",
            str(rng.choice(["ip", "device", "payment"])),
            f"v{rng.integers(60)}",
            int(rng.integers(1, 5)),
        )
        for _ in range(2000)
    ]
    e = _edges(rows).drop_duplicates(["account_id", "kind", "value"])
    accs = pd.Index(sorted(e["account_id"].unique()))
    a = build_graph(e, accs, settings=GraphSettings(dense_clique_max=8))
    b = build_graph(
        e.sample(frac=1, random_state=1), accs[::-1], settings=GraphSettings(dense_clique_max=8)
    )

    def canon(ag):
        el = np.asarray(ag.graph.get_edgelist())
        names = np.asarray(ag.graph.vs["name"])
        pairs = [tuple(sorted(p)) for p in names[el]]
        return sorted(zip(pairs, np.round(ag.graph.es["weight"], 9), strict=True))

    assert canon(a) == canon(b)


def test_confirmed_feedback_boosts_identifier_weight() -> None:
    rows = [(f"f{i}", "payment", "card", 1) for i in range(3)] + [
        (f"g{i}", "payment", "card2", 1) for i in range(3)
    ]
    e = _edges(rows)
    accs = pd.Index(sorted(e["account_id"]))
    base = build_graph(e, accs, settings=GraphSettings())
    boosted = build_graph(e, accs, settings=GraphSettings(), confirmed=pd.Index(["f0"]))
    w0 = base.identifiers.set_index("value")["weight"]
    w1 = boosted.identifiers.set_index("value")["weight"]
    assert w1["card"] > w0["card"] and w1["card2"] == w0["card2"]
    # the boost is the setting's: (1 + boost) times the rarity, none at 0
    tripled = build_graph(
        e, accs, settings=GraphSettings(confirmed_boost=2.0), confirmed=pd.Index(["f0"])
    )
    w2 = tripled.identifiers.set_index("value")["weight"]
    assert w2["card"] == pytest.approx(3.0 * w0["card"])
    off = build_graph(
        e, accs, settings=GraphSettings(confirmed_boost=0.0), confirmed=pd.Index(["f0"])
    )
    assert off.identifiers.set_index("value")["weight"]["card"] == w0["card"]


def test_arrow_and_object_edges_give_the_same_graph_and_sorted_identifiers() -> None:
    rng = np.random.default_rng(3)
    values = ["Z", "a", "é", "€", "a b", "10.0.0.1", "zz", "ß", "\U0001f600"]
    rows = [
        (
            f"u{int(rng.integers(0, 40))}",
            str(rng.choice(["ip", "device", "x:phone"])),
            str(rng.choice(values)),
            int(rng.integers(1, 5)),
        )
        for _ in range(600)
    ]
    obj = _edges(rows).drop_duplicates(["account_id", "kind", "value"]).reset_index(drop=True)
    obj.loc[3, "value"] = None  # a missing value and an unknown account link nobody
    obj.loc[4, "account_id"] = "stranger"
    arrow = obj.astype({"account_id": "string", "kind": "string", "value": "string"})
    accounts = pd.Index([f"u{i}" for i in range(40)])
    a = build_graph(obj, accounts, settings=GraphSettings(), seed=5)
    b = build_graph(arrow, accounts, settings=GraphSettings(), seed=5)
    for x, y in ((a.src, b.src), (a.dst, b.dst), (a.weight, b.weight)):
        assert np.array_equal(x, y)
    pd.testing.assert_frame_equal(a.incidence, b.incidence)
    pd.testing.assert_frame_equal(a.identifiers, b.identifiers)
    assert len(a.incidence) == len(obj) - 2
    # identifiers numbered by (kind, value) in code point order, as sorted() orders them
    idf = a.identifiers
    keys = list(zip(idf["kind"], idf["value"], strict=True))
    assert keys == sorted(keys)
    # each incidence row names its identifier's value
    assert (a.incidence["value"].to_numpy() == idf["value"].to_numpy()[a.incidence["ident"]]).all()
    assert a.src.size > 0


def _emit_reference(acc, ident, sq, weight, starts, k, pos, df, m):  # type: ignore[no-untyped-def]
    """The array formulation of the projection's edges (before the compiled kernel)."""
    out_s, out_d, out_w = [], [], []
    gsize = df[ident[starts]]
    for size in np.unique(gsize[gsize <= m]):
        sel = starts[gsize == size]
        block = sel[:, None] + np.arange(size)[None, :]
        iu, ju = np.triu_indices(size, k=1)
        pi, pj = block[:, iu].ravel(), block[:, ju].ravel()
        out_s.append(acc[pi])
        out_d.append(acc[pj])
        out_w.append(weight[ident[pi]] * sq[pi] * sq[pj] / (size - 1))
    rows = np.flatnonzero(k > m)
    kb, pb = k[rows], pos[rows]
    half = max(1, m // 2)
    for j in range(half):
        off = np.maximum(1, np.floor((kb / 2.0) ** (j / max(half - 1, 1))).astype(np.int64))
        off = np.minimum(off + j, kb - 1)
        partner = rows - pb + (pb + off) % kb
        out_s.append(acc[rows])
        out_d.append(acc[partner])
        out_w.append(weight[ident[rows]] * sq[rows] * sq[partner] / (2 * half))
    s, d, w = np.concatenate(out_s), np.concatenate(out_d), np.concatenate(out_w)
    lo, hi = np.minimum(s, d), np.maximum(s, d)
    ok = lo != hi
    return lo[ok], hi[ok], w[ok]


@pytest.mark.parametrize("m", [2, 3, 8])
def test_edge_kernel_matches_array_formulation(m: int) -> None:
    from linkage.graph import _kernel

    rng = np.random.default_rng(m)
    sizes = rng.choice([2, 3, 5, 8, 9, 40, 300], size=60)
    ident = np.repeat(np.arange(len(sizes)), sizes)
    acc = rng.integers(0, 500, len(ident))  # repeats inside a group: self-loops dropped
    sq = np.sqrt(rng.random(len(ident)))
    weight = rng.random(len(sizes)) * 5
    df = sizes.astype(np.int64)
    k = df[ident]
    starts = np.r_[0, np.flatnonzero(np.diff(ident)) + 1]
    pos = np.arange(len(ident)) - np.repeat(starts, sizes)
    want = _emit_reference(acc, ident, sq, weight, starts, k, pos, df, m)
    rows = np.flatnonzero(k > m)
    half = max(1, m // 2)
    kb = k[rows]
    offs = np.stack(
        [
            np.minimum(
                np.maximum(1, np.floor((kb / 2.0) ** (j / max(half - 1, 1))).astype(np.int64)) + j,
                kb - 1,
            )
            for j in range(half)
        ]
    )
    got = _kernel.emit_edges(
        acc,
        ident,
        sq,
        weight,
        starts,
        df[ident[starts]],
        m,
        rows,
        rows - pos[rows],
        pos[rows],
        kb,
        offs,
        half,
    )
    for x, y in zip(got, want, strict=True):
        assert np.array_equal(x, y)  # same edges, same order, bit-identical weights
    assert len(got[0]) > 0
