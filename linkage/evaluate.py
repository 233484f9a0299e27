"""Metrics of a scored run against ground-truth labels.

:func:`evaluate` takes any method's per-account output (``account_id, score,
level``: the engine's ``accounts.csv`` or a baseline's frame) and the contract's
``labels`` (``account_id, is_farm, group, population``) and returns an
:class:`EvalReport`:

- ranking quality over the labelled, non-grey accounts: average precision
  (AP), ROC AUC, and recall at the score threshold where the false-positive
  rate among legit accounts is ≤ ``fpr`` (ties are never split);
- decision quality: precision and recall of ``block`` and of review-or-block;
- harm: flag rate (``block``, and review-or-block) per labelled population,
  grey populations included;
- coverage: recall (``block``, and review-or-block) per farm group.

Accounts whose ``population`` starts with ``grey`` are ambiguous by
construction: they are neither positives nor negatives for AP/ROC/recall/
precision, but their flag rates are reported.  Scored accounts without a label
are ignored and counted (``n_unlabelled``); labelled accounts the method did
not score are counted too (``n_unscored``).

:func:`compare` puts several reports side by side (engine and baselines).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = ["EvalReport", "compare", "evaluate", "legit_flag_rate_max"]

LEVELS = ("clear", "review", "block")
GREY_PREFIX = "grey"
NO_POPULATION = "(none)"
NO_GROUP = "(none)"


@dataclass
class PopulationStats:
    """Flag rates of one labelled population."""

    population: str
    n: int
    n_farm: int
    grey: bool
    block_rate: float
    flag_rate: float  # review or block


@dataclass
class GroupStats:
    """Recall of one farm group (farm accounts of non-grey populations)."""

    group: str
    n: int
    block_recall: float
    flag_recall: float  # review or block


@dataclass
class EvalReport:
    """All metrics of one method on one labelled dataset (NaN = undefined)."""

    n_accounts: int  # scored accounts
    n_labelled: int  # scored accounts that have a label
    n_unlabelled: int  # scored accounts without a label (ignored)
    n_unscored: int  # labelled accounts the method did not score (ignored)
    n_grey: int  # labelled grey accounts (excluded from AP/ROC/P/R)
    n_evaluated: int  # labelled, non-grey accounts
    n_farm: int  # farm accounts among n_evaluated
    fpr: float
    ap: float
    roc_auc: float
    recall_at_fpr: float
    threshold_at_fpr: float  # score threshold achieving recall_at_fpr (inf = none)
    block_precision: float
    block_recall: float
    flag_precision: float  # review or block
    flag_recall: float
    populations: list[PopulationStats] = field(default_factory=list)
    groups: list[GroupStats] = field(default_factory=list)
    # cluster quality (NaN when the method's output has no cluster_id column)
    pair_recall: float = math.nan  # same-farm-group pairs that share a cluster
    flagged_purity: float = math.nan  # farm share of clustered, flagged, non-grey accounts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinities become ``None``)."""
        return _json_ready(asdict(self))

    def to_text(self) -> str:
        """Plain-text report: headline numbers, then populations and groups."""
        head = [
            ("accounts scored", f"{self.n_accounts}"),
            (
                "labelled / evaluated / grey",
                f"{self.n_labelled} / {self.n_evaluated} / {self.n_grey}",
            ),
            ("unlabelled / unscored (ignored)", f"{self.n_unlabelled} / {self.n_unscored}"),
            ("farm accounts", f"{self.n_farm}"),
            ("AP", _fmt(self.ap)),
            ("ROC AUC", _fmt(self.roc_auc)),
            (f"recall @ {self.fpr:.2%} FPR", _fmt(self.recall_at_fpr)),
            (
                "block precision / recall",
                f"{_fmt(self.block_precision)} / {_fmt(self.block_recall)}",
            ),
            (
                "review+block precision / recall",
                f"{_fmt(self.flag_precision)} / {_fmt(self.flag_recall)}",
            ),
            ("max legit block rate", _fmt(legit_flag_rate_max(self))),
        ]
        lines = _grid(["metric", "value"], [list(r) for r in head])
        pops = [
            [
                p.population + (" (grey)" if p.grey else ""),
                str(p.n),
                str(p.n_farm),
                _pct(p.block_rate),
                _pct(p.flag_rate),
            ]
            for p in self.populations
        ]
        groups = [
            [g.group, str(g.n), _fmt(g.block_recall), _fmt(g.flag_recall)] for g in self.groups
        ]
        out = ["\n".join(lines)]
        if pops:
            out.append(
                "\n".join(_grid(["population", "n", "farm", "block rate", "flag rate"], pops))
            )
        if groups:
            out.append("\n".join(_grid(["farm group", "n", "block recall", "flag recall"], groups)))
        return "\n\n".join(out)

    def to_table(self) -> Table:
        """A rich table of the headline numbers, populations and groups."""
        table = Table(title="evaluation", show_header=True, header_style="bold")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("accounts scored / evaluated", f"{self.n_accounts} / {self.n_evaluated}")
        table.add_row(
            "grey / unlabelled / unscored",
            f"{self.n_grey} / {self.n_unlabelled} / {self.n_unscored}",
        )
        table.add_row("farm accounts", str(self.n_farm))
        table.add_row("AP", _fmt(self.ap))
        table.add_row("ROC AUC", _fmt(self.roc_auc))
        table.add_row(f"recall @ {self.fpr:.2%} FPR", _fmt(self.recall_at_fpr))
        table.add_row(
            "block precision / recall", f"{_fmt(self.block_precision)} / {_fmt(self.block_recall)}"
        )
        table.add_row(
            "review+block precision / recall",
            f"{_fmt(self.flag_precision)} / {_fmt(self.flag_recall)}",
        )
        for p in self.populations:
            name = p.population + (" (grey)" if p.grey else "")
            table.add_row(
                f"population {name} (n={p.n})",
                f"block {_pct(p.block_rate)} · flag {_pct(p.flag_rate)}",
            )
        for g in self.groups:
            table.add_row(
                f"farm group {g.group} (n={g.n})",
                f"block {_fmt(g.block_recall)} · flag {_fmt(g.flag_recall)}",
            )
        return table

    def __str__(self) -> str:
        return self.to_text()


