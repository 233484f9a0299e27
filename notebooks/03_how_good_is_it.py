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
# # 03 · How good is it?
#
# The generated world comes with ground truth (`labels`: `is_farm`, `group`,
# `population`).  We score it with the engine and with the four peer methods every
# evaluation shows beside it — per-account **rules** (the mission's baseline),
# connected **components** of shared identifiers, **Louvain** on the projection and
# **FRAUDAR** dense blocks — and compare them on the same axes:
#
# - precision–recall and ROC curves;
# - score distributions per population;
# - flag rate (review or block) of every legit population: the harm;
# - recall per farm group: the coverage.
#
# `grey:*` populations (free-tier multi-accounting) are neither positives nor
# negatives for the curves (as in `linkage.evaluate`); their flag rates are shown.

# %%
import time

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
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
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from linkage import Settings
from linkage.baselines import BASELINES, run_baseline
from linkage.evaluate import compare, evaluate
from linkage.identifiers import extract
from linkage.ingest import load_dataset
from linkage.store import load_run

setup_matplotlib()
pd.set_option("display.width", 200)
T0 = time.perf_counter()
WORK = work_dir()
world = ensure_world(WORK, scale=SCALE, seed=SEED)
labels = read_table(world, "labels")
settings = Settings()

# %% [markdown]
# ## Score every account with every method
# The engine's run directory (`accounts.csv`); the peers through
# `linkage.baselines.run_baseline` on the same identifiers stage (what
# `run_detect(method=...)` does, minus writing a run directory per method).

# %%
results: dict[str, pd.DataFrame] = {}
seconds: dict[str, float] = {}
t = time.perf_counter()
engine_run = load_run(ensure_run(world, WORK))
results["engine"] = engine_run.accounts[["account_id", "score", "level", "cluster_id"]]
seconds["engine"] = float(
    engine_run.manifest.get("timings", {}).get("total", time.perf_counter() - t)
)

t = time.perf_counter()
ds = load_dataset(world, settings=settings.ingest)
ids = extract(ds, settings=settings.identifiers, seed=settings.seed)
print(f"identifiers for the peers: {time.perf_counter() - t:.1f} s")
for name in BASELINES:
    t = time.perf_counter()
    results[name] = run_baseline(name, edges=ids.edges, features=ids.features, seed=settings.seed)
    seconds[name] = time.perf_counter() - t
    print(f"{name:<10} {seconds[name]:5.1f} s")

# %%
reports = {name: evaluate(frame, labels) for name, frame in results.items()}
print(compare(reports))

# %% [markdown]
# ## Precision–recall and ROC
# Over labelled, non-grey accounts.  Farms are a few percent of the accounts, so the
# PR curve (and the low-FPR corner of the ROC, shown on a log axis) is what matters:
# a provider can afford to review only a sliver of its legit customers.

# %%
lab = labels.assign(account_id=labels["account_id"].astype(str))
lab = lab[~lab["population"].fillna("").str.startswith("grey")]
STYLE = {
    "engine": dict(color="#d1495b", linewidth=2.6),
    "rules": dict(color="#333333", linewidth=1.8, linestyle="--"),
    "components": dict(color="#4c72b0", linewidth=1.4),
    "louvain": dict(color="#55a868", linewidth=1.4),
    "fraudar": dict(color="#8172b3", linewidth=1.4),
}

fig, (ax_pr, ax_roc) = plt.subplots(1, 2, figsize=(14, 5.8))
for name, frame in results.items():
    m = lab.merge(frame.assign(account_id=frame["account_id"].astype(str)), on="account_id")
    y, s = m["is_farm"].astype(int).to_numpy(), m["score"].astype(float).to_numpy()
    p, r, _ = precision_recall_curve(y, s)
    ax_pr.step(
        r, p, where="post", label=f"{name} (AP {average_precision_score(y, s):.2f})", **STYLE[name]
    )
    fpr, tpr, _ = roc_curve(y, s)
    ax_roc.step(
        np.maximum(fpr, 1e-4),
        tpr,
        where="post",
        label=f"{name} (AUC {roc_auc_score(y, s):.2f})",
        **STYLE[name],
    )
base = lab["is_farm"].mean()
ax_pr.axhline(base, color="grey", linewidth=0.8, linestyle=":", label=f"chance ({base:.2f})")
ax_pr.set_xlabel("recall (share of farm accounts found)")
ax_pr.set_ylabel("precision (share of flagged accounts that are farms)")
ax_pr.set_title("Precision–recall")
ax_pr.set_xlim(0, 1.01)
ax_pr.set_ylim(0, 1.02)
ax_pr.legend(loc="lower left")
ax_roc.set_xscale("log")
ax_roc.axvline(0.01, color="grey", linewidth=0.8, linestyle=":", label="FPR 1 %")
ax_roc.set_xlim(1e-4, 1)
ax_roc.set_ylim(0, 1.02)
ax_roc.set_xlabel("false-positive rate among legit accounts (log scale; 0 drawn at 1e-4)")
ax_roc.set_ylabel("true-positive rate (recall)")
ax_roc.set_title("ROC")
ax_roc.legend(loc="lower right")
fig.suptitle(
    f"Engine vs peers on a generated world (scale {SCALE}, seed {SEED}; {len(lab):,} labelled accounts, {int(lab['is_farm'].sum())} farm)"
)
savefig(fig, "03_pr_roc")
plt.show()

# %% [markdown]
# ## Score distributions per population
# Engine scores (left) and the rules baseline (right), one row per population, farm
# populations at the top.  Dots are accounts (jittered); dashed lines are the review and
# block thresholds of the engine.


