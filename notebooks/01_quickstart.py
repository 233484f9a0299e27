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
# # 01 · Quickstart: from accounts to farm clusters
#
# Generate a small synthetic world (accounts, API requests, labels, signups),
# run the linkage engine on it and list the clusters it flags, with the three
# strongest pieces of evidence for each.
#
# Everything is written under `NOTEBOOK_WORK_DIR` (a temp dir by default); the
# figures go to `NOTEBOOK_OUTPUT_DIR` (default `notebooks/_output/`).

# %%
import json
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from nbhelpers import (
    SCALE,
    SEED,
    ensure_run,
    ensure_world,
    read_table,
    savefig,
    setup_matplotlib,
    work_dir,
)

from linkage.store import load_run

setup_matplotlib()
pd.set_option("display.max_colwidth", 120)
pd.set_option("display.width", 200)
T0 = time.perf_counter()
WORK = work_dir()
print("work dir:", WORK)

# %% [markdown]
# ## 1. A world
# `fixtures.make_world` draws a provider's history: ordinary individuals, companies,
# universities, integrators, eval pipelines… and 2–4 farm campaigns.  Same seed →
# same files.

# %%
world = ensure_world(WORK, scale=SCALE, seed=SEED)
accounts = read_table(world, "accounts")
requests = read_table(world, "requests")
labels = read_table(world, "labels")
print(f"{len(accounts):,} accounts, {len(requests):,} requests")
display(labels.groupby("population").agg(accounts=("account_id", "size"), farm=("is_farm", "sum")))

# %% [markdown]
# ## 2. Detect
# `linkage.pipeline.run_detect` ingests the directory, extracts identifiers, builds the
# weighted account graph, runs Leiden, scores every account and cluster and writes a
# run directory: `accounts.csv`, `clusters.jsonl`, `manifest.json`.

# %%
run_dir = ensure_run(world, WORK)
run = load_run(run_dir)
timings = run.manifest.get("timings", {})
print(json.dumps(run.manifest["counts"], indent=1))
display(timings)

# %%
stages = {k: v for k, v in timings.items() if k != "total"}
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(list(stages), list(stages.values()), color="#4c72b0")
ax.invert_yaxis()
ax.set_xlabel("seconds")
ax.set_title(
    f"Stage timings of one detection run (total {timings.get('total', float('nan')):.1f} s)"
)
savefig(fig, "01_stage_timings")
plt.show()

# %% [markdown]
# ## 3. The top clusters
# One row per cluster: its level (`clear | review | block`), size, calibrated score
# and the three evidence items that contribute most to the score (log-odds).


# %%
def top_evidence(cluster: dict, k: int = 3) -> list[str]:
    return [
        f"{e['kind']} ({e['contribution']:+.1f}): {e['summary']}" for e in cluster["evidence"][:k]
    ]


rows = []
for c in run.clusters[:15]:
    ev = top_evidence(c) + [""] * 3
    rows.append(
        {
            "cluster_id": c["cluster_id"],
            "level": c["level"],
            "size": c["size"],
            "score": round(c["score"], 3),
            "evidence 1": ev[0],
            "evidence 2": ev[1],
            "evidence 3": ev[2],
        }
    )
top = pd.DataFrame(rows)
display(top)

# %% [markdown]
# The same table as a figure (for a report): evidence kinds only, summaries are above.

# %%
shown = top.head(12)
cell = [
    [
        r.cluster_id,
        r.level,
        str(r.size),
        f"{r.score:.3f}",
        *(e.split(":")[0] for e in (r._5, r._6, r._7)),
    ]
    for r in shown.itertuples()
]
fig, ax = plt.subplots(figsize=(12, 0.3 * len(cell) + 0.8))
ax.axis("off")
tab = ax.table(
    cellText=cell,
    colLabels=["cluster", "level", "size", "score", "evidence 1", "evidence 2", "evidence 3"],
    loc="center",
    cellLoc="left",
    colWidths=[0.13, 0.07, 0.05, 0.06, 0.23, 0.23, 0.23],
)
tab.auto_set_font_size(False)
tab.set_fontsize(9)
tab.scale(1, 1.35)
level_color = {"block": "#f4a6a6", "review": "#fbe3a1", "clear": "#d9ead3"}
for i, r in enumerate(shown.itertuples(), start=1):
    tab[i, 1].set_facecolor(level_color.get(r.level, "white"))
ax.set_title(
    "Top clusters by score, with their three strongest evidence kinds (log-odds contribution)"
)
savefig(fig, "01_top_clusters")
plt.show()

# %% [markdown]
# ## 4. How many accounts at each level?
# A level per account; the ground truth (`labels`) tells us which are farms in this world.

# %%
acc = run.accounts.merge(
    labels[["account_id", "is_farm", "population"]], on="account_id", how="left"
)
counts = pd.crosstab(acc["population"], acc["level"]).reindex(
    columns=["clear", "review", "block"], fill_value=0
)
display(counts)

# %%
order = counts.sum(axis=1).sort_values().index
frac = counts.loc[order].div(counts.loc[order].sum(axis=1), axis=0)
fig, ax = plt.subplots(figsize=(8, 4.5))
left = pd.Series(0.0, index=order)
for level, color in [("clear", "#9bc59d"), ("review", "#f2c14e"), ("block", "#d1495b")]:
    ax.barh(order, frac[level], left=left, color=color, label=level)
    left += frac[level]
for i, pop in enumerate(order):
    ax.text(1.01, i, f"n={counts.loc[pop].sum():,}", va="center", fontsize=8)
ax.set_xlim(0, 1.12)
ax.set_xlabel("share of the population's accounts")
ax.set_title("Level given to each labelled population")
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="level")
savefig(fig, "01_levels_by_population")
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
