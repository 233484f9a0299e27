"""Glue: dataset directory -> run directory, with stage timings and a manifest.

``prepare`` runs the stages that need no scoring model (ingest -> identifiers ->
graph -> detect -> features) and is shared by ``detect`` and ``train``;
``run_detect`` adds score -> explain -> write.  Each stage is a pure function of
its inputs; only this module and the CLI touch files.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from linkage import __version__
from linkage.dataset import Dataset
from linkage.detect import Clustering, detect_clusters
from linkage.detect.leiden import previous_membership
from linkage.errors import LinkageError, RunError
from linkage.explain import build_context, cluster_evidence
from linkage.graph import AccountGraph, build_graph
from linkage.identifiers import Identifiers, extract
from linkage.identifiers.kinds import SIGNUP_KINDS, provider_mask
from linkage.ingest import load_dataset
from linkage.memory import peak_rss_mb, release_memory
from linkage.score import LinearModel, Scores, score_accounts
from linkage.score.coordination import Coordination
from linkage.score.features import model_inputs
from linkage.score.model import load_model
from linkage.score.scoring import FARM_VERDICTS, latest_verdicts
from linkage.score.train import fit_feedback, fit_labelled
from linkage.settings import Settings
from linkage.store.rundir import sha256_file, write_manifest, write_run

log = logging.getLogger(__name__)

METHODS = ("graph", "rules", "components", "louvain", "fraudar")

Progress = Callable[[str], None]


@dataclass
class Timer:
    stages: dict[str, float] = field(default_factory=dict)
    progress: Progress | None = None

    def steps(self, name: str) -> Callable[[int, int, str], None] | None:
        """A ``(done, total, what)`` callback for the steps of stage ``name``: each
        becomes one progress message ``"name: done/total what"`` (the CLI draws a bar)."""
        progress = self.progress
        if progress is None:
            return None

        def step(done: int, total: int, what: str) -> None:
            progress(f"{name}: {done}/{total} {what}")

        return step

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(f"{name}…")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            release_memory()  # a stage's freed temporaries must not add to the next one's peak
            dt = time.perf_counter() - t0
            self.stages[name] = self.stages.get(name, 0.0) + dt
            # once: the progress callback already showed the stage; the log is for
            # library use without one (and --verbose)
            log.log(logging.DEBUG if self.progress else logging.INFO, "stage %s: %.2f s", name, dt)


@dataclass
class Prepared:
    dataset: Dataset
    ids: Identifiers
    graph: AccountGraph
    clustering: Clustering
    X: pd.DataFrame
    timer: Timer
    coordination: Coordination | None = None


def _dataset(
    source: str | Path | Dataset, settings: Settings, out: Path | None, timer: Timer
) -> Dataset:
    if isinstance(source, Dataset):
        return source
    with timer.stage("ingest"):
        qdir = (out / "quarantine") if out is not None else None
        return load_dataset(
            source, settings=settings.ingest, quarantine_dir=qdir, progress=timer.progress
        )


def _dataset_and_identifiers(
    source: str | Path | Dataset,
    settings: Settings,
    out: Path | None,
    timer: Timer,
    *,
    keep_prompts: bool = True,
) -> tuple[Dataset, Identifiers]:
    """The ingest and identifiers stages every method starts with; ``keep_prompts=False``
    drops the prompt text from the dataset once the identifiers are extracted."""
    ds = _dataset(source, settings, out, timer)
    with timer.stage("identifiers"):
        ids = extract(
            ds,
            settings=settings.identifiers,
            seed=settings.seed,
            progress=timer.steps("identifiers"),
        )
        if not keep_prompts and "prompt" in ds.requests.columns:
            ds = dataclasses.replace(ds, requests=ds.requests.drop(columns=["prompt"]))
    return ds, ids


def prepare(
    source: str | Path | Dataset,
    *,
    settings: Settings,
    feedback: pd.DataFrame | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    keep_prompts: bool = True,
    previous: pd.DataFrame | None = None,
) -> Prepared:
    """Ingest → identifiers → graph → Leiden → features (everything before scoring).

    ``keep_prompts=False`` drops the prompt text from the returned dataset's requests once
    the identifiers are extracted (nothing after that stage reads it): at scale it is the
    largest column, and holding it through the graph stage set the run's memory peak.
    A ``Dataset`` passed in is never modified (the returned one is a copy without it).
    ``previous``: ``account_id, cluster_id`` of a previous run (:func:`read_previous`), the
    warm start of Leiden.
    """
    timer = Timer(progress=progress)
    ds, ids = _dataset_and_identifiers(source, settings, out, timer, keep_prompts=keep_prompts)
    verdicts = latest_verdicts(feedback)
    confirmed = pd.Index(verdicts.index[verdicts.isin(FARM_VERDICTS)]) if len(verdicts) else None
    with timer.stage("graph"):
        ag = build_graph(
            ids.edges,
            ds.accounts["account_id"],
            settings=settings.graph,
            seed=settings.seed,
            confirmed=confirmed,
        )
    with timer.stage("detect"):
        initial = None if previous is None else previous_membership(ag.accounts, previous)
        clustering = detect_clusters(
            ag, settings=settings.detect, seed=settings.seed, initial=initial
        )
    with timer.stage("features"):
        X, coord = model_inputs(ag, clustering, ids.features, settings=settings.score.coordination)
        if coord.missing:
            log.info("signals this dataset cannot have (they move no score): %s", coord.missing)
    return Prepared(ds, ids, ag, clustering, X, timer, coord)


def score_prepared(
    prep: Prepared,
    *,
    settings: Settings,
    model: LinearModel | None = None,
    feedback: pd.DataFrame | None = None,
) -> Scores:
    """The score stage on a prepared run (``model`` None = the settings' model)."""
    model = model or load_model(settings.score)
    return score_accounts(
        prep.X, prep.clustering, model=model, settings=settings.score, feedback=feedback
    )


def train_model(
    datasets: Sequence[str | Path],
    *,
    settings: Settings,
    C: float | str | None = "auto",
    progress: Progress | None = None,
) -> LinearModel:
    """``linkage train`` on the datasets' labels: each dataset prepared as ``detect`` would
    (one at a time), then :func:`linkage.score.train.fit_labelled`."""
    runs = (
        (str(d), prepare(d, settings=settings, progress=progress, keep_prompts=False))
        for d in datasets
    )
    return fit_labelled(runs, settings=settings, C=C, progress=progress)


def train_from_feedback(
    dataset: str | Path,
    feedback: pd.DataFrame,
    *,
    settings: Settings,
    C: float | str | None = "auto",
    progress: Progress | None = None,
) -> LinearModel:
    """``linkage train --feedback``: analysts' verdicts on ``dataset`` prepared as ``detect``
    would (:func:`linkage.score.train.fit_feedback`)."""
    prep = prepare(dataset, settings=settings, progress=progress, keep_prompts=False)
    return fit_feedback(prep, str(dataset), feedback, settings=settings, C=C, progress=progress)


def _inputs(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table, p in ds.files.items():
        path = Path(p)
        if path.is_file():
            out[table] = {
                "path": str(path),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
    return out


def _signup_index(prep: Prepared, scores: Scores, settings: Settings) -> pd.DataFrame:
    """Identifiers of accounts worth attaching a signup to (clustered or flagged)."""
    acc = scores.accounts
    keep = (
        acc["cluster_id"].notna() | (acc["score"] >= settings.score.review_threshold)
    ).to_numpy()
    inc = prep.graph.incidence
    idf = prep.graph.identifiers
    kinds = inc["kind"].to_numpy()
    sel = np.isin(kinds, SIGNUP_KINDS) | provider_mask(kinds)
    sel &= keep[inc["acc"].to_numpy()]  # scores.accounts is in graph vertex order
    accounts = prep.graph.accounts.to_numpy()[inc["acc"].to_numpy()]
    return pd.DataFrame(
        {
            "kind": kinds[sel],
            "value": inc["value"].to_numpy()[sel],
            "account_id": accounts[sel],
            "weight": idf["weight"].to_numpy()[inc["ident"].to_numpy()[sel]],
            "holders": idf["df"].to_numpy()[inc["ident"].to_numpy()[sel]],
        }
    )


def _cluster_records(
    prep: Prepared, scores: Scores, model: LinearModel, timer: Timer
) -> list[dict[str, Any]]:
    ctx = build_context(
        prep.graph,
        scores,
        model,
        templates=prep.ids.templates,
        requests=prep.dataset.requests,
        request_template=prep.ids.request_template,
        coordination=prep.coordination,
    )
    cl = prep.clustering
    order = np.argsort(cl.cluster, kind="stable")
    counts = np.bincount(cl.cluster[cl.cluster >= 0], minlength=len(cl.cluster_ids))
    starts = np.searchsorted(cl.cluster[order], np.arange(len(cl.cluster_ids)))
    names = prep.graph.accounts.to_numpy()
    cscore = scores.clusters.set_index("cluster_id")
    records: list[dict[str, Any]] = []
    for k, cid in enumerate(cl.cluster_ids):
        members = order[starts[k] : starts[k] + counts[k]]
        row = cscore.loc[cid]
        ev = cluster_evidence(ctx, cid, members)
        records.append(
            {
                "cluster_id": cid,
                "size": int(counts[k]),
                "score": round(float(row["score"]), 6),
                "level": str(row["level"]),
                "members": sorted(str(m) for m in names[members]),
                "evidence": [e.to_dict() for e in ev],
                "strength_median": round(float(np.median(cl.strength_in[members])), 4),
            }
        )
        if timer.progress and (k + 1) % 2000 == 0:
            timer.progress(f"explain: {k + 1}/{len(cl.cluster_ids)} clusters")
    records.sort(key=lambda r: (-r["score"], -r["size"], r["cluster_id"]))
    return records


COMMUNITIES_FILE = "communities.parquet"


def read_previous(run_dir: str | Path) -> pd.DataFrame:
    """A previous run's membership, the warm start of the next run's Leiden:
    ``account_id, cluster_id``.

    Leiden's own communities before weak members were released
    (``RUN_DIR/communities.parquet``, written by graph runs) when present -- the partition
    Leiden left, so the next run starts where it stopped -- else the clusters of
    ``RUN_DIR/accounts.csv`` (any run, peers included).
    """
    path = Path(run_dir)
    comm = path / COMMUNITIES_FILE
    if comm.is_file():
        frame = pd.read_parquet(comm)
        return frame.rename(columns={"community": "cluster_id"})[["account_id", "cluster_id"]]
    acc = path / "accounts.csv"
    if not acc.is_file():
        raise RunError(
            f"--previous {path}: no {COMMUNITIES_FILE} or accounts.csv there; give the "
            "directory of an earlier `linkage detect` run"
        )
    frame = pd.read_csv(acc, usecols=["account_id", "cluster_id"], dtype="string")
    return frame


def _write_communities(out: Path, prep: Prepared) -> None:
    """Leiden's communities (before release) for the next run's warm start."""
    comm = prep.clustering.community
    if comm is None:
        return
    frame = pd.DataFrame(
        {
            "account_id": prep.graph.accounts.to_numpy(),
            "community": pd.Series(comm).where(comm >= 0).astype("Int64"),
        }
    )
    tmp = out / (COMMUNITIES_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out / COMMUNITIES_FILE)


def check_out_dir(source: str | Path | Dataset, out: str | Path) -> Path:
    """``out`` if a run may be written there, else a :class:`LinkageError` (nothing written).

    Refused: an ``out`` that is an existing file (or lies under one), and an ``out``
    that is, contains or lies inside the input dataset directory (a run writes
    ``accounts.csv``, which would replace the input's own ``accounts`` table).
    """
    out = Path(out)
    target = out.resolve()
    for p in (target, *target.parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == target else f"lies under the file {p}"
            raise LinkageError(f"--out {out} {what}: give a directory for the run (new or a run's)")
    if isinstance(source, Dataset):
        return out
    src = Path(source).resolve()
    if target == src:
        how = "is the input dataset directory"
    elif target.is_relative_to(src):
        how = f"lies inside the input dataset directory {source}"
    elif src.is_relative_to(target):
        how = f"contains the input dataset directory {source}"
    else:
        return out
    raise LinkageError(
        f"--out {out} {how}: the run would overwrite or mix with the input "
        "(its accounts.csv replaces the input's); choose a directory outside it"
    )


def run_detect(
    source: str | Path | Dataset,
    out: str | Path,
    *,
    settings: Settings | None = None,
    feedback: pd.DataFrame | None = None,
    method: str = "graph",
    progress: Progress | None = None,
    previous: str | Path | None = None,
) -> dict[str, Any]:
    """Run detection end to end and write the run directory; returns the manifest.

    ``previous``: the directory of an earlier run; its membership warm-starts Leiden
    (:func:`read_previous`; graph method only).
    """
    settings = settings or Settings()
    _check_method(method, previous)
    out = check_out_dir(source, out)
    prev = None if previous is None else read_previous(previous)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LinkageError(
            f"cannot create the run directory {out}: {exc.strerror or exc}"
        ) from None
    t_start = time.perf_counter()
    if method == "graph":
        accounts, records, prep, timer, index = _run_graph(
            source, settings=settings, feedback=feedback, out=out, progress=progress, previous=prev
        )
    else:
        accounts, records, prep, timer, index = _run_baseline(
            method, source, settings=settings, out=out, progress=progress
        )
    manifest = _manifest(method, settings, prep, accounts, records, feedback)
    with timer.stage("write"):
        write_run(out, accounts=accounts, clusters=records, manifest=manifest, signup_index=index)
        if method == "graph":
            _write_communities(out, prep)
    manifest["timings"] = {k: round(v, 3) for k, v in timer.stages.items()}
    manifest["timings"]["total"] = round(time.perf_counter() - t_start, 3)
    manifest["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_manifest(out, manifest)  # again, now with the final timings (small, atomic)
    log.info("run written to %s in %.1f s", out, manifest["timings"]["total"])
    return manifest


def _check_method(method: str, previous: str | Path | None) -> None:
    """Refuse an unknown method, and a warm start for a method without Leiden."""
    if method not in METHODS:
        raise LinkageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if previous is not None and method != "graph":
        raise LinkageError(f"--previous warm-starts the graph method's Leiden, not {method!r}")


def _run_graph(
    source: str | Path | Dataset,
    *,
    settings: Settings,
    feedback: pd.DataFrame | None,
    out: Path,
    progress: Progress | None,
    previous: pd.DataFrame | None,
) -> tuple[pd.DataFrame, list[dict[str, Any]], Prepared, Timer, pd.DataFrame]:
    """The engine's stages up to the write: (accounts, cluster records, the prepared
    stages, their timer, the sign-up index)."""
    model = load_model(settings.score)
    prep = prepare(
        source,
        settings=settings,
        feedback=feedback,
        out=out,
        progress=progress,
        keep_prompts=False,
        previous=previous,
    )
    timer = prep.timer
    with timer.stage("score"):
        scores = score_prepared(prep, settings=settings, model=model, feedback=feedback)
    with timer.stage("explain"):
        records = _cluster_records(prep, scores, model, timer)
    with timer.stage("write"):
        index = _signup_index(prep, scores, settings)
    return scores.accounts, records, prep, timer, index


def _manifest(
    method: str,
    settings: Settings,
    prep: Prepared,
    accounts: pd.DataFrame,
    records: list[dict[str, Any]],
    feedback: pd.DataFrame | None,
) -> dict[str, Any]:
    """The run's manifest before the write (timings and peak memory are added after it)."""
    ds = prep.dataset
    levels = accounts["level"].value_counts().to_dict()
    return {
        "linkage_version": __version__,
        "method": method,
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "settings": settings.model_dump(mode="json"),
        "inputs": _inputs(ds),
        "source": ds.source,
        "counts": {
            "accounts": len(ds.accounts),
            "requests": len(ds.requests),
            "identifier_edges": len(prep.ids.edges),
            "templates": len(prep.ids.templates),
            "graph_edges": prep.graph.n_edges,
            "clusters": len(records),
            "levels": {k: int(levels.get(k, 0)) for k in ("clear", "review", "block")},
            "quarantined_rows": ds.report.rows_quarantined,
            "feedback_rows": 0 if feedback is None else len(feedback),
        },
        "signals_missing": (prep.coordination.missing if prep.coordination is not None else []),
        "ingest": ds.report.to_dict(),
        "machine": {
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
        },
    }


def _run_baseline(
    method: str,
    source: str | Path | Dataset,
    *,
    settings: Settings,
    out: Path,
    progress: Progress | None,
) -> tuple[pd.DataFrame, list[dict[str, Any]], Prepared, Timer, pd.DataFrame]:
    from linkage.baselines import cluster_records, run_baseline

    timer = Timer(progress=progress)
    ds, ids = _dataset_and_identifiers(source, settings, out, timer)
    with timer.stage("detect"):
        res = run_baseline(method, edges=ids.edges, features=ids.features, seed=settings.seed)
    res = res.copy()
    res["account_id"] = res["account_id"].astype(str)
    records = cluster_records(res)
    # a placeholder graph so the manifest can count edges uniformly
    empty = AccountGraph(
        accounts=pd.Index([]),
        incidence=pd.DataFrame(),
        identifiers=pd.DataFrame(),
        n_reference=0,
    )
    prep = Prepared(
        ds,
        ids,
        empty,
        Clustering(np.empty(0, int), [], np.empty(0), np.empty(0), 0),
        pd.DataFrame(),
        timer,
    )
    return res[["account_id", "cluster_id", "score", "level"]], records, prep, timer, None
