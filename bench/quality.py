"""One quality suite: the engine beside the four peers on every world family we have.

```bash
python -m bench.quality                      # own unseen seeds, red-team worlds, ../shared/external/*
python -m bench.quality --quick              # the CI smoke: two tiny worlds, no external data
python -m bench.quality --dataset DIR ...    # add any labelled dataset directory
python -m bench.quality --lofo               # leave-one-family-out for the supervised model
```

For every dataset and both modes it reports, per method (the engine and the peers
``rules``, ``components``, ``louvain``, ``fraudar``): AP, ROC AUC, recall at 1% FPR,
block precision / recall, the worst legit population's block rate, the weakest farm
campaign's block recall, the pair recall of farm campaigns (same-campaign account pairs
that share a cluster) and the purity of flagged clustered accounts.

Modes:

* ``oob`` (out of the box): no labels used; the engine's default score, the peers'
  own scores and levels.
* ``labels`` (with the owner's labels): the labelled groups are split in two halves
  by a seeded hash of the group name (never by account; ungrouped accounts are their
  own group); ``linkage train``'s fit runs on the first half, everything is reported on
  the second. Peers get the same help: their block / review thresholds are set on
  the first half (1% / 5% legit false-positive rate) and their ranking is unchanged.

Data in ``../shared/external`` is **validation only**: the suite reports it and
nothing is fitted or chosen on it. Outputs: ``bench/results/quality.json`` and
``quality.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "external"
METHODS = ("linkage", "rules", "components", "louvain", "fraudar")
# labels mode: the engine out of the box on the same reporting half (the labels' baseline)
NO_LABELS_SAME_HALF = "linkage, no labels (same half)"
MODES = ("oob", "labels")

log = logging.getLogger("bench.quality")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: str  # own | redteam | external | user
    path: Path | None = None  # existing dataset directory
    scale: float = 0.0  # generated worlds
    seed: int = 0


def default_specs(*, quick: bool, external: bool, full: bool = False) -> list[DatasetSpec]:
    if quick:
        return [
            DatasetSpec("own s0.03 seed 1", "own", scale=0.03, seed=1),
            DatasetSpec("redteam s0.03 seed 1", "redteam", scale=0.03, seed=1),
        ]
    own_scale, rt_scale = (0.3, 0.3) if full else (0.1, 0.1)
    specs = [
        DatasetSpec(f"own s{own_scale} seed {s}", "own", scale=own_scale, seed=s) for s in (1, 2)
    ] + [
        DatasetSpec(f"redteam s{rt_scale} seed {s}", "redteam", scale=rt_scale, seed=s)
        for s in (1, 2)
    ]
    if external and EXTERNAL.is_dir():
        specs += [
            DatasetSpec(f"external {d.name}", "external", path=d)
            for d in sorted(EXTERNAL.iterdir())
            if d.is_dir()
        ]
    return specs


def ensure_dataset(spec: DatasetSpec, cache: Path) -> Path:
    """The dataset directory of ``spec`` (generated worlds are cached as Parquet)."""
    if spec.path is not None:
        return spec.path
    from linkage.fixtures.io import write_world

    d = cache / f"{spec.family}-s{spec.scale:g}-seed{spec.seed}"
    if (d / ".complete").exists():
        return d
    if spec.family == "own":
        from linkage.fixtures.world import make_world

        tables = make_world(scale=spec.scale, seed=spec.seed)
    elif spec.family == "redteam":
        from linkage.fixtures.redteam import make_redteam_world

        tables = make_redteam_world(scale=spec.scale, seed=spec.seed)
    else:
        raise ValueError(f"cannot generate a dataset of family {spec.family!r}")
    write_world(tables, d, fmt="parquet")
    (d / ".complete").write_text("")
    return d


# -- splitting labels by group -------------------------------------------------


def group_keys(labels: pd.DataFrame) -> pd.Series:
    """account_id -> its labelled group, or ``acct:<id>`` for an ungrouped account."""
    lab = labels.assign(account_id=labels["account_id"].astype(str)).drop_duplicates("account_id")
    grp = (
        lab["group"].astype("string")
        if "group" in lab.columns
        else pd.Series(pd.NA, index=lab.index, dtype="string")
    )
    key = grp.where(grp.notna() & (grp != ""), "acct:" + lab["account_id"]).astype(str)
    return pd.Series(key.to_numpy(), index=lab["account_id"].to_numpy())


def group_halves(labels: pd.DataFrame, *, seed: int = 0) -> pd.Series:
    """account_id -> 0/1 half, by group (never by account; ungrouped: each account alone).

    Farm groups and legit groups are dealt out separately and alternately in the order of
    a seeded CRC of their names, so each half gets half of the campaigns even when a world
    has only two or three of them.
    """
    lab = labels.assign(account_id=labels["account_id"].astype(str)).drop_duplicates("account_id")
    key = pd.Series(group_keys(labels).to_numpy(), index=lab.index)
    farm = pd.to_numeric(lab["is_farm"], errors="coerce").fillna(0).astype(int)
    half = pd.Series(0, index=lab.index, dtype=np.int64)
    for cls in (0, 1):
        keys = pd.unique(key[farm == cls])
        order = sorted(keys, key=lambda k: (zlib.crc32(f"{seed}:{k}".encode()), k))
        start = zlib.crc32(f"{seed}:start:{cls}".encode()) & 1
        side = {k: (start + i) % 2 for i, k in enumerate(order)}
        sel = farm == cls
        half[sel] = key[sel].map(side).to_numpy()
    return pd.Series(half.to_numpy(dtype=np.int64), index=lab["account_id"].to_numpy())


def _threshold_at_fpr(score: np.ndarray, y: np.ndarray, fpr: float) -> float:
    """Smallest threshold whose legit false-positive rate on (score, y) is <= fpr."""
    legit = np.sort(score[y == 0])
    if not len(legit):
        return float(np.min(score)) if len(score) else 0.5
    k = math.floor(fpr * len(legit))
    # flag score >= t; allow at most k legit at or above t
    t = legit[len(legit) - k - 1] if k < len(legit) else legit[0]
    return float(np.nextafter(t, np.inf))


def relevel(score_train: np.ndarray, y_train: np.ndarray, score_test: np.ndarray) -> np.ndarray:
    """Levels for ``score_test`` with thresholds chosen on the training half (1% / 5% FPR)."""
    block = _threshold_at_fpr(score_train, y_train, 0.01)
    review = min(_threshold_at_fpr(score_train, y_train, 0.05), block)
    return np.where(score_test >= block, "block", np.where(score_test >= review, "review", "clear"))


# -- one dataset -----------------------------------------------------------------


def _summary(rep: Any) -> dict[str, Any]:
    from linkage.evaluate import legit_flag_rate_max

    legit = [p for p in rep.populations if not p.grey and p.n_farm == 0]
    worst = max(legit, key=lambda p: p.block_rate, default=None)
    weakest = min(rep.groups, key=lambda g: g.block_recall, default=None)
    return {
        "ap": rep.ap,
        "roc_auc": rep.roc_auc,
        "recall_at_1pct_fpr": rep.recall_at_fpr,
        "block_precision": rep.block_precision,
        "block_recall": rep.block_recall,
        "flag_precision": rep.flag_precision,
        "flag_recall": rep.flag_recall,
        "worst_legit_block": legit_flag_rate_max(rep) if legit else math.nan,
        "worst_legit_population": worst.population if worst else None,
        "weakest_campaign_block_recall": weakest.block_recall if weakest else math.nan,
        "weakest_campaign": weakest.group if weakest else None,
        "pair_recall": rep.pair_recall,
        "flagged_purity": rep.flagged_purity,
        "n_evaluated": rep.n_evaluated,
        "n_farm": rep.n_farm,
        "populations": {
            p.population: {"n": p.n, "block": p.block_rate, "flag": p.flag_rate}
            for p in rep.populations
        },
        "groups": {
            g.group: {"n": g.n, "block": g.block_recall, "flag": g.flag_recall} for g in rep.groups
        },
    }


def run_dataset(
    path: Path,
    *,
    methods: tuple[str, ...] = METHODS,
    modes: tuple[str, ...] = MODES,
    seed: int = 0,
    score_model: str = "coordination",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every method in every mode on one labelled dataset directory."""
    from linkage.baselines import run_baseline
    from linkage.evaluate import evaluate
    from linkage.pipeline import prepare, score_prepared
    from linkage.score.train import fit_frame
    from linkage.settings import Settings

    settings = Settings(seed=seed)
    settings = settings.model_copy(
        update={"score": settings.score.model_copy(update={"model": score_model})}
    )
    t0 = time.perf_counter()
    prep = prepare(path, settings=settings, keep_prompts=False)
    labels = prep.dataset.labels
    if labels is None:
        raise ValueError(f"{path} has no labels table")
    t_prep = time.perf_counter() - t0
    outputs: dict[str, pd.DataFrame] = {}
    timings: dict[str, float] = {}
    for m in methods:
        t1 = time.perf_counter()
        if m == "linkage":
            sc = score_prepared(prep, settings=settings)
            outputs[m] = sc.accounts[["account_id", "score", "level", "cluster_id"]].copy()
        else:
            outputs[m] = run_baseline(
                m, edges=prep.ids.edges, features=prep.ids.features, seed=seed
            )
        timings[m] = round(time.perf_counter() - t1 + (t_prep if m == "linkage" else 0.0), 2)
        if progress:
            progress(f"  {m}: {timings[m]:.1f} s")

    result: dict[str, Any] = {"timings_s": timings, "prepare_s": round(t_prep, 2), "modes": {}}
    if "oob" in modes:
        result["modes"]["oob"] = {m: _summary(evaluate(o, labels)) for m, o in outputs.items()}
    if "labels" in modes:
        half = group_halves(labels, seed=seed)
        lab = labels.assign(account_id=labels["account_id"].astype(str)).drop_duplicates(
            "account_id"
        )
        pop = lab.set_index("account_id")["population"].astype("string").fillna("")
        y_all = pd.to_numeric(lab.set_index("account_id")["is_farm"], errors="coerce")
        res: dict[str, Any] = {}
        for m, o in outputs.items():
            o = o.assign(account_id=o["account_id"].astype(str))
            h = half.reindex(o["account_id"]).to_numpy()
            y = y_all.reindex(o["account_id"]).to_numpy()
            grey = pop.reindex(o["account_id"]).fillna("").str.startswith("grey").to_numpy()
            train = (h == 0) & ~np.isnan(y) & ~grey
            if m == "linkage":
                X = prep.X
                idx = X.index.astype(str)
                tr = pd.Series(train, index=o["account_id"]).reindex(idx).fillna(False).to_numpy()
                yy = pd.Series(y, index=o["account_id"]).reindex(idx).to_numpy()
                if len(np.unique(yy[tr])) < 2:
                    continue
                # folds by the owner's groups (campaigns), as `linkage train` does: by
                # cluster, one campaign's clusters vouched for each other's residual
                groups = group_keys(labels).reindex(idx).to_numpy(dtype=object)[tr]
                model = fit_frame(prep, tr, yy[tr].astype(int), settings=settings, groups=groups)
                sc = score_prepared(prep, settings=settings, model=model)
                scored = sc.accounts[["account_id", "score", "level", "cluster_id"]].copy()
            else:
                if len(np.unique(y[train])) < 2:
                    continue
                s = o["score"].to_numpy(dtype=float)
                scored = o.copy()
                scored["level"] = relevel(s[train], y[train].astype(int), s)
            in_test = half.reindex(scored["account_id"].astype(str)).to_numpy() == 1
            scored = scored.loc[in_test]
            res[m] = _summary(evaluate(scored, labels))
            if m == "linkage":
                # the same half without labels: what the labels changed, on the same accounts
                res[NO_LABELS_SAME_HALF] = _summary(evaluate(o.loc[h == 1], labels))
        result["modes"]["labels"] = res
    if "curve" in modes:
        result["curve"] = learning_curve(prep, labels, settings=settings, seed=seed)
    return result


