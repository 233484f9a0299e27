"""The template stage alone on synthetic prompts (moved out of the library module).

    python -m bench.templates [N_PROMPTS]

prints the timing and memory of :func:`linkage.identifiers.templates.assign_templates`
on ``N_PROMPTS`` (default 2,000,000) synthetic prompts as JSON.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd

from linkage.identifiers.templates import assign_templates
from linkage.memory import peak_rss_mb, proc_status_kb
from linkage.settings import TemplateSettings


def template_bench(n_prompts: int = 2_000_000, seed: int = 0) -> dict[str, float]:
    """Time :func:`assign_templates` on synthetic prompts (half farm, half organic).

    Farm prompts come from 300 templates with filled numbers, names, quoted
    strings and ids and one in ten words swapped for a synonym; organic
    prompts are random 25-word texts (every one a distinct skeleton).
    Returns seconds (wall) and ``cpu_seconds`` (all threads) of the call,
    ``peak_rss_mb`` (this process's own peak, :func:`linkage.memory.peak_rss_mb`:
    includes building the input) and, where Linux lets the high-water mark be reset,
    ``call_peak_rss_mb`` (peak during the call, the input prompts included)
    and ``input_rss_mb`` (RSS just before it).
    """
    import gc

    rng = np.random.default_rng(seed)
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))  # no hex letters: no accidental ids
    vocab = np.unique(
        pd.Series(letters[rng.integers(0, 20, (6000, 6))].tolist()).str.join("").to_numpy()
    )
    n_farm = n_prompts // 2
    n_org = n_prompts - n_farm
    # Organic: ~n_org/2 distinct texts, each used twice on average.
    n_org_u = max(n_org // 2, 1)
    words = vocab[rng.integers(0, len(vocab), size=(n_org_u, 25))]
    org_u = pd.Series(words[:, 0])
    for j in range(1, 25):
        org_u = org_u + " " + words[:, j]
    org = org_u.iloc[rng.integers(0, n_org_u, n_org)].reset_index(drop=True)
    # Farm: template words with 10% substitutions, plus slot fills.
    tmpl_words = vocab[rng.integers(0, len(vocab), size=(300, 18))]
    t = rng.integers(0, 300, n_farm)
    w = tmpl_words[t]
    swap = rng.random(w.shape) < 0.1
    w = np.where(swap, vocab[rng.integers(0, len(vocab), w.shape)], w)
    farm = pd.Series(w[:, 0])
    for j in range(1, 18):
        farm = farm + " " + w[:, j]
    names = np.array(["Alice", "Bob", "Carol", "Dmitri", "Li Wei", "Maria"])
    farm = (
        farm
        + " for "
        + names[rng.integers(0, len(names), n_farm)]
        + " with "
        + pd.Series(rng.integers(0, 10**6, n_farm)).astype(str)
        + ' items "'
        + pd.Series(rng.integers(0, 10**9, n_farm)).astype(str)
        + '" id '
        + pd.Series(rng.integers(2**40, 2**48, n_farm)).map("{:x}".format)
    )
    prompts = pd.concat([farm, org], ignore_index=True).astype("str")
    del farm, org, org_u, words, w, swap, t
    gc.collect()
    input_rss = proc_status_kb("VmRSS")
    try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        resettable = True
    except OSError:
        resettable = False
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = assign_templates(prompts, settings=TemplateSettings(), seed=seed)
    cpu = time.process_time() - c0
    dt = time.perf_counter() - t0
    out = {
        "n_prompts": float(len(prompts)),
        "n_unique": float(prompts.nunique()),
        "n_templates": float(len(res.templates)),
        "seconds": dt,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }
    if resettable and input_rss is not None:
        out["call_peak_rss_mb"] = (proc_status_kb("VmHWM") or 0) / 1024
        out["input_rss_mb"] = input_rss / 1024
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    print(json.dumps(template_bench(n), indent=2))
