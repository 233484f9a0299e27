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
# # 05 · Respond: silent degradation and a watermark per cluster
#
# Detection is half of the defence.  For a blocked cluster the provider can, instead of
# suspending it (which tells the farm it was caught), **degrade** its outputs silently:
# `perturb(text, strength, key)` rewords, reorders independent sentences and trims
# reasoning steps — never touching code, numbers, JSON, URLs or quoted data — and moves
# synonym choices towards the ones the cluster's secret key marks *green*.  A corpus that
# later turns up (a distilled model's training set) can then be tested against every
# cluster key: the statistic is an exact, bounded Rademacher sum, so its p-value
# (`exp(-z²/2)`) holds for any text.
#
# 1. the action the policy gives the top blocked cluster (with `block_action="degrade"`);
# 2. one of its responses at three strengths, side by side;
# 3. the edit budget per strength;
# 4. the detector's power curve: share of corpora attributed vs corpus size.

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from nbhelpers import SCALE, SEED, ensure_run, ensure_world, savefig, setup_matplotlib, work_dir

from linkage.fixtures.responses import attack, responses
from linkage.respond.perturb import edit_budget, perturb, word_edit_fraction
from linkage.respond.policy import decide
from linkage.respond.spans import protected_spans
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    WORD,
    new_key_id,
    new_secret,
    p_from_z,
    stats_from_opportunities,
    subkeys,
    text_opportunities,
    z_scores,
)
from linkage.settings import RespondSettings
from linkage.store import load_run

setup_matplotlib()
pd.set_option("display.max_colwidth", 200)
T0 = time.perf_counter()
WORK = work_dir()
world = ensure_world(WORK, scale=SCALE, seed=SEED)
run = load_run(ensure_run(world, WORK))

# %% [markdown]
# ## 1. The action for the top blocked cluster

# %%
respond = RespondSettings(block_action="degrade")
blocked = sorted(
    (c for c in run.clusters if c["level"] == "block"), key=lambda c: (-c["score"], -c["size"])
)
top = blocked[0]
key_id, secret = (
    new_key_id(),
    new_secret(),
)  # in the service: WatermarkKeys(store.engine).ensure(cluster)
action = decide("block", top["score"], volume=top["size"], key_id=key_id, respond=respond)
print(f"cluster {top['cluster_id']}: {top['size']} accounts, score {top['score']:.3f}")
display(pd.DataFrame([action.to_dict()]))
rows = [
    decide(level, score, volume=vol, key_id=key_id, respond=respond).to_dict()
    | {"case": f"{level}, score {score}, volume {vol}"}
    for level, score, vol in [
        ("clear", 0.1, 5),
        ("review", 0.7, 5),
        ("block", 0.91, 3),
        ("block", 0.97, 40),
        ("block", 1.0, 10_000),
    ]
]
display(pd.DataFrame(rows).set_index("case"))

# %% [markdown]
# ## 2. One response at three strengths
# The cluster's prompts are in the world; its responses are generated here
# (`fixtures.responses`: assistant-style prose with a reasoning block, code, JSON, URLs,
# quotes).  Protected spans are checked byte for byte.

# %%
cluster_responses = responses(3000, seed=5)
sample = next(r for r in cluster_responses if "```" in r and "Let's think" in r)
STRENGTHS = (0.1, action.perturbation_strength, 1.0)
versions = {f"strength {s:.2f}": perturb(sample, s, secret) for s in STRENGTHS}
for name, v in versions.items():
    assert "".join(protected_spans(v)) == "".join(protected_spans(sample))
    print(f"{name}: {word_edit_fraction(sample, v):.1%} of words edited")

fig, axes = plt.subplots(1, 4, figsize=(22, 6))
for ax, (name, text) in zip(axes, {"original": sample, **versions}.items(), strict=True):
    wrapped = "\n".join(
        "\n".join(textwrap.wrap(line, 52, replace_whitespace=False)) or " "
        for line in text.split("\n")
    )
    ax.text(0, 1, wrapped, va="top", ha="left", family="monospace", fontsize=7.5, wrap=True)
    ax.set_title(name)
    ax.axis("off")
fig.suptitle(f"One response of cluster {top['cluster_id']}, perturbed under its key")
savefig(fig, "05_side_by_side")
plt.show()

# %% [markdown]
# ## 3. Edit budget per strength
# `perturb` never edits more than `edit_budget(strength)` of the words (its own
# accounting bounds the `difflib` word diff measured here).

# %%
grid = np.array([0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0])
edits = {
    s: [word_edit_fraction(t, perturb(t, s, secret)) for t in cluster_responses[:400]] for s in grid
}
fig, ax = plt.subplots(figsize=(8, 4))
ax.boxplot([edits[s] for s in grid], positions=grid, widths=0.05, showfliers=False)
ax.plot(grid, [edit_budget(s) for s in grid], "r--", label="budget (stated)")
ax.plot(grid, [np.mean(edits[s]) for s in grid], "o-", color="#4c72b0", label="mean edited")
ax.set_xlim(0, 1.05)
ax.set_xlabel("strength")
ax.set_ylabel("share of words edited")
ax.set_title("Edit budget vs measured edits (400 responses per strength)")
ax.legend()
savefig(fig, "05_edit_budget")
plt.show()

# %% [markdown]
# ## 4. Power curve
# Share of corpora attributed (p < 1e-6) to the right key vs the number of responses,
# at three strengths, and at the policy's strength after 20 % of the words were
# substituted or deleted at random.  Each point: 40 corpora drawn from 3,000 responses.
# Against 200 other keys none of these corpora is attributed (false attributions counted).

# %%
rng = np.random.default_rng(0)
vocab = [w for t in cluster_responses[:500] for w in WORD.findall(t)]
arng = __import__("random").Random(1)
sub = subkeys(secret)
others = [subkeys(new_secret()) for _ in range(200)]
variants = {
    f"strength {s:.2f}": [perturb(t, s, secret) for t in cluster_responses] for s in STRENGTHS
}
variants[f"strength {action.perturbation_strength:.2f}, 20% words edited"] = [
    attack(t, 0.2, vocab, arng) for t in variants[f"strength {action.perturbation_strength:.2f}"]
]
variants["clean"] = cluster_responses
sizes = [5, 10, 20, 35, 50, 100, 200]
curves, false_hits, false_n = {}, 0, 0
for name, texts in variants.items():
    ops = [text_opportunities(t) for t in texts]
    rates = []
    for n in sizes:
        hits = 0
        for _ in range(40):
            idx = rng.choice(len(ops), n, replace=False)
            st = stats_from_opportunities([ops[i] for i in idx])
            z = z_scores(st, [sub, *others])
            p = p_from_z(z)
            hits += bool(p[0] < ATTRIBUTION_P)
            false_hits += int((p[1:] < ATTRIBUTION_P).sum())
            false_n += len(others)
        rates.append(hits / 40)
    curves[name] = rates
print(f"false attributions against other keys: {false_hits} of {false_n:,} tests")

fig, ax = plt.subplots(figsize=(8, 4.5))
for name, r in curves.items():
    ax.plot(sizes, r, "o-", label=name)
ax.set_xscale("log")
ax.set_xticks(sizes, [str(s) for s in sizes])
ax.set_xlabel("responses in the suspect corpus")
ax.set_ylabel("share attributed to the right key")
ax.set_title("Detector power (p < 1e-6)")
ax.legend(fontsize=8)
savefig(fig, "05_power_curve")
plt.show()
display(pd.DataFrame(curves, index=pd.Index(sizes, name="responses")).T)
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
