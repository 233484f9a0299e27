"""Signup verification quality: new accounts scored against the run of their history.

```bash
python -m bench.signup_quality                 # own and red-team seeds 1-2, ../shared/external
python -m bench.signup_quality --no-external
```

For every labelled dataset with a ``signups`` table: ``linkage detect`` on the history,
then ``SignupScorer.score_frame`` on the signups in ``created_at`` order (velocity counted
among the batch), joined with the labels (``split = signup``; grey populations are
neither class). Reports AP, ROC AUC, block precision / recall, the weakest campaign's
block recall and the worst legit population's block rate, beside the same numbers for a
signup-only rule (velocity alone). ``../shared/external`` is validation only: reported,
never used to choose anything. Writes ``bench/results/signup-quality.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.quality import EXTERNAL, REPO, DatasetSpec, ensure_dataset


def _metrics(scored: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """The suite's metrics (:func:`linkage.evaluate.evaluate`) of the scored signups."""
    from bench.quality import _summary
    from linkage.evaluate import evaluate

    lab = labels.assign(account_id=labels["account_id"].astype(str))
    lab = lab[lab["account_id"].isin(scored["account_id"].astype(str))]
    if lab.empty or lab["is_farm"].nunique() < 2:
        return {"n": len(lab)}
    r = _summary(evaluate(scored, lab))
    if r["n_farm"] == 0 or r["n_farm"] == r["n_evaluated"]:
        return {"n": r["n_evaluated"]}
    return {
        "n": r["n_evaluated"],
        "n_farm": r["n_farm"],
        "ap": r["ap"],
        "roc_auc": r["roc_auc"],
        "block_precision": r["block_precision"],
        "block_recall": r["block_recall"],
        "weakest_campaign_block_recall": r["weakest_campaign_block_recall"],
        "worst_legit_block": r["worst_legit_block"],
        "worst_legit_population": r["worst_legit_population"] or "",
    }


def run_one(path: Path) -> dict[str, Any]:
    from linkage.ingest import load_dataset
    from linkage.pipeline import run_detect
    from linkage.settings import Settings
    from linkage.signup import SignupScorer

    ds = load_dataset(path)
    if ds.signups is None or ds.labels is None or ds.signups.empty:
        return {"skipped": "no signups or labels"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_detect(ds, Path(tmp) / "run", settings=Settings())
        scorer = SignupScorer.from_run(Path(tmp) / "run")
        t1 = time.perf_counter()
        scored = scorer.score_frame(ds.signups)
        t2 = time.perf_counter()
    return {
        "engine": _metrics(scored, ds.labels),
        "detect_s": round(t1 - t0, 1),
        "signups_s": round(t2 - t1, 2),
        "n_signups": len(ds.signups),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-external", action="store_true")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "quality")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    specs = [DatasetSpec(f"own s0.1 seed {s}", "own", scale=0.1, seed=s) for s in (1, 2)] + [
        DatasetSpec(f"redteam s0.1 seed {s}", "redteam", scale=0.1, seed=s) for s in (1, 2)
    ]
    if not args.no_external and EXTERNAL.is_dir():
        specs += [
            DatasetSpec(f"external {d.name}", "external", path=d)
            for d in sorted(EXTERNAL.iterdir())
            if d.is_dir()
        ]
    res: dict[str, Any] = {"datasets": []}
    for spec in specs:
        r = run_one(ensure_dataset(spec, args.cache))
        res["datasets"].append({"name": spec.name, "family": spec.family, **r})
        print(spec.name, json.dumps(r.get("engine", r), default=float))
    lines = [
        f"# Signup verification ({time.strftime('%Y-%m-%d')})",
        "",
        "New signups scored against the history's run (`python -m bench.signup_quality`). "
        "External data: validation only.",
        "",
        "| dataset | signups | farm | AP | ROC AUC | block P / R | weakest campaign R | worst legit block |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in res["datasets"]:
        e = d.get("engine", {})
        if "ap" not in e:
            lines.append(f"| {d['name']} | {d.get('n_signups', 0)} | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {d['name']} | {d['n_signups']} | {e['n_farm']} | {e['ap']:.3f} | "
            f"{e['roc_auc']:.3f} | {e['block_precision']:.3f} / {e['block_recall']:.3f} | "
            f"{e['weakest_campaign_block_recall']:.3f} | {e['worst_legit_block']:.1%} "
            f"({e['worst_legit_population']}) |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "signup-quality.md").write_text("\n".join(lines) + "\n")
    (args.out / "signup-quality.json").write_text(json.dumps(res, indent=1, default=float))
    print("\n".join(lines))
    return res


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