CURVE_POINTS: tuple[int, ...] = (0, 5, 10, 20)  # labelled groups
CURVE_BATCH = 5  # groups labelled between two refits (one analyst session)
RANDOM_SEEDS = (0, 1, 2)
_CURVE_KEYS = ("ap", "roc_auc", "block_recall", "worst_legit_block", "worst_legit_population")


@dataclass
class _Truth:
    """Ground truth of one prepared dataset, aligned with ``prep.X`` (vertex order)."""

    y: np.ndarray  # 0/1, NaN unlabelled
    key: np.ndarray  # labelled group (acct:<id> alone, cluster:<id> for those reviewed together)
    usable: np.ndarray  # training half, labelled, not grey: what the analyst may label
    test: np.ndarray  # held-out half
    cluster: np.ndarray  # cluster id per account (None unclustered)
    cluster_group: dict[str, str]  # candidate cluster -> the group an analyst would label


def _truth(prep: Any, labels: pd.DataFrame, *, seed: int) -> _Truth:
    half = group_halves(labels, seed=seed)
    lab = (
        labels.assign(account_id=labels["account_id"].astype(str))
        .drop_duplicates("account_id")
        .set_index("account_id")
    )
    idx = prep.X.index.astype(str)
    lab = lab.reindex(idx)
    y = pd.to_numeric(lab["is_farm"], errors="coerce").to_numpy()
    pop = lab["population"] if "population" in lab.columns else pd.Series("", index=idx)
    grey = pop.astype("string").fillna("").str.startswith("grey").to_numpy()
    key = group_keys(labels).reindex(idx).astype(str).to_numpy()
    h = half.reindex(idx).to_numpy()
    usable = (h == 0) & ~np.isnan(y) & ~grey
    cl = prep.clustering
    cluster = np.array([*cl.cluster_ids, None], dtype=object)[cl.cluster]
    ok = usable & pd.notna(cluster)
    # accounts of no labelled group that an analyst reviews in one cluster are labelled
    # together: one group, ``cluster:<id>`` (for the labels' CV too)
    alone = ok & pd.Series(key).str.startswith("acct:").to_numpy()
    key = key.copy()
    key[alone] = "cluster:" + cluster[alone].astype(str)
    # the analyst labels the group most of the cluster's (labellable) members belong to
    cg = (
        pd.DataFrame({"c": cluster[ok].astype(str), "g": key[ok]})
        .groupby("c")["g"]
        .agg(lambda s: sorted(s.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[0][0])
    )
    return _Truth(y, key, usable, h == 1, cluster, cg.to_dict())


def _fit_point(
    prep: Any, truth: _Truth, groups: list[str], *, settings: Any
) -> tuple[Any, dict[str, Any]]:
    """The labelled model on the training-half accounts of ``groups`` (CV-chosen C)."""
    from linkage.score.labels import fit_with_labels
    from linkage.score.model import load_model

    base = load_model(settings.score)
    tr = truth.usable & np.isin(truth.key, list(groups))
    info: dict[str, Any] = {"groups": len(groups), "accounts": int(tr.sum())}
    yy = truth.y[tr].astype(int)
    info["farm_groups"] = len(set(truth.key[tr & (truth.y == 1)]))
    if not groups or len(np.unique(yy)) < 2:
        info["C"] = None
        info["cv"] = "no labels" if not groups else "one class only: no residual"
        return base, info
    model, cv = fit_with_labels(
        prep.X.loc[tr], yy, truth.key[tr], base=base, reference=prep.X, seed=settings.seed
    )
    info["C"] = cv.C
    info["cv"] = cv.reason
    return model, info


def _eval_point(prep: Any, labels: pd.DataFrame, truth: _Truth, model: Any, *, settings: Any):
    from linkage.evaluate import evaluate
    from linkage.pipeline import score_prepared

    sc = score_prepared(prep, settings=settings, model=model)
    scored = sc.accounts[["account_id", "score", "level", "cluster_id"]].loc[truth.test]
    s_ = _summary(evaluate(scored, labels))
    return sc, {k: s_[k] for k in _CURVE_KEYS}


def _queue_groups(
    prep: Any, labels: pd.DataFrame, truth: _Truth, *, settings: Any
) -> list[dict[str, Any]]:
    """Simulated analyst: label the queue's top clusters' groups, refit every batch."""
    from linkage.score.queue import review_queue

    groups: list[str] = []
    seen: set[str] = set()
    model, info = _fit_point(prep, truth, groups, settings=settings)
    sc, metrics = _eval_point(prep, labels, truth, model, settings=settings)
    out = [{"strategy": "queue", **info, **metrics}]
    non_candidates = {str(c) for c in pd.unique(truth.cluster[pd.notna(truth.cluster)])} - set(
        truth.cluster_group
    )
    while len(groups) < max(CURVE_POINTS):
        target = len(groups) + CURVE_BATCH
        labelled_acc = truth.usable & np.isin(truth.key, groups)
        done = {str(c) for c in pd.unique(truth.cluster[labelled_acc & pd.notna(truth.cluster)])}
        q = review_queue(
            sc, model, exclude=seen | done | non_candidates, k=len(truth.cluster_group)
        )
        for cid in q["cluster_id"].astype(str):
            if len(groups) >= target:
                break
            seen.add(cid)
            g = truth.cluster_group[cid]
            if g not in groups:
                groups.append(g)
        dry = len(groups) < target  # the queue ran out of clusters to label
        model, info = _fit_point(prep, truth, groups, settings=settings)
        sc, metrics = _eval_point(prep, labels, truth, model, settings=settings)
        if len(groups) in CURVE_POINTS or dry:
            out.append({"strategy": "queue", **info, **metrics})
        if dry:
            break
    return out


def _random_groups(
    prep: Any, labels: pd.DataFrame, truth: _Truth, *, settings: Any
) -> list[dict[str, Any]]:
    """The same analyst labelling clusters in a random order (mean over seeds)."""
    cands = sorted(truth.cluster_group)
    runs: dict[int, list[dict[str, Any]]] = {}
    for rs in RANDOM_SEEDS:
        order = np.random.default_rng(rs).permutation(len(cands))
        groups: list[str] = []
        for i in order:
            g = truth.cluster_group[cands[i]]
            if g not in groups:
                groups.append(g)
        for k in CURVE_POINTS:
            if k > len(groups) and k != CURVE_POINTS[0]:
                continue
            model, info = _fit_point(prep, truth, groups[:k], settings=settings)
            _, metrics = _eval_point(prep, labels, truth, model, settings=settings)
            runs.setdefault(k, []).append({**info, **metrics})
    out = []
    for k, pts in sorted(runs.items()):
        mean = {
            key: float(np.nanmean([p[key] for p in pts]))
            for key in ("ap", "roc_auc", "block_recall", "worst_legit_block", "accounts")
        }
        out.append(
            {
                "strategy": f"random (mean of {len(pts)})",
                "groups": k,
                "farm_groups": float(np.mean([p["farm_groups"] for p in pts])),
                "ap_min": float(np.min([p["ap"] for p in pts])),
                "residual_kept": sum(p["C"] is not None for p in pts),
                "worst_legit_population": pts[0]["worst_legit_population"],
                **mean,
            }
        )
    return out


def learning_curve(
    prep: Any, labels: pd.DataFrame, *, settings: Any, seed: int = 0
) -> list[dict[str, Any]]:
    """The engine with the labels of 0, 5, 10 and 20 groups, chosen by the review queue
    and, beside it, at random.

    Groups are split in halves (:func:`group_halves`); the analyst labels groups of the
    first half only and everything is reported on the second. *Queue*: the analyst takes
    the review queue's top clusters (:mod:`linkage.score.queue`, clusters of the held-out
    half and clusters with no usable label left out), labels the group most of each
    cluster's members belong to (all its first-half accounts; the cluster's accounts of no
    labelled group together count as one group), and the model is refitted
    (:func:`linkage.score.labels.fit_with_labels`, penalty by CV over the labelled groups,
    "no residual" included) after every :data:`CURVE_BATCH` groups, the next queue coming
    from the refitted scores. *Random*: the same analyst takes clusters in a random order
    (mean over :data:`RANDOM_SEEDS`). Last, the labels of every group of the first half
    at once (what the suite's ``labels`` mode gives the peers).
    """
    truth = _truth(prep, labels, seed=seed)
    every = sorted(set(truth.key[truth.usable]))
    model, info = _fit_point(prep, truth, every, settings=settings)
    _, metrics = _eval_point(prep, labels, truth, model, settings=settings)
    return [
        *_queue_groups(prep, labels, truth, settings=settings),
        *_random_groups(prep, labels, truth, settings=settings),
        {"strategy": "every group of the half", **info, **metrics},
    ]


# -- rendering -------------------------------------------------------------------


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}"


