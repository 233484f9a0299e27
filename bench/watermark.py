"""Benchmark of linkage.respond: watermark attribution, false attribution, robustness,
edit budget, protected spans (issue 17); dilution, synonym canonicalisation, radioactivity
into a student model and real documentation (issue 27).

    python -m bench.watermark --corpora 10 --trials 30 --random-keys 2000   # ~20 min
    python -m bench.watermark --corpora 3 --trials 2 --student-trials 2 --pool 2500 \
        --real-docs 200 --budget-sample 50 --out /tmp/wm.json               # quick look

Responses come from ``fixtures.responses`` (assistant-style text; the share of words that
are watermark sites is measured and reported — it drives the power).  Corpus ``i``
(``--corpus-size`` responses, disjoint) is perturbed at ``--strength`` with its own key
``K_i``; the keyring is ``{K_1 … K_C}``.

- **attribution**: corpus ``i`` (and each fifth of it, 200 responses) tested against the
  whole keyring; right = ``p(K_i) < 1e-6``;
- **false attribution**: ``p < 1e-6`` for a key that did not write the corpus — clean
  corpora against the keyring and ``--random-keys`` fresh keys each; watermarked corpora
  against every other key of the keyring and the fresh keys;
- **robustness**: each watermarked corpus after 20 % of its words were substituted (by a
  random word of the clean corpus vocabulary) or deleted, at random;
- **edit budget**: word-level diff share per strength vs the stated budget;
- **protected spans**: joined protected spans identical and found in order, every response;
- **dilution**: 200 watermarked responses inside 2,000 (90 % other) and 800 (75 % other)
  responses; the same-size clean corpora against the key;
- **canonicalisation**: the attacker maps every word of a synonym list (all lexicon pairs
  and more) to one form, then (stronger) also expands every contraction; N = 200/500/1000;
- **radioactivity**: a word-bigram student trained on 2,000 responses of which 10 / 5 / 1 %
  are watermarked, tested on its next-token preferences (white box), 10,000 sampled
  tokens and 10,000 probed tokens (black box); clean students for the null;
- **real documentation**: chunks of the installed packages' descriptions, the standard
  library's docstrings and the system licences, perturbed at strength 1: protected spans,
  technical tokens and content beyond the allowed alternations must not change; clean and
  watermarked corpora of those chunks against the key and fresh keys.

Confidence intervals: Clopper-Pearson 95 %.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import beta

from linkage.fixtures.responses import attack, responses
from linkage.respond.lexicon import FORMS, PAIRS, PHRASES, WORD_INDEX
from linkage.respond.perturb import edit_budget, perturb, word_edit_fraction
from linkage.respond.spans import code_intervals, protected_spans
from linkage.respond.watermark import (
    ATTRIBUTION_P,
    CHANNELS,
    WORD,
    TextOpportunities,
    channel_sums,
    log_p_from_z,
    opportunities,
    p_from_z,
    preference_stats,
    stats_from_opportunities,
    subkeys,
    text_opportunities,
    z_scores,
)
from linkage.respond.watermark import context_id as _lex_ctx

RESULTS = Path(__file__).resolve().parent / "results"


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def rate(k: int, n: int) -> dict[str, float | int]:
    k, n = int(k), int(n)
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
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    for name, fn in (
        ("dilution", dilution),
        ("canonicalisation", canonicalisation),
        ("radioactivity", radioactivity),
        ("real_documents", real_docs),
    ):
        t0 = time.perf_counter()
        print(f"{name} …", flush=True)
        res[name] = fn(args, log)
        res[name]["seconds"] = time.perf_counter() - t0
    res["seconds"] = time.perf_counter() - t_all
    return res


# ----------------------------------------------------------------------------- attackers

#: the attacker's hand-made synonym list: every lexicon pair, plus common synonyms the
#: watermark does not use; each word is mapped to the first word of its group
ATTACKER_SYNONYMS: tuple[tuple[str, ...], ...] = (
    *PAIRS,
    ("use", "utilize", "employ"),
    ("help", "assist", "aid"),
    ("need", "require"),
    ("make", "create"),
    ("fix", "repair"),
    ("find", "locate"),
    ("check", "inspect"),
    ("answer", "reply", "response"),
    ("result", "outcome"),
    ("very", "highly", "extremely"),
    ("small", "little", "tiny"),
    ("good", "fine", "great"),
    ("start", "launch"),
    ("end", "finish"),
    ("get", "receive"),
    ("try", "attempt"),
)


def _canon_table() -> dict[str, str]:
    out: dict[str, str] = {}
    for group in ATTACKER_SYNONYMS:
        for w in group:
            out.setdefault(w.lower(), group[0])
    return out


CANON = _canon_table()


def _case_like(src: str, word: str) -> str:
    if len(src) > 1 and src.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if src[:1].isupper() else word


def canonicalise(text: str) -> str:
    """The attacker's clean-up: every word of its synonym list to the group's first word."""
    return WORD.sub(lambda m: _case_like(m.group(), CANON.get(m.group().lower(), m.group())), text)


_SHORT = {short: long for long, short in FORMS}
_SHORT_RX = re.compile(
    r"(?<![\w'’])(" + "|".join(re.escape(s) for s in _SHORT) + r")(?![\w'’])", re.I
)


def expand_contractions(text: str) -> str:
    """A stronger attacker: every contraction of the form channel written out."""
    return _SHORT_RX.sub(
        lambda m: _case_like(m.group(), _SHORT[m.group().lower().replace("’", "'")]),
        text.replace("’", "'"),
    )


# ----------------------------------------------------------------------------- student model

_TOK = re.compile(r"[a-z]+(?:'[a-z]+)?|[.,;:!?]|\n")


class BigramStudent:
    """A word bigram language model trained (maximum likelihood) on a corpus: the
    smallest student that can learn what the lexical watermark keys on — the choice of a
    word after the previous one.  ``sample`` writes text, ``next_probs`` exposes its
    next-token preferences (white-box), ``freq`` how often it saw each context word."""

    def __init__(self, texts: list[str]) -> None:
        nxt: dict[str, Counter[str]] = {}
        for t in texts:
            prev = "\n"
            for tok in _TOK.findall(t.lower()):
                nxt.setdefault(prev, Counter())[tok] += 1
                prev = tok
        self.counts = nxt
        self.freq = {p: float(sum(c.values())) for p, c in nxt.items()}
        self._table = {
            p: (list(c), np.cumsum(np.fromiter(c.values(), float))) for p, c in nxt.items()
        }

    def next_probs(self) -> dict[str, dict[str, float]]:
        return {p: {w: k / self.freq[p] for w, k in c.items()} for p, c in self.counts.items()}

    def sample(self, n_tokens: int, rng: np.random.Generator) -> str:
        out: list[str] = []
        prev = "\n"
        u = rng.random(n_tokens)
        for i in range(n_tokens):
            words, cum = self._table.get(prev) or self._table["\n"]
            tok = words[
                min(int(np.searchsorted(cum, u[i] * cum[-1], side="right")), len(words) - 1)
            ]
            out.append(tok)
            prev = tok
        text = " ".join(out)
        return re.sub(r" ([.,;:!?])", r"\1", text).replace(" \n ", "\n")

    def probe(self, prefixes: Counter[str], n_tokens: int, rng: np.random.Generator):
        """Black-box probing: ``n_tokens`` one-token samples after the given context words
        (spread in proportion to their counts); the lexical sites among the sampled
        tokens, as :class:`~linkage.respond.watermark.TextOpportunities`."""
        total = sum(prefixes.values())
        ctx: list[int] = []
        member: list[int] = []
        group: list[int] = []
        used = 0
        for w, c in prefixes.most_common():
            k = max(1, round(n_tokens * c / total))
            k = min(k, n_tokens - used)
            if k <= 0:
                break
            used += k
            entry = self._table.get(w)
            if entry is None:
                continue
            words, cum = entry
            idx = np.searchsorted(cum, rng.random(k) * cum[-1], side="right")
            for i in np.minimum(idx, len(words) - 1):
                hit = WORD_INDEX.get(words[i])
                if hit is not None:
                    ctx.append(_lex_ctx(hit[0], w))
                    member.append(hit[1])
                    group.append(hit[0])
        return TextOpportunities(
            np.array(ctx, np.uint64), np.array(member, np.int8), used, np.array(group, np.int32)
        )


def probe_prefixes(originals: list[str]) -> Counter[str]:
    """The context words of the lexical sites of the cluster's *unperturbed* responses
    (what the provider served before watermarking: a key-independent choice of probes)."""
    return Counter(o.prev for t in originals for o in opportunities(t))


# ----------------------------------------------------------------------------- helpers


def _random_subs(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    return [
        tuple(int(x) for x in rng.integers(0, 2**63, 2, dtype=np.int64).astype(np.uint64))
        for _ in range(n)
    ]


def _score(stats, own: tuple[int, int], others: list[tuple[int, int]]) -> dict:
    """Own key's combined and per-channel z / log10 p; how many other keys pass 1e-6."""
    T, V = channel_sums(stats, [own, *others])
    tot = float(V.sum())
    z = T.sum(axis=1) / np.sqrt(tot) if tot > 0 else np.zeros(len(T))
    zc = np.where(V > 0, T / np.sqrt(np.where(V > 0, V, 1.0)), 0.0)
    lp = log_p_from_z(z) / np.log(10)
    return {
        "z": float(z[0]),
        "log10_p": float(lp[0]),
        "z_channels": {c: float(zc[0, i]) for i, c in enumerate(CHANNELS)},
        "false": int((lp[1:] < np.log10(ATTRIBUTION_P)).sum()),
        "tests": len(others),
        "null_z": z[1:],
    }


