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
# # 04 · Signup verification
#
# New accounts arrive after the history was captured: they have sign-up attributes
# (e-mail, IP, device, card, user agent) but no requests yet.  `SignupScorer` looks
# their normalised identifiers up in the run's signup index: each identifier votes for a
# known cluster with the share of its holders that belong to it, and the votes of
# independent identifier families give the signup's **attachment** (0–1), combined with
# a **velocity** check (many new accounts on one card / device / mailbox within
# minutes).
#
# 1. score the world's `signups` in batch;
# 2. which attach to known farms, and why (the identifiers behind the attachment);
# 3. the latency of `score_one`, the call the sign-up flow makes.

# %%
import json
import time

import matplotlib.pyplot as plt
import numpy as np
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

from linkage.signup import SignupScorer
from linkage.store import load_run

setup_matplotlib()
pd.set_option("display.max_colwidth", 140)
pd.set_option("display.width", 220)
T0 = time.perf_counter()
WORK = work_dir()
world = ensure_world(WORK, scale=SCALE, seed=SEED)
run_dir = ensure_run(world, WORK)
run = load_run(run_dir)
signups = read_table(world, "signups")
labels = read_table(world, "labels")
print(
    f"{len(signups)} signups to verify against a run of {len(run.accounts):,} accounts and {len(run.clusters)} clusters"
)

# %%
t = time.perf_counter()
scorer = SignupScorer.from_run(run_dir)
print(f"scorer loaded in {(time.perf_counter() - t) * 1000:.0f} ms")

# %% [markdown]
# ## 1. Score the signups (batch)
# `score_frame` counts velocity within the batch, in `created_at` order.

# %%
t = time.perf_counter()
scored = scorer.score_frame(signups)
print(f"{len(scored)} signups scored in {(time.perf_counter() - t) * 1000:.0f} ms")
scored = scored.merge(labels, on="account_id", how="left")
scored["population"] = scored["population"].fillna("(unlabelled)")
display(
    pd.crosstab(scored["population"], scored["level"]).reindex(
        columns=["clear", "review", "block"], fill_value=0
    )
)

# %%
fig, ax = plt.subplots(figsize=(10, 4.5))
order = sorted(
    scored["population"].unique(),
    key=lambda p: (not p.startswith("farm"), not p.startswith("grey"), p),
)
rng = np.random.default_rng(SEED)
for i, pop in enumerate(order):
    s = scored.loc[scored["population"] == pop, "score"].to_numpy()
    color = (
        "#d1495b" if pop.startswith("farm") else "#f2a900" if pop.startswith("grey") else "#4c72b0"
    )
    ax.scatter(
        s,
        i + rng.uniform(-0.2, 0.2, len(s)),
        s=30,
        alpha=0.7,
        color=color,
        edgecolor="black",
        linewidth=0.3,
    )
ax.axvline(
    scorer.settings.score.review_threshold,
    color="#f2a900",
    linestyle="--",
    label="review threshold",
)
ax.axvline(
    scorer.settings.score.block_threshold, color="#b00020", linestyle="--", label="block threshold"
)
ax.set_yticks(range(len(order)), [f"{p} (n={(scored['population'] == p).sum()})" for p in order])
ax.invert_yaxis()
ax.set_xlim(-0.03, 1.03)
ax.set_xlabel("signup score")
ax.set_title("Signup scores by (ground-truth) population")
ax.legend(loc="lower right")
savefig(fig, "04_signup_scores")
plt.show()

# %% [markdown]
# ## 2. Which signups attach to known farms, and why?
# For each signup attached to a cluster: the cluster's level and score, which campaign
# that cluster mostly is in the ground truth, and the identifiers that made the link
# (members of the cluster holding it / all holders, and the vote: that share).

# %%
lab_group = labels.set_index("account_id")["group"].astype(object)
lab_group = lab_group.where(
    lab_group.notna() & (lab_group != ""), labels.set_index("account_id")["population"]
)


def majority(members: list[str]) -> str:
    counts = lab_group.reindex(members).dropna().value_counts()
    return f"{counts.index[0]} ({counts.iloc[0]}/{len(members)})" if len(counts) else "(unlabelled)"


cluster_group = {c["cluster_id"]: majority(c["members"]) for c in run.clusters}


def why(evidence_json: str) -> str:
    items = json.loads(evidence_json)
    parts = []
    for e in items:
        if e["kind"] == "attaches_to_cluster":
            ids = e["details"]["identifiers"][:3]
            parts.append(
                ", ".join(
                    f"{i['kind']} {i['members']}/{i['holders']} (vote {i['vote']:.2f})" for i in ids
                )
            )
        elif e["kind"] == "velocity":
            parts.append(e["summary"])
    return "; ".join(parts)


attached = scored[scored["cluster_id"].notna()].copy()
attached["cluster level"] = attached["cluster_id"].map(
    {c["cluster_id"]: c["level"] for c in run.clusters}
)
attached["cluster is mostly"] = attached["cluster_id"].map(cluster_group)
attached["why"] = attached["evidence"].map(why)
cols = [
    "account_id",
    "population",
    "group",
    "score",
    "level",
    "cluster_id",
    "cluster level",
    "cluster is mostly",
    "why",
]
display(attached.sort_values("score", ascending=False)[cols].head(25))

