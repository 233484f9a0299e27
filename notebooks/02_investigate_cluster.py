# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Investigate one cluster
#
# An analyst opens a flagged cluster and asks: *why* is it flagged, *what* do its
# accounts share, *when* were they active, *what* did they send, and what would the
# score be without each piece of evidence?
#
# 1. evidence waterfall (log-odds contributions → score)
# 2. drawing of the cluster: accounts and the identifiers they share
# 3. activity timeline: synchronized bursts and the model pivot
# 4. the templates: example prompts beside their skeletons
# 5. the counterfactuals

# %%
import math
import time

import igraph as ig
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib.lines import Line2D
from nbhelpers import (
    SCALE,
    SEED,
    ensure_run,
    ensure_world,
    kind_color,
    savefig,
    setup_matplotlib,
    work_dir,
)

from linkage import Settings
from linkage.pipeline import prepare
from linkage.score.model import load_model
from linkage.store import load_run

setup_matplotlib()
pd.set_option("display.max_colwidth", 160)
pd.set_option("display.width", 220)
T0 = time.perf_counter()
WORK = work_dir()
world = ensure_world(WORK, scale=SCALE, seed=SEED)
run = load_run(ensure_run(world, WORK))
settings = Settings()

# %% [markdown]
# `prepare` re-runs the stages before scoring (ingest → identifiers → graph → detect)
# and hands back the frames: the dataset with raw requests, the identifiers and the
# weighted account graph.  (The run directory keeps only what the API serves.)

# %%
t = time.perf_counter()
prep = prepare(world, settings=settings)
print(f"prepared in {time.perf_counter() - t:.1f} s: {prep.graph.graph.summary().splitlines()[0]}")

# %% [markdown]
# ## Pick a cluster
# Among the blocked clusters, take the one where most members switched to the newest
# model within 24 h of its release (the `timing` evidence), ties broken by score —
# the coordinated pivot is the hardest thing to explain away.  Set `CLUSTER_ID` to
# look at another one.

# %%
CLUSTER_ID = None


def feature(cluster: dict, kind: str, name: str) -> float:
    for e in cluster["evidence"]:
        if e["kind"] == kind:
            return float(e["details"].get("features", {}).get(name, {}).get("value", 0.0))
    return 0.0


blocked = [c for c in run.clusters if c["level"] == "block"] or run.clusters
if CLUSTER_ID is None:
    chosen = max(
        blocked, key=lambda c: (round(feature(c, "timing", "c_pivot_fast"), 2), c["score"])
    )
    CLUSTER_ID = chosen["cluster_id"]
cluster = run.cluster(CLUSTER_ID)
members = cluster["members"]
print(
    f"cluster {CLUSTER_ID}: {cluster['size']} accounts, score {cluster['score']:.3f} ({cluster['level']})"
)
display(
    pd.DataFrame(
        [(e["kind"], round(e["contribution"], 2), e["summary"]) for e in cluster["evidence"]],
        columns=["evidence", "log-odds", "summary"],
    )
)

# %% [markdown]
# ## 1. Evidence waterfall
# The score is additive in log-odds (the out-of-the-box coordination terms by default, a
# logistic residual on top when trained), so each member's log-odds is the model's
# intercept plus a sum of feature terms.  Evidence items group those terms by kind and
# average them over the members; stacked from the intercept they reach the members'
# mean log-odds.  (The cluster score is the *median* member score.)

# %%
model = load_model(settings.score)
ev = cluster["evidence"]
labels_ = ["intercept"] + [e["kind"] for e in ev]
steps = [model.intercept] + [e["contribution"] for e in ev]
ends = np.cumsum(steps)
starts = np.concatenate([[0.0], ends[:-1]])
final = ends[-1]