def _summary(rows: list[dict]) -> dict:
    att = sum(r["log10_p"] < np.log10(ATTRIBUTION_P) for r in rows)
    false = sum(r["false"] for r in rows)
    tests = sum(r["tests"] for r in rows)
    return {
        "attributed": rate(att, len(rows)),
        "z_median": float(np.median([r["z"] for r in rows])),
        "z_min": float(np.min([r["z"] for r in rows])),
        "log10_p_median": float(np.median([r["log10_p"] for r in rows])),
        "z_channels_median": {
            c: float(np.median([r["z_channels"][c] for r in rows])) for c in CHANNELS
        },
        "false_attribution": rate(false, tests),
    }


# ----------------------------------------------------------------------------- experiments


def dilution(args: argparse.Namespace, log) -> dict:
    """200 watermarked responses inside corpora that are 90 % / 75 % other text."""
    n_wm = args.dilution_wm
    pool = responses(args.pool, seed=args.seed + 31)
    pool_ops = [text_opportunities(t) for t in pool]
    fresh = responses(n_wm * args.trials, seed=args.seed + 32)
    rng = np.random.default_rng(args.seed + 33)
    out: dict = {"watermarked": n_wm, "strength": args.strength, "trials": args.trials}
    wm_ops = []
    for i in range(args.trials):
        key = bench_key(args.seed + 300, i)
        wm_ops.append(
            [
                text_opportunities(perturb(t, args.strength, key))
                for t in fresh[i * n_wm : (i + 1) * n_wm]
            ]
        )
    for total in (2000, 800):
        rows, nulls = [], []
        for i in range(args.trials):
            own = subkeys(bench_key(args.seed + 300, i))
            idx = rng.choice(len(pool_ops), total - n_wm, replace=False)
            st = stats_from_opportunities(wm_ops[i] + [pool_ops[j] for j in idx])
            rows.append(_score(st, own, _random_subs(rng, args.random_keys)))
            idx = rng.choice(len(pool_ops), total, replace=False)
            st = stats_from_opportunities([pool_ops[j] for j in idx])
            nulls.append(_score(st, own, _random_subs(rng, args.random_keys)))
        name = f"{1 - n_wm / total:.0%}_other"
        out[name] = {"corpus_size": total, **_summary(rows)}
        out[name + "_clean"] = {
            "corpus_size": total,
            "false_attribution_own_key": rate(
                sum(r["log10_p"] < np.log10(ATTRIBUTION_P) for r in nulls), len(nulls)
            ),
            "false_attribution": rate(
                sum(r["false"] for r in nulls), sum(r["tests"] for r in nulls)
            ),
        }
        log(name, json.dumps(out[name]))
    return out