# %%
# every signup shares *something* (a popular user agent…) with some cluster, so "attached"
# here means: attachment >= 0.5 to a cluster that is itself at review or block
flagged_clusters = {c["cluster_id"] for c in run.clusters if c["level"] in ("review", "block")}


def attachment(evidence_json: str) -> float:
    for e in json.loads(evidence_json):
        if e["kind"] == "attaches_to_cluster":
            return float(e["details"]["attachment"])
    return 0.0


scored["attachment"] = scored["evidence"].map(attachment)
summary = (
    scored.assign(
        attached=scored["cluster_id"].isin(flagged_clusters) & (scored["attachment"] >= 0.5),
        flagged=scored["level"].isin(["review", "block"]),
    )
    .groupby("population")[["attached", "flagged"]]
    .mean()
    .reindex(order)
)
display(summary)

# %% [markdown]
# What links a signup to a flagged cluster, by identifier kind: the summed votes
# (share of the identifier's holders inside the cluster) of each kind, over signups at
# review or block.

# %%
rows = []
for r in scored[scored["level"].isin(["review", "block"])].itertuples():
    for e in json.loads(r.evidence):
        if e["kind"] == "attaches_to_cluster":
            for i in e["details"]["identifiers"]:
                rows.append(
                    {"kind": i["kind"], "vote": i["vote"], "farm": r.population.startswith("farm")}
                )
kinds = pd.DataFrame(rows, columns=["kind", "vote", "farm"])
by_kind = kinds.pivot_table(
    index="kind", columns="farm", values="vote", aggfunc="sum", fill_value=0.0
)
by_kind = by_kind.rename(columns={True: "farm signups", False: "legit signups"})
by_kind = by_kind.reindex(columns=["farm signups", "legit signups"], fill_value=0.0)
by_kind = by_kind.loc[by_kind.sum(axis=1).sort_values().index]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [1.2, 1]})
y = np.arange(len(summary))
ax1.barh(
    y - 0.2,
    summary["attached"] * 100,
    0.4,
    label="attached (>= 0.5) to a flagged cluster",
    color="#8172b3",
)
ax1.barh(y + 0.2, summary["flagged"] * 100, 0.4, label="review or block", color="#d1495b")
ax1.set_yticks(y, summary.index)
ax1.invert_yaxis()
ax1.set_xlim(0, 105)
ax1.set_xlabel("% of the population's signups")
ax1.set_title("Signups attached / flagged per population")
ax1.legend(loc="lower right")
if len(by_kind):
    left = np.zeros(len(by_kind))
    for col, color in [("farm signups", "#d1495b"), ("legit signups", "#4c72b0")]:
        ax2.barh(by_kind.index, by_kind[col], left=left, color=color, label=col)
        left += by_kind[col].to_numpy()
    ax2.legend(loc="lower right")
ax2.set_xlabel("summed identifier votes (share of holders in the cluster)")
ax2.set_title("What links flagged signups to clusters")
savefig(fig, "04_attachment")
plt.show()

# %% [markdown]
# ## 3. Latency of `score_one`
# The sign-up flow calls `score_one` with one record and waits.  We replay every signup
# a few times (without recording velocity, so repeats do not inflate it) and time each call.

# %%
REPEATS = 5
records = signups.to_dict("records")
scorer.score_one(records[0], record_velocity=False)  # warm-up
lat_ms = []
for _ in range(REPEATS):
    for rec in records:
        t = time.perf_counter()
        scorer.score_one(rec, record_velocity=False)
        lat_ms.append((time.perf_counter() - t) * 1000)
lat_ms = np.array(lat_ms)
p50, p95, p99 = np.percentile(lat_ms, [50, 95, 99])
print(
    f"{len(lat_ms)} calls: p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms, max {lat_ms.max():.2f} ms"
)

fig, ax = plt.subplots(figsize=(9, 4))
ax.hist(lat_ms, bins=np.linspace(0, np.percentile(lat_ms, 99.5) * 1.1, 60), color="#4c72b0")
for q, v, c in [("p50", p50, "black"), ("p95", p95, "#f2a900"), ("p99", p99, "#b00020")]:
    ax.axvline(v, color=c, linestyle="--", label=f"{q} = {v:.2f} ms")
ax.set_xlabel("score_one latency (ms, one signup, in process)")
ax.set_ylabel("calls")
ax.set_title(
    f"Signup scoring latency ({len(lat_ms):,} calls; run of {len(run.accounts):,} accounts)"
)
ax.legend()
savefig(fig, "04_latency")
plt.show()

# %% [markdown]
# One result in full, as the API would return it:

# %%
best = scored.sort_values("score", ascending=False).iloc[0]
record = signups[signups["account_id"] == best["account_id"]].iloc[0].to_dict()
res = scorer.score_one(record, record_velocity=False)
print(json.dumps(res.to_dict(), indent=1, default=str)[:3000])
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