fig, ax = plt.subplots(figsize=(10, 4.8))
for i, (s, d) in enumerate(zip(starts, steps, strict=True)):
    color = "#7f7f7f" if i == 0 else ("#d1495b" if d > 0 else "#2e86ab")
    ax.bar(i, d, bottom=s, color=color, edgecolor="black", linewidth=0.5)
    ax.text(i, max(s, s + d) + 0.3, f"{d:+.1f}", ha="center", va="bottom", fontsize=8)
    if i < len(steps) - 1:
        ax.plot([i + 0.4, i + 0.6], [s + d, s + d], color="black", linewidth=0.6)
ax.bar(len(steps), final, color="#444444", edgecolor="black", linewidth=0.5)
ax.text(
    len(steps),
    max(final, 0) + 0.3,
    f"{final:.1f}\n(p={1 / (1 + math.exp(-final)):.3f})",
    ha="center",
    va="bottom",
    fontsize=8,
)
ax.axhline(0, color="black", linewidth=0.8)
ax.set_xticks(range(len(steps) + 1), [*labels_, "mean\nlog-odds"], rotation=30, ha="right")
ax.set_ylabel("log-odds of 'coordinated farm'")
ax.set_title(
    f"Evidence waterfall of cluster {CLUSTER_ID} ({cluster['size']} accounts, score {cluster['score']:.3f})"
)
ax.legend(
    handles=[
        Line2D([], [], color="#d1495b", lw=8, label="raises the score"),
        Line2D([], [], color="#2e86ab", lw=8, label="lowers the score"),
        Line2D([], [], color="#7f7f7f", lw=8, label="model intercept"),
    ],
    loc="upper left",
)
ax.set_ylim(min(0, starts.min(), ends.min()) - 1, max(ends.max(), final) + 2.5)
savefig(fig, "02_evidence_waterfall")
plt.show()

# %% [markdown]
# ## 2. What do the accounts share?
# `linkage.explain.graph.cluster_graph` gives the cluster as a **networkx** graph: each
# member account (coloured by its level) and every identifier held by at least two
# members (from the run's signup index), coloured by kind, plus the cluster's top prompt
# templates tied to the accounts that sent their raw request rows.  Edge width is the
# identifier's rarity weight (`ln N/df`, nats).  The same graph is what the review
# console draws and what `linkage export-graph RUN CLUSTER --format graphml|gexf` writes
# for Gephi or Cytoscape.  Right: the account projection Leiden ran on, edge width by
# link weight.

# %%
import networkx as nx  # noqa: E402

from linkage.explain.graph import cluster_graph, write_graph  # noqa: E402

g = cluster_graph(run, CLUSTER_ID)
node_types = pd.Series([d["type"] for _, d in g.nodes(data=True)]).value_counts()
print(f"{g}: " + ", ".join(f"{n} {t}s" for t, n in node_types.items()))
graphml = write_graph(g, work_dir() / f"cluster_{CLUSTER_ID}.graphml")
print(f"GraphML for Gephi / Cytoscape: {graphml} ({graphml.stat().st_size / 1024:.0f} kB)")
idents = [n for n, d in g.nodes(data=True) if d["type"] != "account"]
# keep the drawing legible: the 35 identifiers that carry the most weight inside the
# cluster, and every template the evidence names
templates = [n for n in idents if g.nodes[n]["type"] == "template"]
others = [n for n in idents if g.nodes[n]["type"] != "template"]
top_ids = sorted(others, key=lambda n: g.degree(n) * g.nodes[n]["weight"], reverse=True)[:35]
top_ids += [n for n in templates if g.degree(n)]
acc_nodes = [n for n, d in g.nodes(data=True) if d["type"] == "account"]
bip = g.subgraph(acc_nodes + top_ids)
print(f"{len(idents)} identifiers and templates shared by >= 2 members; drawing {len(top_ids)}")
print(
    pd.Series([g.nodes[n]["kind"] for n in top_ids])
    .value_counts()
    .rename("identifiers drawn")
    .to_string()
)
LEVEL_COLORS = {"block": "#c0392b", "review": "#e6a100", "clear": "#2e86ab"}