def canonicalisation(args: argparse.Namespace, log) -> dict:
    """Watermarked corpora after the attacker's synonym canonicalisation (and, stronger,
    with every contraction expanded as well)."""
    sizes = (200, 500, 1000)
    big = max(sizes)
    texts = responses(big * args.trials, seed=args.seed + 41)
    rng = np.random.default_rng(args.seed + 42)
    res: dict = {
        "strength": args.strength,
        "trials": args.trials,
        "synonym_groups": len(ATTACKER_SYNONYMS),
    }
    rows: dict[str, dict[int, list]] = {"canonical": {}, "canonical+expanded": {}, "none": {}}
    for i in range(args.trials):
        key = bench_key(args.seed + 400, i)
        own = subkeys(key)
        wm = [perturb(t, args.strength, key) for t in texts[i * big : (i + 1) * big]]
        variants = {
            "none": wm,
            "canonical": [canonicalise(t) for t in wm],
        }
        variants["canonical+expanded"] = [expand_contractions(t) for t in variants["canonical"]]
        for name, vt in variants.items():
            ops = [text_opportunities(t) for t in vt]
            for n in sizes:
                st = stats_from_opportunities(ops[:n])
                rows[name].setdefault(n, []).append(
                    _score(st, own, _random_subs(rng, args.random_keys))
                )
    for name, by_n in rows.items():
        res[name] = {str(n): _summary(r) for n, r in by_n.items()}
        log(
            "canonicalisation",
            name,
            json.dumps({n: v["attributed"]["rate"] for n, v in res[name].items()}),
        )
    return res


