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
    from fixtures.io import write_world

    d = cache / f"{spec.family}-s{spec.scale:g}-seed{spec.seed}"
    if (d / ".complete").exists():
        return d
    if spec.family == "own":
        from fixtures.world import make_world

        tables = make_world(scale=spec.scale, seed=spec.seed)
    elif spec.family == "redteam":
        from fixtures.redteam import make_redteam_world

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
                model = fit_frame(prep, tr, yy[tr].astype(int), settings=settings)
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
        result["modes"]["labels"] = res
    if "curve" in modes:
        result["curve"] = learning_curve(prep, labels, settings=settings, seed=seed)
    return result


CURVE_POINTS: tuple[int | None, ...] = (0, 10, 50, None)  # labelled groups; None = all


def learning_curve(
    prep: Any, labels: pd.DataFrame, *, settings: Any, seed: int = 0
) -> list[dict[str, Any]]:
    """The engine with labels of 0, 10, 50 and all groups of the training half.

    Groups (a labelled group, or an ungrouped account on its own) of the training half
    are taken farm and legit alternately in a seeded order; the residual is fitted on
    their accounts and everything is scored on the held-out half.
    """
    from linkage.evaluate import evaluate
    from linkage.pipeline import score_prepared
    from linkage.score.train import fit_frame

    half = group_halves(labels, seed=seed)
    lab = (
        labels.assign(account_id=labels["account_id"].astype(str))
        .drop_duplicates("account_id")
        .set_index("account_id")
    )
    idx = prep.X.index.astype(str)
    lab = lab.reindex(idx)
    y = pd.to_numeric(lab["is_farm"], errors="coerce").to_numpy()
    grey = lab["population"].astype("string").fillna("").str.startswith("grey").to_numpy()
    key = group_keys(labels).reindex(idx).astype(str)  # unlabelled accounts are never used
    h = half.reindex(idx).to_numpy()
    usable = (h == 0) & ~np.isnan(y) & ~grey
    order: list[str] = []
    per_cls = []
    for cls in (1, 0):
        ks = pd.unique(key[usable & (y == cls)])
        per_cls.append(sorted(ks, key=lambda k: (zlib.crc32(f"{seed}:curve:{k}".encode()), k)))
    for a, b in zip(per_cls[0], per_cls[1], strict=False):
        order += [a, b]
    n0, n1 = len(per_cls[0]), len(per_cls[1])
    m = min(n0, n1)
    order += per_cls[0][m:] + per_cls[1][m:]
    test = h == 1
    out = []
    for k in CURVE_POINTS:
        chosen = set(order if k is None else order[:k])
        tr = usable & key.isin(chosen).to_numpy()
        if k == 0 or len(np.unique(y[tr])) < 2:
            model = None if k == 0 else "skip"
        else:
            model = fit_frame(prep, tr, y[tr].astype(int), settings=settings)
        if model == "skip":
            n_groups = len(order) if k is None else min(k, len(order))
            out.append({"groups": n_groups, "skipped": "one class only"})
            continue
        sc = score_prepared(prep, settings=settings, model=model)
        scored = sc.accounts[["account_id", "score", "level", "cluster_id"]].loc[test]
        s_ = _summary(evaluate(scored, labels))
        out.append(
            {
                "groups": len(order) if k is None else min(k, len(order)),
                "accounts": int(tr.sum()),
                **{
                    key_: s_[key_]
                    for key_ in (
                        "ap",
                        "roc_auc",
                        "block_recall",
                        "worst_legit_block",
                        "worst_legit_population",
                    )
                },
            }
        )
    return out


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
        "`labels` = trained on the labels of half the groups, scored on the other half. "
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
            "## Learning curve (engine, labels of k groups of the training half, scored on the other half)",
            "",
            "| dataset | labelled groups | accounts | AP | ROC AUC | block R | worst legit block |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in curves:
            for pt in d["curve"]:
                if "skipped" in pt:
                    lines.append(f"| {d['name']} | {pt['groups']} | – | {pt['skipped']} | | | |")
                    continue
                lines.append(
                    f"| {d['name']} | {pt['groups']} | {pt['accounts']} | {_f(pt['ap'])} | "
                    f"{_f(pt['roc_auc'])} | {_f(pt['block_recall'])} | "
                    f"{_pct(pt['worst_legit_block'])} ({pt['worst_legit_population'] or '–'}) |"
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