# %%
def population_order(frame: pd.DataFrame) -> list[str]:
    farm = sorted(p for p in frame["population"].unique() if p.startswith("farm"))
    grey = sorted(p for p in frame["population"].unique() if p.startswith("grey"))
    rest = sorted(set(frame["population"]) - set(farm) - set(grey))
    return farm + grey + rest


# matplotlib >= 3.10 spells it orientation=, older versions vert=
HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in mpl.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), sharey=True)
rng = np.random.default_rng(SEED)
for ax, name in zip(axes, ["engine", "rules"], strict=True):
    m = labels.assign(account_id=labels["account_id"].astype(str)).merge(
        results[name], on="account_id"
    )
    m["population"] = m["population"].fillna("(none)")
    order = population_order(m)
    data = [m.loc[m["population"] == p, "score"].to_numpy() for p in order]
    ax.boxplot(data, **HORIZONTAL, widths=0.6, showfliers=False, medianprops=dict(color="black"))
    for i, (p, d) in enumerate(zip(order, data, strict=True), start=1):
        color = (
            "#d1495b" if p.startswith("farm") else "#f2a900" if p.startswith("grey") else "#4c72b0"
        )
        ax.scatter(d, i + rng.uniform(-0.25, 0.25, len(d)), s=5, alpha=0.35, color=color)
    ax.set_yticks(
        range(1, len(order) + 1), [f"{p} (n={len(d)})" for p, d in zip(order, data, strict=True)]
    )
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.set_title(f"{name}: score per population")
    if name == "engine":
        ax.axvline(
            settings.score.review_threshold,
            color="#f2a900",
            linestyle="--",
            linewidth=1,
            label="review",
        )
        ax.axvline(
            settings.score.block_threshold,
            color="#b00020",
            linestyle="--",
            linewidth=1,
            label="block",
        )
        ax.legend(loc="lower right", title="threshold")
savefig(fig, "03_score_distributions")
plt.show()

# %% [markdown]
# ## Harm: flag rate per legit population
# Share of each legit population put on review or block by each method.  These are the
# customers a provider loses; each one is a look-alike of some farm.


# %%
def population_rates(report, field: str) -> pd.Series:
    return pd.Series({p.population: getattr(p, field) for p in report.populations if p.n_farm == 0})


flag = pd.DataFrame({name: population_rates(r, "flag_rate") for name, r in reports.items()})
flag = flag.loc[sorted(flag.index, key=lambda p: (not p.startswith("grey"), p))]
print((flag * 100).round(2).to_string())


def grouped_bars(ax, frame: pd.DataFrame, *, percent: bool) -> None:
    n = len(frame.columns)
    width = 0.8 / n
    x = np.arange(len(frame.index))
    for j, name in enumerate(frame.columns):
        vals = frame[name].to_numpy() * (100 if percent else 1)
        ax.bar(
            x + (j - (n - 1) / 2) * width,
            vals,
            width,
            label=name,
            color=STYLE[name]["color"],
            edgecolor="black",
            linewidth=0.3,
        )
    ax.set_xticks(x, frame.index, rotation=25, ha="right")


fig, ax = plt.subplots(figsize=(13, 5))
grouped_bars(ax, flag, percent=True)
ax.set_yscale("symlog", linthresh=1)
ax.set_ylim(0, 110)
ax.set_yticks([0, 0.5, 1, 5, 10, 50, 100], ["0", "0.5", "1", "5", "10", "50", "100"])
ax.set_ylabel("flagged (review or block), % of population\n(symlog scale)")
ax.set_title("Flag rate per legit population (lower is better; grey = ambiguous multi-accounting)")
ax.legend(title="method", loc="upper left", bbox_to_anchor=(1.0, 1.0))
savefig(fig, "03_flag_rate_legit")
plt.show()

# %% [markdown]
# ## Coverage: recall per farm group
# Share of each campaign's accounts that each method flags (review or block), and
# that the engine blocks.

# %%
recall = pd.DataFrame(
    {name: pd.Series({g.group: g.flag_recall for g in r.groups}) for name, r in reports.items()}
)
engine_block = pd.Series({g.group: g.block_recall for g in reports["engine"].groups})
sizes = pd.Series({g.group: g.n for g in reports["engine"].groups})
recall.index = [f"{g}\n(n={sizes.get(g, 0)})" for g in recall.index]
print(recall.round(3).to_string())

fig, ax = plt.subplots(figsize=(11, 4.8))
grouped_bars(ax, recall, percent=True)
n = len(recall.columns)
for i, v in enumerate(engine_block.reindex([g.split("\n")[0] for g in recall.index]).to_numpy()):
    ax.plot(
        [i - 0.4, i - 0.4 + 0.8 / n],
        [v * 100] * 2,
        color="black",
        linewidth=2.2,
        label="engine: blocked" if i == 0 else None,
    )
ax.set_xticks(range(len(recall.index)), recall.index, rotation=0, ha="center")
ax.set_ylim(0, 105)
ax.set_ylabel("flagged (review or block), % of group")
ax.set_title("Recall per farm group (higher is better)")
ax.legend(title="method", ncol=3, loc="upper left", bbox_to_anchor=(1.0, 1.0))
savefig(fig, "03_recall_per_group")
plt.show()

# %%
print(
    "seconds per method (engine: full run from its manifest, incl. identifiers and explain; peers: detect stage only)"
)
print({k: round(v, 1) for k, v in seconds.items()})
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