def radioactivity(args: argparse.Namespace, log) -> dict:
    """Students (word bigram models) trained on corpora where the cluster's watermarked
    outputs are a minority; tested white-box (next-token preferences) and black-box
    (``--student-tokens`` sampled tokens)."""
    n_docs = args.student_docs
    pool = responses(args.pool, seed=args.seed + 51)
    rng = np.random.default_rng(args.seed + 52)
    res: dict = {
        "student": "word bigram, maximum likelihood",
        "training_responses": n_docs,
        "sampled_tokens": args.student_tokens,
        "strength": args.strength,
        "trials": args.student_trials,
    }

    def test_student(corpus: list[str], originals: list[str], own: tuple[int, int]):
        s = BigramStudent(corpus)
        probes = probe_prefixes(originals)
        others = _random_subs(rng, args.random_keys)
        # white-box: the student's preferences at the context words of the cluster's
        # responses, each counted as often as the student saw it in training
        pref = preference_stats(s.next_probs(), weight={w: s.freq.get(w, 0.0) for w in probes})
        sample = s.sample(args.student_tokens, rng)
        samp = stats_from_opportunities([text_opportunities(sample)])
        probed = stats_from_opportunities([s.probe(probes, args.student_tokens, rng)])
        return (
            _score(pref, own, others),
            _score(samp, own, others),
            _score(probed, own, others),
        )

    modes = ("preferences", "sampled", "probed")
    for share in (0.10, 0.05, 0.01):
        k = max(1, round(share * n_docs))
        rows: dict[str, list] = {m: [] for m in modes}
        for i in range(args.student_trials):
            key = bench_key(args.seed + 500 + int(share * 1000), i)
            idx = rng.choice(len(pool), n_docs, replace=False)
            docs = [pool[j] for j in idx]
            corpus = [perturb(t, args.strength, key) for t in docs[:k]] + docs[k:]
            for m, r in zip(modes, test_student(corpus, docs[:k], subkeys(key)), strict=True):
                rows[m].append(r)
        res[f"{share:.0%}"] = {"watermarked_responses": k} | {m: _summary(rows[m]) for m in modes}
        log(
            "student",
            f"{share:.0%}",
            *(
                f"{m} {res[f'{share:.0%}'][m]['attributed']['k']}/{args.student_trials} "
                f"z~{res[f'{share:.0%}'][m]['z_median']:.2f}"
                for m in modes
            ),
        )
    nulls: dict[str, list] = {m: [] for m in modes}
    for i in range(args.student_trials):
        key = bench_key(args.seed + 599, i)
        idx = rng.choice(len(pool), n_docs + 200, replace=False)
        # a clean student; the "cluster" responses it is probed with were never in its data
        corpus, originals = [pool[j] for j in idx[:n_docs]], [pool[j] for j in idx[n_docs:]]
        for m, r in zip(modes, test_student(corpus, originals, subkeys(key)), strict=True):
            nulls[m].append(r)
    allr = [r for m in modes for r in nulls[m]]
    res["clean_students"] = {m: _summary(nulls[m])["false_attribution"] for m in modes} | {
        "own_key_attributed": rate(
            sum(r["log10_p"] < np.log10(ATTRIBUTION_P) for r in allr), len(allr)
        ),
        "null_z_sd": float(np.concatenate([r["null_z"] for r in allr]).std()),
    }
    return res