def pair_recall(cluster_id: pd.Series, group: pd.Series) -> float:
    """Share of same-group account pairs that share a cluster (NaN without any pair).

    ``cluster_id`` and ``group`` are aligned per account; a missing cluster id means
    "unclustered" (shares a cluster with nobody). Counted exactly, in O(n log n): the
    pairs of a group are ``n_g (n_g - 1) / 2``, those inside clusters
    ``sum_c k_gc (k_gc - 1) / 2`` over the group's members per cluster.
    """
    g = pd.Series(np.asarray(group, dtype=object)).reset_index(drop=True)
    c = pd.Series(np.asarray(cluster_id, dtype=object)).reset_index(drop=True)
    ok = g.notna()
    n_g = g[ok].value_counts().to_numpy(dtype=np.float64)
    total = float((n_g * (n_g - 1) / 2).sum())
    if total == 0:
        return math.nan
    both = ok & c.notna()
    k = pd.DataFrame({"g": g[both], "c": c[both]}).value_counts().to_numpy(dtype=np.float64)
    return float((k * (k - 1) / 2).sum() / total)


def _checked_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """``account_id, score, level[, cluster_id]`` with ids as text; ValueError for
    duplicate ids, missing or non-numeric scores and unknown levels."""
    _require(scores, ("account_id", "score", "level"), "scores")
    has_clusters = "cluster_id" in scores.columns
    cols = ["account_id", "score", "level", *(["cluster_id"] if has_clusters else [])]
    s = scores.loc[:, cols].copy()
    s["account_id"] = s["account_id"].astype(str)
    if s["account_id"].duplicated().any():
        dup = s.loc[s["account_id"].duplicated(), "account_id"].head(5).tolist()
        raise ValueError(f"scores has duplicate account ids, e.g. {dup}")
    s["score"] = pd.to_numeric(s["score"], errors="coerce").astype(np.float64)
    if s["score"].isna().any():
        raise ValueError("scores has missing or non-numeric score values")
    bad_levels = set(s["level"].astype(str)) - set(LEVELS)
    if bad_levels:
        raise ValueError(f"unknown levels {sorted(bad_levels)}; expected one of {LEVELS}")
    return s