def draw_nx(ax, h: nx.Graph, title: str, seed: int = SEED) -> None:
    pos = nx.spring_layout(h, seed=seed, weight=None)
    widths = scaled([w for _, _, w in h.edges(data="weight")])
    nx.draw_networkx_edges(h, pos, ax=ax, width=widths, alpha=0.4, edge_color="#555555")
    for level, color in LEVEL_COLORS.items():
        nodes = [n for n, d in h.nodes(data=True) if d["type"] == "account" and d["level"] == level]
        nx.draw_networkx_nodes(
            h, pos, nodelist=nodes, ax=ax, node_size=45, node_color=color,
            edgecolors="black", linewidths=0.4, label=f"account: {level}",
        )  # fmt: skip
    for kind in sorted({h.nodes[n]["kind"] for n in h if h.nodes[n]["type"] != "account"}):
        nodes = [n for n in h if h.nodes[n]["type"] != "account" and h.nodes[n]["kind"] == kind]
        nx.draw_networkx_nodes(
            h, pos, nodelist=nodes, ax=ax, node_size=110, node_shape="s",
            node_color=kind_color(kind), edgecolors="black", linewidths=0.5, label=kind,
        )  # fmt: skip
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def draw(ax, g, kinds, widths, title):
    layout = g.layout_fruchterman_reingold(
        weights=g.es["weight"] if g.ecount() else None, niter=1000, seed=None
    )
    rng = np.random.default_rng(SEED)
    xy = np.array(layout.coords) + rng.normal(0, 1e-3, (g.vcount(), 2))
    for e, w in zip(g.es, widths, strict=True):
        (x0, y0), (x1, y1) = xy[e.source], xy[e.target]
        ax.plot([x0, x1], [y0, y1], color="#555555", alpha=0.45, linewidth=w, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], s=70, color=kind_color("account"), edgecolor="black",
               linewidth=0.5, zorder=2)  # fmt: skip
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def scaled(w, lo=0.3, hi=4.0):
    w = np.asarray(w, dtype=float)
    if len(w) == 0 or w.max() == w.min():
        return np.full(len(w), (lo + hi) / 2)
    return lo + (hi - lo) * (w - w.min()) / (w.max() - w.min())


ag = prep.graph
mem_codes = ag.accounts.get_indexer(pd.Index(members))
proj = ag.graph.induced_subgraph(mem_codes.tolist())
import random  # noqa: E402

random.seed(SEED)  # igraph's layout uses its own RNG; seed it through Python's
ig.set_random_number_generator(random)
fig, axes = plt.subplots(1, 2, figsize=(15, 7))
draw_nx(
    axes[0],
    bip,
    "Accounts and the identifiers they share\n(linkage.explain.graph; edge width = rarity weight)",
)
axes[0].legend(loc="upper left", bbox_to_anchor=(0, -0.01), ncol=5, title="node", frameon=False)
draw(
    axes[1],
    proj,
    ["account"] * proj.vcount(),
    scaled(proj.es["weight"] if proj.ecount() else []),
    f"Account projection ({proj.ecount()} links; edge width = link weight)",
)
fig.suptitle(f"Cluster {CLUSTER_ID}", fontsize=13)
savefig(fig, "02_cluster_drawing")
plt.show()

# %% [markdown]
# The strongest shared identifiers, as the engine reports them (members of the
# cluster holding it vs all holders in the whole history):

# %%
ident_rows = [
    {"evidence": e["kind"], **i}
    for e in cluster["evidence"]
    for i in e["details"].get("identifiers", [])
]
display(
    pd.DataFrame(ident_rows).sort_values("weight_nats", ascending=False).head(15)
    if ident_rows
    else "no shared identifiers"
)

# %% [markdown]
# ## 3. Activity timeline
# Requests of the members per hour, stacked by the model that served them, against the
# release of the newest model; below, when the members signed up.  Farms start, stop and
# pivot together.