# ----------------------------------------------------------------------------- real documentation


def real_documents(max_chunks: int) -> list[str]:
    """Chunks (~60–250 words) of real documentation written by nobody here: the long
    descriptions of the installed packages, the standard library's module docstrings and
    the system's licence texts."""
    import importlib
    import pkgutil
    from importlib import metadata

    raw: list[str] = []
    for d in sorted(metadata.distributions(), key=lambda d: d.metadata.get("Name") or ""):
        body = d.metadata.get_payload() if hasattr(d.metadata, "get_payload") else ""
        if isinstance(body, str) and body.strip():
            raw.append(body)
    for m in sorted(sys.stdlib_module_names):
        if m.startswith("_") or m in ("antigravity", "this", "idlelib", "turtledemo", "tkinter"):
            continue
        try:
            doc = importlib.import_module(m).__doc__
        except Exception:
            continue
        if doc:
            raw.append(doc)
    lic = Path("/usr/share/common-licenses")
    if lic.is_dir():
        for f in sorted(lic.iterdir()):
            if f.is_file():
                raw.append(f.read_text(errors="replace"))
    del pkgutil
    out: list[str] = []
    for text in raw:
        buf: list[str] = []
        n = 0
        for para in re.split(r"\n\s*\n", text):
            buf.append(para)
            n += len(para.split())
            if n >= 60:
                out.append("\n\n".join(buf))
                buf, n = [], 0
        if n >= 20:
            out.append("\n\n".join(buf))
    return out[:max_chunks]


_PHRASE_NORM = [
    (re.compile(r"(?<![\w'-])" + re.escape(a) + r"(?![\w'-])", re.I), b) for a, b in PHRASES
]
_PROTECTED_TOKEN = re.compile(
    r"\S*(?:\w\.\w|\w\(|::|->)\S*|(?<![\w-])--?[A-Za-z][\w-]*|\b[A-Z][A-Z0-9_]+\b"
)


def content(text: str) -> Counter[str]:
    """A text's words up to the perturbation's allowed alternations (phrases, contractions,
    pair members, order): equal before and after means nothing was dropped or rewritten."""
    t = expand_contractions(text)
    for rx, b in _PHRASE_NORM:
        t = rx.sub(b, t)
    return Counter(
        f"#{WORD_INDEX[w][0]}" if w in WORD_INDEX else w
        for w in (x.lower() for x in WORD.findall(t))
    )


_FORM_WORDS = {w.lower() for f in FORMS for form in f for w in WORD.findall(form)}


def technical_tokens(text: str) -> Counter[str]:
    """Tokens that are code: dotted names and calls, options, words in capitals, and the
    words of the text's code spans wherever they occur (except the function words of the
    contraction forms: "is", "not", "do", …, which the form channel may contract)."""
    code_words = {
        w.lower() for s, e in code_intervals(text) for w in WORD.findall(text[s:e])
    } - _FORM_WORDS
    toks = Counter(_PROTECTED_TOKEN.findall(text))
    toks.update(w.lower() for w in WORD.findall(text) if w.lower() in code_words)
    return toks


