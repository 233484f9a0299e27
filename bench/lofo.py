"""Leave-one-family-out for the supervised model (issue 12, item 4).

For every population family of the training generator (each farm tradecraft and each
legit look-alike), fit the supervised model exactly as ``linkage train`` does (a
penalised residual on the coordination terms) on training worlds *without*
that family, and test it on unseen worlds' accounts *of* that family: a farm family's
block recall, a legit family's block rate. The worst family says what the model would
do with tradecraft or customers it has never seen.

```bash
python -m bench.lofo            # seeds 101-104 train, 105-106 test, scale 0.1
```
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TRAIN_SEEDS = (101, 102, 103, 104)
TEST_SEEDS = (105, 106)


def _frame(path: Path) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features, is_farm and population of every labelled non-grey account of a world."""
    from linkage.pipeline import prepare
    from linkage.settings import Settings

    prep = prepare(path, settings=Settings(), keep_prompts=False)
    lab = prep.dataset.labels
    lab = lab.assign(account_id=lab["account_id"].astype(str)).drop_duplicates("account_id")
    lab = lab.set_index("account_id").reindex(prep.X.index)
    pop = lab["population"].astype("string").fillna("")
    keep = lab["is_farm"].notna().to_numpy() & ~pop.str.startswith("grey").to_numpy()
    return prep.X.loc[keep], lab.loc[keep, "is_farm"].astype(int), pop[keep]


def leave_one_family_out(
    *,
    cache: Path,
    scale: float = 0.1,
    train_seeds: tuple[int, ...] = TRAIN_SEEDS,
    test_seeds: tuple[int, ...] = TEST_SEEDS,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    from bench.quality import DatasetSpec, ensure_dataset
    from linkage.score.scoring import corroboration_cap, level_of
    from linkage.score.train import fit_on_coordination
    from linkage.settings import ScoreSettings

    def frames(seeds: tuple[int, ...]) -> list[tuple[pd.DataFrame, pd.Series, pd.Series]]:
        out = []
        for s in seeds:
            if progress:
                progress(f"lofo: world own s{scale:g} seed {s}")
            out.append(
                _frame(ensure_dataset(DatasetSpec(f"own {s}", "own", scale=scale, seed=s), cache))
            )
        return out

    train, test = frames(train_seeds), frames(test_seeds)
    families = sorted({p for _, _, pop in train for p in pop.unique()} - {"individual"})
    settings = ScoreSettings()
    rows = []
    for fam in families:
        Xs, ys, ws = [], [], []
        for X, y, pop in train:
            keep = (pop != fam).to_numpy()
            Xs.append(X.loc[keep])
            ys.append(y.to_numpy()[keep])
            ws.append(np.full(int(keep.sum()), 1.0 / max(int(keep.sum()), 1)))
        y_all = np.concatenate(ys)
        if len(np.unique(y_all)) < 2:
            continue
        w = np.concatenate(ws)
        model = fit_on_coordination(pd.concat(Xs), y_all, sample_weight=w / w.mean())
        blocked, flagged, n, is_farm = 0, 0, 0, False
        for X, y, pop in test:
            sel = (pop == fam).to_numpy()
            if not sel.any():
                continue
            Xf = X.loc[sel]
            p = model.predict(Xf)
            lv = level_of(
                corroboration_cap(p, Xf["corroboration"].to_numpy(dtype=float), settings),
                settings,
            )
            blocked += int((lv == "block").sum())
            flagged += int(np.isin(lv, ("review", "block")).sum())
            n += int(sel.sum())
            is_farm = bool(y.to_numpy()[sel].max())
        if n:
            rows.append(
                {
                    "family": fam,
                    "kind": "farm" if is_farm else "legit",
                    "n": n,
                    "block": blocked / n,
                    "flag": flagged / n,
                }
            )
    farms = [r for r in rows if r["kind"] == "farm"]
    legit = [r for r in rows if r["kind"] == "legit"]
    worst_farm = min(farms, key=lambda r: r["block"], default=None)
    worst_legit = max(legit, key=lambda r: r["block"], default=None)
    worst = []
    if worst_farm:
        worst.append(f"{worst_farm['family']} (block recall {worst_farm['block']:.3f})")
    if worst_legit:
        worst.append(f"{worst_legit['family']} (block rate {worst_legit['block']:.2%})")
    return {
        "rows": rows,
        "worst": "; ".join(worst),
        "train_seeds": train_seeds,
        "test_seeds": test_seeds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "quality")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lofo.json")
    args = ap.parse_args(argv)
    res = leave_one_family_out(cache=args.cache, scale=args.scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    for r in res["rows"]:
        print(
            f"{r['family']:24s} {r['kind']:6s} n={r['n']:5d} block {r['block']:.3f} flag {r['flag']:.3f}"
        )
    print("worst:", res["worst"])
    return res


if __name__ == "__main__":
    main()