# %%
req = prep.dataset.requests
mreq = req[req["account_id"].astype(str).isin(set(members))]
first_seen = req.groupby("model")["ts"].min().sort_values()
new_model, release = first_seen.index[-1], first_seen.iloc[-1]
print(f"newest model {new_model!r}, first served {release}")


def binned(frame: pd.DataFrame, freq: str, start, end) -> pd.DataFrame:
    out = frame.groupby([frame["ts"].dt.floor(freq), "model"]).size().unstack(fill_value=0)
    return out.reindex(pd.date_range(start, end, freq=freq), fill_value=0)


t_start, t_end = req["ts"].min().floor("D"), req["ts"].max().ceil("D")
six_h = binned(mreq, "6h", t_start, t_end)
zoom_lo, zoom_hi = (
    release.floor("h") - pd.Timedelta(days=3),
    release.floor("h") + pd.Timedelta(days=3),
)
hourly = binned(mreq[(mreq["ts"] >= zoom_lo) & (mreq["ts"] < zoom_hi)], "h", zoom_lo, zoom_hi)
all_6h = req.groupby(req["ts"].dt.floor("6h")).size()
created = pd.to_datetime(
    prep.dataset.accounts.set_index("account_id").loc[members, "created_at"], utc=True
)
models = sorted(first_seen.index, key=lambda m: first_seen[m])
colors = dict(zip(models, ["#4c72b0", "#55a868", "#d1495b", "#8172b3", "#937860"], strict=False))

fig, (ax1, ax2, ax3) = plt.subplots(
    3, 1, figsize=(13, 9), gridspec_kw={"height_ratios": [3, 2.2, 1.1]}
)
cols = [m for m in models if m in six_h.columns]
ax1.stackplot(
    six_h.index,
    [six_h[m] for m in cols],
    labels=cols,
    colors=[colors[m] for m in cols],
    step="post",
)
ax1.axvline(release, color="black", linestyle="--", linewidth=1.2, label=f"{new_model} released")
ax1.axvspan(zoom_lo, zoom_hi, color="grey", alpha=0.12, label="zoomed below")
ax1.set_ylabel("requests per 6 h (cluster)")
ax1.set_title(
    f"Activity of cluster {CLUSTER_ID}: {len(mreq):,} requests by {len(members)} accounts"
)
axr = ax1.twinx()
axr.plot(
    all_6h.index,
    all_6h.to_numpy(),
    color="grey",
    linewidth=0.8,
    alpha=0.7,
    label="all accounts (right axis)",
)
axr.set_ylabel("requests per 6 h (all accounts)", color="grey")
axr.set_ylim(0, all_6h.max() * 1.1)
axr.grid(False)
h1, l1 = ax1.get_legend_handles_labels()
h2, l2 = axr.get_legend_handles_labels()
ax1.legend(h1 + h2, l1 + l2, loc="upper left", title="served by", ncol=2)
ax1.set_xlim(t_start, t_end)

cols = [m for m in models if m in hourly.columns]
ax2.stackplot(
    hourly.index,
    [hourly[m] for m in cols],
    labels=cols,
    colors=[colors[m] for m in cols],
    step="post",
)
ax2.axvline(release, color="black", linestyle="--", linewidth=1.2)
ax2.set_xlim(zoom_lo, zoom_hi)
ax2.set_ylabel("requests per hour (cluster)")
ax2.set_title(f"Zoom: 3 days either side of the {new_model} release (hourly)", fontsize=11)
ax2.legend(loc="upper left", title="served by")

ax3.hist(created, bins=pd.date_range(t_start, t_end, freq="6h"), color="#4c72b0")
ax3.axvline(release, color="black", linestyle="--", linewidth=1.2)
ax3.set_xlim(t_start, t_end)
ax3.set_ylabel("sign-ups\n(per 6 h)")
ax3.set_xlabel("time (UTC)")
ax3.set_title("When the members signed up", fontsize=11)
fig.tight_layout()
savefig(fig, "02_activity_timeline")
plt.show()