def real_docs(args: argparse.Namespace, log) -> dict:
    docs = real_documents(args.real_docs)
    key = bench_key(args.seed, 9999)
    changed = tech_bad = content_bad = spans_bad = 0
    bad_examples: list[dict] = []
    for d in docs:
        out = perturb(d, 1.0, key)
        changed += out != d
        sb = not spans_ok(d, out)
        tb = technical_tokens(d) != technical_tokens(out)
        cb = content(d) != content(out)
        spans_bad += sb
        tech_bad += tb
        content_bad += cb
        if (tb or cb) and len(bad_examples) < 5:
            diff_t = (technical_tokens(d) - technical_tokens(out)) + (
                technical_tokens(out) - technical_tokens(d)
            )
            diff_c = (content(d) - content(out)) + (content(out) - content(d))
            bad_examples.append({"technical": dict(diff_t), "content": dict(diff_c)})
    ops = [text_opportunities(d) for d in docs]
    words = sum(o.n_words for o in ops)
    rng = np.random.default_rng(args.seed + 61)
    n_corpus = min(200, max(1, len(docs) // 4))
    nulls = []
    for _ in range(20):
        idx = rng.choice(len(docs), n_corpus, replace=False)
        st = stats_from_opportunities([ops[j] for j in idx])
        nulls.append(_score(st, _random_subs(rng, 1)[0], _random_subs(rng, args.random_keys)))
    wm_rows = []
    for i in range(20):
        k2 = bench_key(args.seed + 700, i)
        idx = rng.choice(len(docs), n_corpus, replace=False)
        st = stats_from_opportunities(
            [text_opportunities(perturb(docs[j], args.strength, k2)) for j in idx]
        )
        wm_rows.append(_score(st, subkeys(k2), _random_subs(rng, args.random_keys)))
    res = {
        "chunks": len(docs),
        "words": words,
        "sites_per_100_words": {
            c: 100 * sum(int((channel_of_groups(o.group) == i).sum()) for o in ops) / max(1, words)
            for i, c in enumerate(CHANNELS)
        },
        "perturbed_at_strength_1": changed,
        "protected_spans_changed": spans_bad,
        "technical_tokens_changed": tech_bad,
        "content_changed": content_bad,
        "examples": bad_examples,
        "corpus_size": n_corpus,
        "clean_false_attribution": rate(
            sum(r["false"] for r in nulls)
            + sum(r["log10_p"] < np.log10(ATTRIBUTION_P) for r in nulls),
            sum(r["tests"] + 1 for r in nulls),
        ),
        "watermarked": _summary(wm_rows),
    }
    log("real docs", json.dumps({k: v for k, v in res.items() if k != "examples"}))
    return res


def channel_of_groups(g: np.ndarray) -> np.ndarray:
    from linkage.respond.watermark import channel_of

    return channel_of(g)


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
    lines += extra_report(res, pct)
    return "\n".join(lines)


def extra_report(res: dict, pct) -> list[str]:
    def zc(r: dict) -> str:
        return " / ".join(f"{r['z_channels_median'][c]:.2f}" for c in CHANNELS)

    out: list[str] = []
    d = res.get("dilution")
    if d:
        out += [
            "",
            f"**Dilution**: {d['watermarked']} watermarked responses (strength {d['strength']}) "
            f"inside a larger corpus of other responses, {d['trials']} trials",
            "",
            "| other text | corpus | attributed (95% CI) | median z | min z | median z lexical / form / order | false attribution, other keys | clean corpus, own key |",
            "|---:|---:|---|---:|---:|---|---|---|",
        ]
        for name in ("90%_other", "75%_other"):
            r, c = d[name], d[name + "_clean"]
            out.append(
                f"| {name.split('_')[0]} | {r['corpus_size']} | {pct(r['attributed'])} | "
                f"{r['z_median']:.2f} | {r['z_min']:.2f} | {zc(r)} | "
                f"{pct(r['false_attribution'])} | {pct(c['false_attribution_own_key'])} |"
            )
    c = res.get("canonicalisation")
    if c:
        out += [
            "",
            f"**Synonym canonicalisation** ({c['synonym_groups']} synonym groups mapped to one "
            f"word each), strength {c['strength']}, {c['trials']} trials per size",
            "",
            "| attack | N | attributed (95% CI) | median z | median z lexical / form / order | false attribution (95% CI) |",
            "|---|---:|---|---:|---|---|",
        ]
        for name in ("none", "canonical", "canonical+expanded"):
            for n, r in c[name].items():
                out.append(
                    f"| {name} | {n} | {pct(r['attributed'])} | {r['z_median']:.2f} | {zc(r)} | "
                    f"{pct(r['false_attribution'])} |"
                )
    r = res.get("radioactivity")
    if r:
        out += [
            "",
            f"**Radioactivity**: a {r['student']} student trained on {r['training_responses']:,} "
            f"responses of which a share is the cluster's watermarked outputs (strength "
            f"{r['strength']}), {r['trials']} students per share; *preferences* = the "
            "student's next-token probabilities at the context words of the cluster's "
            f"responses (white box); *sampled* = {r['sampled_tokens']:,} tokens of free "
            f"sampling; *probed* = {r['sampled_tokens']:,} one-token samples after those "
            "context words (black box)",
            "",
            "| share | mode | attributed (95% CI) | median z | median log10 p | false attribution (95% CI) |",
            "|---:|---|---|---:|---:|---|",
        ]
        for share in ("10%", "5%", "1%"):
            for mode in ("preferences", "sampled", "probed"):
                x = r[share][mode]
                out.append(
                    f"| {share} | {mode} | {pct(x['attributed'])} | {x['z_median']:.2f} | "
                    f"{x['log10_p_median']:.1f} | {pct(x['false_attribution'])} |"
                )
        cs = r["clean_students"]
        out.append(
            f"\nclean students (never saw a watermarked response): own key attributed "
            f"{pct(cs['own_key_attributed'])}; other keys: "
            + "; ".join(f"{m} {pct(cs[m])}" for m in ("preferences", "sampled", "probed"))
            + f"; null z sd {cs['null_z_sd']:.3f}"
        )
    rd = res.get("real_documents")
    if rd:
        sites = ", ".join(f"{k} {v:.2f}" for k, v in rd["sites_per_100_words"].items())
        out += [
            "",
            f"**Real documentation** ({rd['chunks']:,} chunks, {rd['words']:,} words: installed "
            f"packages' descriptions, standard-library docstrings, licences; sites per 100 "
            f"words: {sites})",
            "",
            f"- perturbed at strength 1.0: {rd['perturbed_at_strength_1']:,} chunks changed; "
            f"protected spans changed in {rd['protected_spans_changed']}, technical tokens "
            f"(dotted names, calls, options, capitals, words of the text's code) changed in "
            f"{rd['technical_tokens_changed']}, content changed beyond the allowed alternations "
            f"in {rd['content_changed']}",
            f"- clean corpora of {rd['corpus_size']} chunks, false attribution "
            f"{pct(rd['clean_false_attribution'])}",
            f"- watermarked corpora of {rd['corpus_size']} chunks (strength "
            f"{res['settings']['strength']}): attributed {pct(rd['watermarked']['attributed'])}, "
            f"median z {rd['watermarked']['z_median']:.2f} (lexical / form / order "
            f"{zc(rd['watermarked'])}), false attribution "
            f"{pct(rd['watermarked']['false_attribution'])}",
        ]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", type=int, default=50)
    ap.add_argument("--corpus-size", type=int, default=1000)
    ap.add_argument("--random-keys", type=int, default=50)
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--attack-share", type=float, default=0.2)
    ap.add_argument("--budget-sample", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--trials", type=int, default=40, help="dilution / canonicalisation trials")
    ap.add_argument("--pool", type=int, default=6000, help="clean responses to mix from")
    ap.add_argument("--dilution-wm", type=int, default=200)
    ap.add_argument("--student-docs", type=int, default=2000)
    ap.add_argument("--student-tokens", type=int, default=10_000)
    ap.add_argument("--student-trials", type=int, default=20)
    ap.add_argument("--real-docs", type=int, default=4000, help="max real-documentation chunks")
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