def _labelled(s: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The scored accounts that have a label, with ``grey``, ``blocked`` and ``flagged``
    flags; also the number of scored accounts without a label and of labels not scored."""
    _require(labels, ("account_id", "is_farm"), "labels")
    lab = labels.copy()
    lab["account_id"] = lab["account_id"].astype(str)
    lab = lab.drop_duplicates("account_id", keep="first")
    for col in ("group", "population"):
        if col not in lab.columns:
            lab[col] = pd.NA
    lab["is_farm"] = pd.to_numeric(lab["is_farm"], errors="coerce")
    merged = s.merge(
        lab[["account_id", "is_farm", "group", "population"]], on="account_id", how="left"
    )
    has_label = merged["is_farm"].notna()
    n_unlabelled = int((~has_label).sum())
    n_unscored = int((~lab["account_id"].isin(s["account_id"])).sum())
    m = merged.loc[has_label].copy()
    m["is_farm"] = m["is_farm"].astype(int)
    m["population"] = m["population"].astype("string").fillna(NO_POPULATION)
    m["group"] = m["group"].astype("string").fillna(NO_GROUP)
    m["grey"] = m["population"].str.lower().str.startswith(GREY_PREFIX)
    m["blocked"] = m["level"].astype(str) == "block"
    m["flagged"] = m["level"].astype(str).isin(("review", "block"))
    return m, n_unlabelled, n_unscored


def _breakdown(m: pd.DataFrame, ev: pd.DataFrame) -> tuple[list[PopulationStats], list[GroupStats]]:
    """Block and flag rates per population (grey ones included) and per farm group."""
    populations = [
        PopulationStats(
            population=str(pop),
            n=len(g),
            n_farm=int(g["is_farm"].sum()),
            grey=bool(g["grey"].iloc[0]),
            block_rate=float(g["blocked"].mean()),
            flag_rate=float(g["flagged"].mean()),
        )
        for pop, g in m.groupby("population", sort=True)
    ]
    farms = ev.loc[ev["is_farm"] == 1]
    groups = [
        GroupStats(
            group=str(grp),
            n=len(g),
            block_recall=float(g["blocked"].mean()),
            flag_recall=float(g["flagged"].mean()),
        )
        for grp, g in farms.groupby("group", sort=True)
    ]
    return populations, groups


def evaluate(scores: pd.DataFrame, labels: pd.DataFrame, *, fpr: float = 0.01) -> EvalReport:
    """Evaluate one method's ``scores`` (``account_id, score, level``) against ``labels``.

    ``fpr`` is the false-positive-rate budget for ``recall_at_fpr``.  Raises
    ``ValueError`` for missing columns, duplicate scored accounts, unknown levels
    or missing scores.
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    s = _checked_scores(scores)
    m, n_unlabelled, n_unscored = _labelled(s, labels)
    ev = m.loc[~m["grey"]]
    y = ev["is_farm"].to_numpy()
    sc = ev["score"].to_numpy()
    both = 0 < y.sum() < len(y)
    ap = float(average_precision_score(y, sc)) if y.sum() > 0 else math.nan
    auc = float(roc_auc_score(y, sc)) if both else math.nan
    rec, thr = _recall_at_fpr(y, sc, fpr) if both else (math.nan, math.nan)
    populations, groups = _breakdown(m, ev)
    farm = ev["is_farm"] == 1
    return EvalReport(
        n_accounts=len(s),
        n_labelled=len(m),
        n_unlabelled=n_unlabelled,
        n_unscored=n_unscored,
        n_grey=int(m["grey"].sum()),
        n_evaluated=len(ev),
        n_farm=int(y.sum()),
        fpr=float(fpr),
        ap=ap,
        roc_auc=auc,
        recall_at_fpr=rec,
        threshold_at_fpr=thr,
        block_precision=_ratio(int((ev["blocked"] & farm).sum()), int(ev["blocked"].sum())),
        block_recall=_ratio(int((ev["blocked"] & farm).sum()), int(y.sum())),
        flag_precision=_ratio(int((ev["flagged"] & farm).sum()), int(ev["flagged"].sum())),
        flag_recall=_ratio(int((ev["flagged"] & farm).sum()), int(y.sum())),
        populations=populations,
        groups=groups,
        **(_cluster_quality(ev) if "cluster_id" in s.columns else {}),
    )


def _cluster_quality(ev: pd.DataFrame) -> dict[str, float]:
    """Pair recall of farm groups and purity of flagged clustered accounts."""
    cid = ev["cluster_id"].astype("string").replace("", pd.NA)
    farm = ev["is_farm"] == 1
    grp = ev["group"].where(farm & (ev["group"] != NO_GROUP))
    fl = ev["flagged"] & cid.notna()
    return {
        "pair_recall": pair_recall(cid.astype(object).where(cid.notna(), None), grp),
        "flagged_purity": _ratio(int((fl & farm).sum()), int(fl.sum())),
    }


def legit_flag_rate_max(report: EvalReport, *, level: str = "block") -> float:
    """Highest flag rate over legit populations (non-grey, no farm account).

    ``level="block"`` uses block rates, ``level="review"`` review-or-block rates.
    0.0 when there is no legit population.
    """
    if level not in ("block", "review"):
        raise ValueError("level must be 'block' or 'review'")
    rates = [
        p.block_rate if level == "block" else p.flag_rate
        for p in report.populations
        if not p.grey and p.n_farm == 0
    ]
    return max(rates, default=0.0)


def compare(reports: dict[str, EvalReport]) -> str:
    """Markdown table of the key numbers, one row per method (engine and baselines)."""
    header = [
        "method",
        "AP",
        "ROC AUC",
        "recall@FPR",
        "block P",
        "block R",
        "flag P",
        "flag R",
        "max legit block",
        "min group R (block)",
    ]
    rows = []
    for name, r in reports.items():
        min_group = min((g.block_recall for g in r.groups), default=math.nan)
        rows.append(
            [
                name,
                _fmt(r.ap),
                _fmt(r.roc_auc),
                _fmt(r.recall_at_fpr),
                _fmt(r.block_precision),
                _fmt(r.block_recall),
                _fmt(r.flag_precision),
                _fmt(r.flag_recall),
                _pct(legit_flag_rate_max(r)),
                _fmt(min_group),
            ]
        )
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


# --------------------------------------------------------------------------- helpers


def _recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> tuple[float, float]:
    """Best recall over thresholds whose FPR ≤ ``fpr`` (thresholds at distinct scores)."""
    fp_rate, tp_rate, thresholds = roc_curve(y, score, drop_intermediate=False)
    ok = fp_rate <= fpr + 1e-12
    i = int(np.flatnonzero(ok)[np.argmax(tp_rate[ok])])
    return float(tp_rate[i]), float(thresholds[i])


def _require(frame: pd.DataFrame, cols: tuple[str, ...], name: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _fmt(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2%}"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