# %%
# how fast did each member adopt the new model after its release?
first_new = mreq[mreq["model"] == new_model].groupby("account_id")["ts"].min()
lag_h = ((first_new - release).dt.total_seconds() / 3600).reindex(members)
active_after = (
    mreq[mreq["ts"] >= release].groupby("account_id").size().reindex(members, fill_value=0)
)
print(f"members active after the release: {(active_after > 0).sum()} of {len(members)}")
print(
    f"of those, on {new_model} within 24 h: {(lag_h <= 24).sum()}; median lag {lag_h.median():.1f} h"
)

# %% [markdown]
# ## 4. What did they send? Templates
# The engine reduces every prompt to a *skeleton* (numbers, names, quoted values
# replaced by placeholders) and groups near-identical skeletons into templates.  Here
# are the cluster's top templates: skeleton beside an example prompt, and raw prompts
# of that template sent by members (looked up by the request rows in the evidence).

# %%
tpl_ev = next((e for e in cluster["evidence"] if e["kind"] == "templates"), None)
templates = tpl_ev["details"].get("templates", []) if tpl_ev else []
by_row = req.set_index("_row")


def short(s: str, n: int = 150) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


display(
    pd.DataFrame(
        [
            {
                "template": t["template_id"],
                "requests in cluster": t["requests_in_cluster"],
                "skeleton": short(t["skeleton"]),
                "example": short(t["example"]),
            }
            for t in templates
        ]
    )
)

# %%
for t in templates[:3]:
    rows = [r for r in t["request_rows"] if r in by_row.index][:3]
    print(f"── template {t['template_id']} ({t['requests_in_cluster']} requests in the cluster)")
    print(f"   skeleton: {short(t['skeleton'], 200)}")
    for r in rows:
        x = by_row.loc[r]
        print(f"   row {r} · {x['account_id']} · {x['model']}: {short(x['prompt'], 200)}")
    print()

# %% [markdown]
# ## 5. Counterfactuals: "without X the score would be …"
# Each evidence item carries `score_without`: the median member's score with that
# evidence's log-odds removed.  Evidence whose removal drops the cluster below the
# review / block lines is what the decision rests on.

# %%
cf = pd.DataFrame(
    [(e["kind"], e["contribution"], e["details"].get("score_without", np.nan)) for e in ev],
    columns=["evidence", "contribution", "score_without"],
)
display(cf)

# %%
fig, ax = plt.subplots(figsize=(9, 0.45 * len(cf) + 1.5))
y = np.arange(len(cf))
ax.barh(
    y,
    cf["score_without"],
    color=[
        "#2e86ab"
        if s < settings.score.review_threshold
        else "#f2c14e"
        if s < settings.score.block_threshold
        else "#d1495b"
        for s in cf["score_without"]
    ],
)
ax.axvline(
    cluster["score"], color="black", linewidth=1.5, label=f"actual score {cluster['score']:.3f}"
)
ax.axvline(
    settings.score.review_threshold,
    color="#f2a900",
    linestyle="--",
    label=f"review line {settings.score.review_threshold:g}",
)
ax.axvline(
    settings.score.block_threshold,
    color="#b00020",
    linestyle="--",
    label=f"block line {settings.score.block_threshold:g}",
)
for yi, s in zip(y, cf["score_without"], strict=True):
    ax.text(min(s + 0.01, 0.93), yi, f"{s:.2f}", va="center", fontsize=8)
ax.set_yticks(y, [f"without {k}" for k in cf["evidence"]])
ax.invert_yaxis()
ax.set_xlim(0, 1.06)
ax.set_xlabel("cluster score with that evidence removed")
ax.set_title(f"Counterfactuals of cluster {CLUSTER_ID}")
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
savefig(fig, "02_counterfactuals")
plt.show()

# %%
decisive = cf[cf["score_without"] < settings.score.block_threshold]
for r in decisive.itertuples():
    print(
        f"without {r.evidence} the score would be {r.score_without:.2f} instead of {cluster['score']:.2f}"
    )
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