def _pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.1f}%"


def render_markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# Quality suite ({res['created_at']}, commit {res.get('commit', '?')}, "
        f"engine model `{res.get('score_model', 'coordination')}`)",
        "",
        "Every row as measured, low ones included. `oob` = out of the box (no labels); "
        "`labels` = trained on the labels of half the groups, scored on the other half "
        f"(`{NO_LABELS_SAME_HALF}`: the default score on that half, the labels' baseline). "
        "worst legit = highest block rate over legit populations; weakest campaign = lowest "
        "block recall over farm groups; pair R = same-campaign pairs sharing a cluster; "
        "purity = farm share of flagged clustered accounts. External data: validation only.",
        "",
        "| dataset | mode | method | AP | ROC AUC | R@1%FPR | block P / R | worst legit block | weakest campaign R | pair R | purity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ds in res["datasets"]:
        if "error" in ds:
            lines.append(f"| {ds['name']} | – | – | error: {ds['error']} | | | | | | | |")
            continue
        for mode, per in ds["modes"].items():
            for m, s in per.items():
                name = f"**{m}**" if m == "linkage" else m
                lines.append(
                    f"| {ds['name']} | {mode} | {name} | {_f(s['ap'])} | {_f(s['roc_auc'])} | "
                    f"{_f(s['recall_at_1pct_fpr'])} | {_f(s['block_precision'])} / {_f(s['block_recall'])} | "
                    f"{_pct(s['worst_legit_block'])} ({s['worst_legit_population'] or '–'}) | "
                    f"{_f(s['weakest_campaign_block_recall'])} ({s['weakest_campaign'] or '–'}) | "
                    f"{_f(s['pair_recall'])} | {_f(s['flagged_purity'])} |"
                )
    curves = [d for d in res["datasets"] if d.get("curve")]
    if curves:
        lines += [
            "",
            "## Learning curve (engine; labels of k groups of the training half, chosen by the "
            "review queue or at random; scored on the other half)",
            "",
            "| dataset | strategy | labelled groups (farm) | accounts | C kept | AP | ROC AUC | "
            "block R | worst legit block |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for d in curves:
            for pt in d["curve"]:
                kept = (
                    f"{pt['residual_kept']}/{len(RANDOM_SEEDS)}"
                    if "residual_kept" in pt
                    else ("–" if pt.get("C") is None else f"{pt['C']:g}")
                )
                ap = _f(pt["ap"]) + (f" (min {_f(pt['ap_min'])})" if "ap_min" in pt else "")
                lines.append(
                    f"| {d['name']} | {pt['strategy']} | {pt['groups']} ({_f(pt['farm_groups'], 1)}) | "
                    f"{pt['accounts']:.0f} | {kept} | {ap} | {_f(pt['roc_auc'])} | "
                    f"{_f(pt['block_recall'])} | {_pct(pt['worst_legit_block'])} |"
                )
    if res.get("lofo"):
        lines += ["", "## Leave-one-family-out (supervised model, own generator)", ""]
        lines += [
            "| left out | kind | n | block rate (farm: recall) | flag rate |",
            "|---|---|---|---|---|",
        ]
        for r in res["lofo"]["rows"]:
            lines.append(
                f"| {r['family']} | {r['kind']} | {r['n']} | {_pct(r['block'])} | {_pct(r['flag'])} |"
            )
        lines.append(f"\nWorst family: **{res['lofo']['worst']}**")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        return "?"


def run_suite(
    specs: list[DatasetSpec],
    *,
    cache: Path,
    methods: tuple[str, ...] = METHODS,
    modes: tuple[str, ...] = MODES,
    seed: int = 0,
    score_model: str = "coordination",
    lofo: bool = False,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "commit": _commit(),
        "score_model": score_model,
        "datasets": [],
    }
    for spec in specs:
        if progress:
            progress(f"{spec.name} …")
        entry: dict[str, Any] = {"name": spec.name, "family": spec.family}
        try:
            path = ensure_dataset(spec, cache)
            entry.update(
                run_dataset(
                    path,
                    methods=methods,
                    modes=modes,
                    seed=seed,
                    score_model=score_model,
                    progress=progress,
                )
            )
        except Exception as exc:  # one broken dataset must not hide the others
            log.exception("dataset %s failed", spec.name)
            entry["error"] = f"{type(exc).__name__}: {exc}"
        res["datasets"].append(entry)
    if lofo:
        from bench.lofo import leave_one_family_out

        res["lofo"] = leave_one_family_out(cache=cache, progress=progress)
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: two tiny worlds")
    ap.add_argument("--full", action="store_true", help="own and red-team worlds at scale 0.3")
    ap.add_argument("--no-external", action="store_true", help="leave ../shared/external out")
    ap.add_argument(
        "--dataset", type=Path, action="append", default=[], help="extra labelled dataset dir"
    )
    ap.add_argument("--only-datasets", action="store_true", help="only the --dataset dirs")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--lofo", action="store_true", help="also leave-one-family-out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--score-model",
        default="coordination",
        choices=("coordination", "trained"),
        help="the engine's out-of-the-box model (settings.score.model)",
    )
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "quality")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--name", default="quality", help="output file stem")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    specs = (
        []
        if args.only_datasets
        else default_specs(quick=args.quick, external=not args.no_external, full=args.full)
    )
    specs += [DatasetSpec(f"user {d.name}", "user", path=d) for d in args.dataset]
    res = run_suite(
        specs,
        cache=args.cache,
        methods=tuple(args.methods.split(",")),
        modes=tuple(args.modes.split(",")),
        seed=args.seed,
        score_model=args.score_model,
        lofo=args.lofo,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    from linkage.evaluate import _json_ready

    (args.out / f"{args.name}.json").write_text(json.dumps(_json_ready(res), indent=1) + "\n")
    md = render_markdown(res)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
