"""Benchmark of linkage.respond: watermark attribution, false attribution, robustness,
edit budget, protected spans (issue 17).

    python -m bench.watermark                       # 200 corpora of 1,000 responses (~10 min)
    python -m bench.watermark --corpora 20 --random-keys 20   # quick look

Responses come from ``fixtures.responses`` (assistant-style text; the share of words that
are watermark opportunities is measured and reported — it drives the power).  Corpus ``i``
(``--corpus-size`` responses, disjoint) is perturbed at ``--strength`` with its own key
``K_i``; the keyring is ``{K_1 … K_C}``.

- **attribution**: corpus ``i`` (and each fifth of it, 200 responses) tested against the
  whole keyring; right = ``p(K_i) < 1e-6``;
- **false attribution**: ``p < 1e-6`` for a key that did not write the corpus — clean
  corpora against the keyring and ``--random-keys`` fresh keys each; watermarked corpora
  against every other key of the keyring and the fresh keys;
- **robustness**: each watermarked corpus after 20 % of its words were substituted (by a
  random word of the clean corpus vocabulary) or deleted, at random;
- **edit budget**: word-level diff share (difflib) per strength vs the stated budget;
- **protected spans**: joined protected spans identical and found in order, every response.

Confidence intervals: Clopper-Pearson 95 %.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import beta

from fixtures.responses import attack, responses
from linkage.respond.perturb import edit_budget, perturb, word_edit_fraction
from linkage.respond.spans import protected_spans
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    WORD,
    p_from_z,
    stats_from_opportunities,
    subkeys,
    text_opportunities,
    z_scores,
)

RESULTS = Path(__file__).resolve().parent / "results"


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def rate(k: int, n: int) -> dict[str, float | int]:
    lo, hi = clopper_pearson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [lo, hi]}


def bench_key(seed: int, i: int) -> bytes:
    return hashlib.blake2b(f"bench-key-{seed}-{i}".encode(), digest_size=32).digest()


def spans_ok(before: str, after: str) -> bool:
    a = protected_spans(before)
    if "".join(a) != "".join(protected_spans(after)):
        return False
    pos = 0
    for s in a:
        j = after.find(s, pos)
        if j < 0:
            return False
        pos = j + len(s)
    return True


def run(args: argparse.Namespace) -> dict:
    t_all = time.perf_counter()
    C, N = args.corpora, args.corpus_size
    n_sub = 5
    sub_n = N // n_sub
    print(f"generating {C * N:,} responses …", flush=True)
    clean = responses(C * N, seed=args.seed)
    keys = [bench_key(args.seed, i) for i in range(C)]
    subs = [subkeys(k) for k in keys]
    rng = np.random.default_rng(args.seed + 1)
    fresh = [
        tuple(int(x) for x in rng.integers(0, 2**63, 2, dtype=np.int64).astype(np.uint64))
        for _ in range(args.random_keys)
    ]
    print("perturbing …", flush=True)
    t0 = time.perf_counter()
    wm = [perturb(t, args.strength, keys[j // N]) for j, t in enumerate(clean)]
    perturb_us = (time.perf_counter() - t0) / len(clean) * 1e6
    spans_good = sum(spans_ok(a, b) for a, b in zip(clean, wm, strict=True))
    edits = np.array([word_edit_fraction(a, b) for a, b in zip(clean, wm, strict=True)])
    print("attacking …", flush=True)
    vocab = [w for t in clean[:5000] for w in WORD.findall(t)]
    arng = random.Random(args.seed + 2)
    attacked = [attack(t, args.attack_share, vocab, arng) for t in wm]
    print("extracting opportunities …", flush=True)
    t0 = time.perf_counter()
    op_clean = [text_opportunities(t) for t in clean]
    op_wm = [text_opportunities(t) for t in wm]
    op_att = [text_opportunities(t) for t in attacked]
    extract_us = (time.perf_counter() - t0) / (3 * len(clean)) * 1e6

    def block(ops: list, i: int, size: int, j: int = 0) -> list:
        lo = i * N + j * size
        return ops[lo : lo + size]

    all_keys = subs + fresh
    res: dict = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    }
    t0 = time.perf_counter()
    n_tests = 0
    zs_null: list[np.ndarray] = []

    def trial_set(name: str, ops: list, size: int, parts: int, own: bool) -> dict:
        nonlocal n_tests
        right = wrong = wrong_n = 0
        z_own: list[float] = []
        ctx_counts: list[int] = []
        for i in range(C):
            for j in range(parts):
                st = stats_from_opportunities(block(ops, i, size, j))
                ctx_counts.append(st.n_contexts)
                z = z_scores(st, all_keys)
                n_tests += len(all_keys)
                p = p_from_z(z)
                others = np.ones(len(all_keys), bool)
                if own:
                    others[i] = False
                    right += bool(p[i] < ATTRIBUTION_P)
                    z_own.append(float(z[i]))
                wrong += int((p[others] < ATTRIBUTION_P).sum())
                wrong_n += int(others.sum())
                zs_null.append(z[others])
        out = {
            "corpus_size": size,
            "corpora": C * parts,
            "contexts_median": float(np.median(ctx_counts)),
            "false_attribution": rate(wrong, wrong_n),
        }
        if own:
            out["attributed"] = rate(right, C * parts)
            out["z_own"] = {
                "min": min(z_own),
                "median": float(np.median(z_own)),
                "p05": float(np.percentile(z_own, 5)),
            }
        print(name, json.dumps(out), flush=True)
        return out

    res["watermarked_1000"] = trial_set("watermarked", op_wm, N, 1, True)
    res["watermarked_200"] = trial_set("watermarked/5", op_wm, sub_n, n_sub, True)
    res["attacked_1000"] = trial_set("attacked", op_att, N, 1, True)
    res["attacked_200"] = trial_set("attacked/5", op_att, sub_n, n_sub, True)
    res["clean_1000"] = trial_set("clean", op_clean, N, 1, False)
    res["clean_200"] = trial_set("clean/5", op_clean, sub_n, n_sub, False)
    detect_s = time.perf_counter() - t0
    z_null = np.concatenate(zs_null)
    res["null_z"] = {
        "n": len(z_null),
        "mean": float(z_null.mean()),
        "sd": float(z_null.std()),
        "max": float(z_null.max()),
        "share_above_3": float((z_null > 3).mean()),
        "gaussian_share_above_3": 0.00135,
    }
    res["detector"] = {
        "key_tests": n_tests,
        "seconds": detect_s,
        "us_per_key_test": detect_s / max(1, n_tests) * 1e6,
        "extract_us_per_response": extract_us,
    }
    words = sum(o.n_words for o in op_clean)
    res["corpus"] = {
        "responses": len(clean),
        "words_per_response": words / len(clean),
        "opportunity_share": sum(len(o.ctx) for o in op_clean) / words,
    }
    res["utility_at_strength"] = {
        "strength": args.strength,
        "perturb_us_per_response": perturb_us,
        "protected_spans_identical": rate(spans_good, len(clean)),
        "edit_mean": float(edits.mean()),
        "edit_p99": float(np.percentile(edits, 99)),
        "edit_max": float(edits.max()),
        "budget": edit_budget(args.strength),
    }
    # edit budget per strength, on a fresh sample
    sample = responses(args.budget_sample, seed=args.seed + 7)
    per = {}
    for s in (0.1, 0.3, 0.6, 1.0):
        outs = [perturb(t, s, keys[0]) for t in sample]
        e = np.array([word_edit_fraction(a, b) for a, b in zip(sample, outs, strict=True)])
        ok = sum(spans_ok(a, b) for a, b in zip(sample, outs, strict=True))
        per[str(s)] = {
            "budget": edit_budget(s),
            "edit_mean": float(e.mean()),
            "edit_p99": float(np.percentile(e, 99)),
            "edit_max": float(e.max()),
            "over_budget": int((e > edit_budget(s) + 1e-9).sum()),
            "protected_spans_identical": rate(ok, len(sample)),
        }
    res["edit_budget"] = per
    res["seconds"] = time.perf_counter() - t_all
    return res


def report(res: dict) -> str:
    def pct(r: dict) -> str:
        lo, hi = r["ci95"]
        return f"{r['k']:,}/{r['n']:,} = {r['rate']:.4%} [{lo:.4%}, {hi:.4%}]"

    lines = [
        f"strength {res['settings']['strength']}, {res['corpus']['responses']:,} responses, "
        f"{res['corpus']['words_per_response']:.0f} words each, opportunity share "
        f"{res['corpus']['opportunity_share']:.2%}",
        "",
        "| corpora | size | median contexts | attributed to the right key (95% CI) | false attribution (95% CI) |",
        "|---|---:|---:|---|---|",
    ]
    for name in ("watermarked_1000", "watermarked_200", "attacked_1000", "attacked_200"):
        r = res[name]
        lines.append(
            f"| {name.split('_')[0]} | {r['corpus_size']} | {r['contexts_median']:.0f} | "
            f"{pct(r['attributed'])} | {pct(r['false_attribution'])} |"
        )
    for name in ("clean_1000", "clean_200"):
        r = res[name]
        lines.append(
            f"| clean | {r['corpus_size']} | {r['contexts_median']:.0f} | – | {pct(r['false_attribution'])} |"
        )
    lines += [
        "",
        "| strength | budget | mean edit | p99 edit | max edit | over budget | protected spans identical |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s, r in res["edit_budget"].items():
        lines.append(
            f"| {s} | {r['budget']:.1%} | {r['edit_mean']:.1%} | {r['edit_p99']:.1%} | "
            f"{r['edit_max']:.1%} | {r['over_budget']} | {pct(r['protected_spans_identical'])} |"
        )
    d = res["detector"]
    nz = res["null_z"]
    lines += [
        "",
        f"detector: {d['key_tests']:,} key tests in {d['seconds']:.1f} s "
        f"({d['us_per_key_test']:.1f} µs per corpus×key, opportunity extraction "
        f"{d['extract_us_per_response']:.0f} µs per response); perturb "
        f"{res['utility_at_strength']['perturb_us_per_response']:.0f} µs per response",
        f"null z over {nz['n']:,} tests: mean {nz['mean']:.3f}, sd {nz['sd']:.3f}, max "
        f"{nz['max']:.2f}, share > 3: {nz['share_above_3']:.5f} (Gaussian 0.00135)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", type=int, default=200)
    ap.add_argument("--corpus-size", type=int, default=1000)
    ap.add_argument("--random-keys", type=int, default=50)
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--attack-share", type=float, default=0.2)
    ap.add_argument("--budget-sample", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", type=Path, default=RESULTS / "watermark.json")
    args = ap.parse_args(argv)
    res = run(args)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    res["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    res["commit"] = commit
    res["machine"] = {
        "python": platform.python_version(),
        "cpu_count": __import__("os").cpu_count(),
    }
    md = report(res)
    res["report"] = md
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)
    return res


if __name__ == "__main__":
    main()
