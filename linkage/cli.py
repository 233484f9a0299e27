"""The ``linkage`` command line.

Sub-commands are registered here; other packages (``fixtures``, ``api``) add their
own through a ``register(app)`` function so each keeps its commands next to its code.
User errors (:class:`~linkage.errors.LinkageError`) print one clear message and exit 2.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from linkage.errors import LinkageError
from linkage.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from linkage.store.db import Store

#: Root options also accepted after the sub-command (`linkage detect DATA --out RUN
#: --verbose`, where a user adds them when an error says "rerun with --verbose").
_ROOT_FLAGS = frozenset({"--verbose", "-v", "--quiet", "-q"})


def _hoist_root_flags(args: list[str]) -> list[str]:
    """``args`` with every root flag found after the sub-command moved in front of it
    (nothing after a ``--`` is touched; the root has only flags, so its first other
    token is the sub-command)."""
    cut = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    tail = args[cut:]
    end = tail.index("--") if "--" in tail else len(tail)
    hoisted = [a for a in tail[:end] if a in _ROOT_FLAGS]
    if not hoisted:
        return args
    rest = [a for a in tail[:end] if a not in _ROOT_FLAGS] + tail[end:]
    return [*args[:cut], *hoisted, *rest]


class _RootGroup(TyperGroup):
    """The root command group: accepts ``--verbose``/``-q`` after the sub-command too."""

    # ctx: the Context of the click that typer vendors (typer._click, private to typer)
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist_root_flags(list(args)))


app = typer.Typer(
    cls=_RootGroup,
    name="linkage",
    help="Graph-based account-linkage engine: finds coordinated account farms "
    "(LLM distillation / model-extraction farms) among API accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
_STATE: dict[str, bool] = {"quiet": False, "verbose": False}  # set by the root options
#: When the command started: log lines, progress lines and the demo's lines all count
#: their elapsed time from it, so one run's lines share one clock (reset by the root).
_CLOCK = {"t0": time.perf_counter()}


def _elapsed() -> str:
    """Seconds since the command started, as every progress and log line shows them."""
    return f"{time.perf_counter() - _CLOCK['t0']:7.1f}s"


#: Libraries whose INFO lines are their own bookkeeping, not news for a user (alembic
#: says "Context impl SQLiteImpl." on every store open): shown with --verbose only.
_CHATTY_LOGGERS = ("alembic",)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Log debug detail (and the traceback of an internal error) to stderr; "
        "also accepted after the command.",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Only warnings and errors (data set aside is still said); also accepted "
        "after the command.",
    ),
) -> None:
    _STATE["quiet"] = quiet
    _STATE["verbose"] = verbose
    _CLOCK["t0"] = time.perf_counter()
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        if verbose
        else _CliFormatter()
    )
    logging.basicConfig(level=level, handlers=[handler])
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


class _CliFormatter(logging.Formatter):
    """Log lines in the progress lines' form: ``  elapsed  message`` for information,
    ``warning: message`` above it (``--verbose`` keeps timestamps and logger names)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg = f"{msg}\n{self.formatException(record.exc_info)}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        return f"{_elapsed()} {msg}"


_STEP_RE = re.compile(r"^(?P<stage>[\w -]+): (?P<done>\d+)/(?P<total>\d+)\b ?(?P<what>.*)$")


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _progress_printer(quiet: bool | None = None):
    """A progress callback that prints each stage with the elapsed time (nothing with -q).

    Messages ``"stage: done/total what"`` are drawn as a progress bar with the counts;
    on a terminal the bar is redrawn in place, elsewhere each step is one line.
    """
    quiet = _STATE["quiet"] if quiet is None else quiet
    tty = sys.stderr.isatty()
    open_bar = [False]

    def show(msg: str) -> None:
        if quiet:
            return
        elapsed = _elapsed()
        m = _STEP_RE.match(msg)
        if m:
            done, total = int(m["done"]), int(m["total"])
            line = f"{elapsed} {m['stage']} {_bar(done, total)} {done:,}/{total:,} {m['what']}"
            if tty:
                sys.stderr.write("\r\x1b[2K" + line)
                sys.stderr.flush()
                open_bar[0] = True
                return
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
            return
        if open_bar[0]:
            sys.stderr.write("\n")
            open_bar[0] = False
        err_console.print(f"[dim]{elapsed}[/] {escape(msg)}", highlight=False, soft_wrap=True)

    return show


_ENGINE_HELP = (
    "SQL engine of the request aggregation (sets identifiers.engine): duckdb = embedded, "
    "out of core (default); spark = PySpark, local[2] or the cluster in SPARK_MASTER "
    "(pip install 'linkage\\[spark]' and Java 17+; see docs/SCALING.md)."
)


def _with_engine(settings: Settings, engine: str | None) -> Settings:
    """``settings`` with ``identifiers.engine`` set from ``--engine`` (when given)."""
    if engine is None:
        return settings
    from linkage.engine import ENGINES

    if engine not in ENGINES:
        raise LinkageError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    ids = settings.identifiers.model_copy(update={"engine": engine})
    return settings.model_copy(update={"identifiers": ids})


@app.command()
def detect(
    dataset: Path = typer.Argument(
        ..., help="Dataset directory (accounts, requests, … as CSV/CSV.gz/Parquet/JSONL)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Run directory to write (accounts.csv, clusters.jsonl, manifest.json).",
    ),
    method: str = typer.Option(
        "graph", help="graph (the engine) or a peer: rules, components, louvain, fraudar."
    ),
    settings_file: Path | None = typer.Option(
        None,
        "--settings",
        help="Settings JSON (see `linkage settings`); default settings otherwise.",
    ),
    seed: int | None = typer.Option(None, help="Override the settings' seed."),
    store: str | None = typer.Option(
        None, help="Store URL: read analyst feedback from it before, import the run into it after."
    ),
    previous: Path | None = typer.Option(
        None,
        "--previous",
        help="Run directory of an earlier `linkage detect`: Leiden starts from its membership "
        "(warm start; a daily run on a slightly changed world converges faster).",
    ),
    engine: str | None = typer.Option(
        None, "--engine", metavar="[duckdb|spark]", help=_ENGINE_HELP
    ),
    template_cache: Path | None = typer.Option(
        None,
        "--template-cache",
        help="Directory of the cross-run template cache (created if missing): skeletons and "
        "MinHash signatures of prompts already seen are reused, so a daily run only sketches "
        "new prompts. Same template ids as without it.",
    ),
) -> None:
    """Find coordinated account farms in DATASET and write the run to OUT.

    Stages: ingest → identifiers → graph → Leiden → score → explain → write.
    Bad input rows are quarantined to OUT/quarantine/ and counted; a missing table or
    column stops the run with one message listing every problem.
    """
    from linkage.pipeline import check_out_dir, run_detect

    check_out_dir(dataset, out)  # before anything is opened or written
    if store and method != "graph":
        raise LinkageError(
            f"--store serves graph runs only: a `--method {method}` run would replace the "
            "service's clusters with none; drop --store for a peer method"
        )
    settings = _detect_settings(
        settings_file, engine=engine, seed=seed, template_cache=template_cache
    )
    db, feedback = _open_store(store)
    manifest = run_detect(
        dataset,
        out,
        settings=settings,
        feedback=feedback,
        method=method,
        progress=_progress_printer(),
        previous=previous,
    )
    _print_run_summary(manifest, out)
    if db is not None:
        res = db.import_run(out)
        err_console.print(res.describe(), highlight=False)


def _detect_settings(
    settings_file: Path | None,
    *,
    engine: str | None,
    seed: int | None,
    template_cache: Path | None,
) -> Settings:
    """The settings of a ``detect`` run: the file's (or the defaults), then its options."""
    settings = _with_engine(Settings.load(settings_file), engine)
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    if template_cache is not None:
        ids = settings.identifiers
        tpl = ids.templates.model_copy(update={"cache_dir": str(template_cache)})
        ids = ids.model_copy(update={"templates": tpl})
        settings = settings.model_copy(update={"identifiers": ids})
    return settings


def _open_store(store: str | None) -> tuple[Store | None, pd.DataFrame | None]:
    """(the store, its analyst feedback) for ``--store``; (None, None) without it."""
    if not store:
        return None, None
    from linkage.store.db import Store

    db = Store(store)
    feedback = db.feedback_frame()
    err_console.print(f"read {len(feedback)} feedback rows from the store")
    return db, feedback


def _print_run_summary(manifest: dict, out: Path) -> None:
    from rich.table import Table

    c = manifest["counts"]
    t = Table(title=f"linkage detect ({manifest['method']}) → {out}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    for k in (
        "accounts",
        "requests",
        "identifier_edges",
        "templates",
        "graph_edges",
        "clusters",
        "quarantined_rows",
    ):
        t.add_row(k.replace("_", " "), f"{c.get(k, 0):,}")
    for lvl, n in c["levels"].items():
        t.add_row(f"accounts {lvl}", f"{n:,}")
    for stage, secs in manifest.get("timings", {}).items():
        t.add_row(f"time {stage}", f"{secs:.2f} s")
    t.add_row("peak RSS", f"{manifest.get('peak_rss_mb', 0):,.0f} MB")
    Console().print(t)
    _print_ingest_notices(manifest, out)


def _print_ingest_notices(manifest: dict, out: Path) -> None:
    """Say what ingest set aside or changed (a file cut short, quarantined rows, values
    kept with bad bytes escaped, fields set unknown): warnings, so shown even with -q."""
    notices = (manifest.get("ingest") or {}).get("notices") or []
    if not notices:
        return
    err_console.print(
        f"[bold yellow]warning:[/] input rows set aside or changed ({len(notices)} "
        f"note{'s' if len(notices) != 1 else ''}; details in {out / 'manifest.json'}):",
        highlight=False,
        soft_wrap=True,
    )
    for notice in notices:
        err_console.print(f"  - {escape(notice)}", highlight=False, soft_wrap=True)


@app.command()
def evaluate(
    dataset: Path = typer.Argument(..., help="Dataset directory with a labels table."),
    run: list[Path] = typer.Option(
        ..., "--run", "-r", help="Run directory (repeat to compare runs side by side)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the report(s) as JSON here."
    ),
    fpr: float = typer.Option(0.01, help="False-positive rate for 'recall at FPR'."),
) -> None:
    """Score runs against the dataset's labels: AP, ROC AUC, recall at 1% FPR, flag rate per population, recall per farm group."""
    import json

    from linkage.evaluate import compare
    from linkage.evaluate import evaluate as _evaluate
    from linkage.ingest import load_dataset
    from linkage.store import load_run

    ds = load_dataset(dataset)
    if ds.labels is None:
        raise LinkageError(
            f"{dataset} has no labels table: evaluate needs labels (account_id, is_farm, group, population)"
        )
    reports = {}
    for r in run:
        rr = load_run(r)
        name = f"{rr.manifest.get('method', '?')}:{r.name}"
        reports[name] = _evaluate(rr.accounts, ds.labels, fpr=fpr)
    for name, rep in reports.items():
        Console().print(f"[bold]{name}[/]")
        Console().print(rep.to_table())
    if len(reports) > 1:
        typer.echo(compare(reports))  # Markdown: printed as is, never wrapped to the terminal
    if json_out:
        json_out.write_text(json.dumps({k: v.to_dict() for k, v in reports.items()}, indent=2))


_STORE_IDS_HELP = (
    "Store URL (or LINKAGE_STORE_URL) the run was imported into: cluster ids are then the "
    "store's stable ids (cl-000042), the ones the HTTP service answers for."
)


def _store_ids(run: Path, store: str | None) -> dict[str, str] | None:
    """The run's cluster id -> the store's stable id, or None without a store or when the
    run was not imported into it (a note on stderr says which ids are printed)."""
    if not store:
        err_console.print(
            "note: cluster ids are this run's own; give --store URL (or LINKAGE_STORE_URL) "
            "for the stable ids the service uses",
            highlight=False,
        )
        return None
    from linkage.store.db import Store
    from linkage.store.engine import sqlite_path

    path = sqlite_path(store)
    if path is not None and not path.is_file():
        raise LinkageError(f"no store at {path} (--store {store})")
    found = Store(store).imported_ids(run)
    if found is None:
        err_console.print(
            f"note: {run} was never imported into {store}: cluster ids are this run's own; "
            "`linkage import-run` gives the stable ids the service uses",
            highlight=False,
        )
        return None
    return found[1]


@app.command()
def explain(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    cluster_id: str = typer.Argument(
        ..., help="Cluster id (see `linkage clusters`): the store's stable id with --store."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the raw evidence records as JSON."),
    store: str | None = typer.Option(
        None, "--store", envvar="LINKAGE_STORE_URL", help=_STORE_IDS_HELP
    ),
) -> None:
    """Show the evidence behind one cluster, strongest reason first."""
    import json

    from linkage.explain.render import render_cluster
    from linkage.store import load_run

    rr = load_run(run)
    ids = _store_ids(run, store) if store else None
    source = {v: k for k, v in (ids or {}).items()}.get(cluster_id, cluster_id)
    c = rr.cluster(source)
    if c is None:
        raise LinkageError(
            f"cluster {cluster_id!r} not found in {run} ({len(rr.clusters)} clusters there)"
        )
    if ids:
        c = {**c, "cluster_id": ids.get(source, source), "run_cluster_id": source}
    if as_json:
        typer.echo(json.dumps(c, indent=2))
    else:
        render_cluster(c, Console())


class _Level(StrEnum):
    """The levels of a cluster (``--level``: anything else is a usage error)."""

    block = "block"
    review = "review"
    clear = "clear"


@app.command()
def clusters(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    level: list[_Level] = typer.Option(
        [], "--level", "-l", help="Only clusters of this level (repeat for several)."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Show at most this many (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, no members."),
    store: str | None = typer.Option(
        None, "--store", envvar="LINKAGE_STORE_URL", help=_STORE_IDS_HELP
    ),
) -> None:
    """List the clusters of a run, highest score first: id, size, score, level, top evidence.

    With --store (or LINKAGE_STORE_URL) the ids are the store's stable ids, the same the
    HTTP service and `linkage action` use; without, the run's own ids.
    """
    import json

    from linkage.store import load_run

    rr = load_run(run)
    wanted = {lv.value for lv in level}
    ids = _store_ids(run, store) or {}
    rows = [c for c in rr.clusters if not wanted or c.get("level") in wanted]
    rows.sort(key=lambda c: (-float(c.get("score") or 0), -int(c.get("size") or 0)))
    total = len(rows)
    if limit:
        rows = rows[:limit]
    for c in rows:
        ev = c.get("evidence") or []
        top = max(ev, key=lambda e: float(e.get("contribution") or 0)) if ev else None
        cid = ids.get(str(c["cluster_id"]), c["cluster_id"])
        if as_json:
            item = {k: c.get(k) for k in ("cluster_id", "size", "score", "level")}
            item["cluster_id"] = cid
            if ids:
                item["run_cluster_id"] = c["cluster_id"]
            item["top_evidence"] = top["summary"] if top else None
            typer.echo(json.dumps(item, ensure_ascii=False))
        else:
            summary = top["summary"] if top else "-"
            typer.echo(
                f"{cid}\t{int(c.get('size') or 0)}\t"
                f"{float(c.get('score') or 0):.3f}\t{c.get('level')}\t{summary}"
            )
    if not as_json:
        err_console.print(
            f"{len(rows):,} of {total:,} clusters (id, size, score, level, top evidence); "
            f"details: linkage explain {run} <cluster_id>" + (" --store URL" if ids else ""),
            highlight=False,
        )


@app.command("score-signups")
def score_signups(
    dataset: Path = typer.Argument(..., help="Dataset directory with a signups table."),
    run: Path = typer.Option(
        ..., "--run", "--model", "-r", help="Run directory of a graph run (the model)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="CSV to write (default: RUN/signups_scored.csv)."
    ),
) -> None:
    """Score new signups against a run: attachment to known farms plus sign-up velocity."""
    import time

    from linkage.ingest import load_dataset
    from linkage.signup import SignupScorer

    ds = load_dataset(dataset)
    if ds.signups is None or ds.signups.empty:
        raise LinkageError(f"{dataset} has no signups table to score")
    scorer = SignupScorer.from_run(run)
    t0 = time.perf_counter()
    res = scorer.score_frame(ds.signups, identifiers=ds.identifiers)
    dt = time.perf_counter() - t0
    out = out or (run / "signups_scored.csv")
    res.to_csv(out, index=False)
    counts = res["level"].value_counts().to_dict()
    err_console.print(
        f"scored {len(res):,} signups in {dt:.2f} s → {out}: "
        + ", ".join(f"{k} {counts.get(k, 0):,}" for k in ("clear", "review", "block"))
    )


_TRAIN_FEEDBACK_HELP = (
    "Learn from analysts' verdicts (CSV/JSONL/Parquet: account_id, verdict) on the "
    "one DATASET instead of its labels table."
)


@app.command()
def train(
    datasets: list[Path] = typer.Argument(..., help="Labelled dataset directories to fit on."),
    out: Path = typer.Option(..., "--out", "-o", help="Model JSON to write."),
    settings_file: Path | None = typer.Option(None, "--settings"),
    c: float | None = typer.Option(
        None,
        "--C",
        help="Inverse L2 strength of the residual on the out-of-the-box score; "
        "default: chosen by cross-validation over labelled groups ('no residual' included).",
    ),
    feedback: Path | None = typer.Option(None, "--feedback", help=_TRAIN_FEEDBACK_HELP),
) -> None:
    """Fit the scoring model on labelled datasets: the out-of-the-box score plus a residual learnt from the labels."""
    from linkage.pipeline import train_from_feedback, train_model

    settings = Settings.load(settings_file)
    C = "auto" if c is None else c
    if feedback is not None:
        from linkage.score.queue import read_feedback

        if len(datasets) != 1:
            raise LinkageError("--feedback learns from one dataset: give exactly one")
        model = train_from_feedback(
            datasets[0],
            read_feedback(feedback),
            settings=settings,
            C=C,
            progress=_progress_printer(),
        )
    else:
        model = train_model(datasets, settings=settings, C=C, progress=_progress_printer())
    model.save(out)
    err_console.print(
        f"wrote {out} ({len(model.features)} features, trained on {model.meta.get('n_accounts')} accounts)"
    )


@app.command()
def demo(
    out: Path = typer.Option(
        Path("runs/demo"), "--out", "-o", help="Where to write the demo world and run."
    ),
    engine: str | None = typer.Option(
        None, "--engine", metavar="[duckdb|spark]", help=_ENGINE_HELP
    ),
) -> None:
    """Generate the bundled demo world, detect farms in it, and show the result beside the rules baseline.

    Everything runs offline in seconds: a tiny synthetic provider (about a thousand
    accounts, a few farms and their legit look-alikes) with ground-truth labels.  The
    world is read once and both methods run on it; a few lines say what happened
    (a terminal also shows the running stage), the quality table is the result.
    """
    import time

    from linkage.evaluate import compare
    from linkage.evaluate import evaluate as _evaluate
    from linkage.explain.render import render_cluster
    from linkage.fixtures import demo_world
    from linkage.ingest import load_dataset
    from linkage.pipeline import run_detect
    from linkage.store import load_run

    settings = _with_engine(Settings(), engine)
    say, status = _demo_printers()
    root = logging.getLogger()
    level = root.level
    if not _STATE["verbose"]:  # the stages' own INFO lines: --verbose only
        root.setLevel(max(level, logging.WARNING))
    try:
        t0 = time.perf_counter()
        world = demo_world(out / "world")
        say(
            f"demo world (synthetic provider, ground truth) → {world} ({time.perf_counter() - t0:.1f} s)"
        )
        t0 = time.perf_counter()
        ds = load_dataset(
            world, settings=settings.ingest, quarantine_dir=out / "run" / "quarantine"
        )
        labels = ds.labels
        say(
            f"ingest: {len(ds.accounts):,} accounts, {len(ds.requests):,} requests, "
            f"{0 if labels is None else len(labels):,} labels, "
            f"{ds.report.rows_quarantined:,} rows quarantined ({time.perf_counter() - t0:.1f} s)"
        )
        for notice in ds.report.notices:  # a warning: said even with -q
            err_console.print(f"[bold yellow]warning:[/] {escape(notice)}", soft_wrap=True)
        reports = {}
        for method, name in (("graph", "linkage"), ("rules", "rules")):
            run_dir = out / ("run" if method == "graph" else f"run-{method}")
            manifest = run_detect(ds, run_dir, settings=settings, method=method, progress=status)
            c = manifest["counts"]
            lv = c["levels"]
            say(
                f"{name}: {c['clusters']:,} clusters, {lv['block']:,} accounts block, "
                f"{lv['review']:,} review, {lv['clear']:,} clear → {run_dir} "
                f"({manifest['timings']['total']:.1f} s)"
            )
            reports[name] = _evaluate(load_run(run_dir).accounts, labels)
    finally:
        root.setLevel(level)
        status("")
    run = load_run(out / "run")
    flagged = [c for c in run.clusters if c["level"] != "clear"]
    console = Console()
    console.print(
        f"[bold]{len(flagged)} flagged clusters[/] (of {len(run.clusters)}); the top one:"
    )
    if flagged:
        render_cluster(flagged[0], console)
    console.print("\n[bold]quality against the world's labels[/]")
    typer.echo(compare(reports))
    console.print(f"\nnext: linkage explain {out / 'run'} <cluster_id>   |   linkage serve --help")


def _demo_printers():
    """``(say, status)`` for the demo: ``say`` prints one line (elapsed time, as the
    progress of ``detect``); ``status`` shows the running stage on a terminal, redrawn
    in place and erased by the next line (nothing elsewhere, nothing with -q)."""
    import shutil

    quiet = _STATE["quiet"]
    live = sys.stderr.isatty() and not quiet
    shown = [False]

    def clear() -> None:
        if shown[0]:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            shown[0] = False

    def say(msg: str) -> None:
        if quiet:
            return
        clear()
        elapsed = _elapsed()
        err_console.print(f"[dim]{elapsed}[/] {escape(msg)}", highlight=False, soft_wrap=True)

    def status(msg: str) -> None:
        if not live:
            return
        if not msg:
            clear()
            return
        width = max(20, shutil.get_terminal_size().columns - 10)
        sys.stderr.write(f"\r\x1b[2K{_elapsed()} {msg[:width]}")
        sys.stderr.flush()
        shown[0] = True

    return say, status


@app.command("review-queue")
def review_queue(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    top: int = typer.Option(20, "--top", "-n", min=1, help="Queue length."),
    feedback: Path | None = typer.Option(
        None,
        "--feedback",
        help="Verdicts already given (CSV/JSONL/Parquet: account_id, verdict): "
        "their clusters are left out.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Clusters an analyst should label next: near the decision boundary, large, high in the ranking, unlike each other."""
    import json

    from linkage.score.queue import queue_from_run, read_feedback
    from linkage.store import load_run

    fb = read_feedback(feedback) if feedback is not None else None
    q, done = queue_from_run(load_run(run), feedback=fb, k=top)
    for r in q.to_dict("records"):
        if as_json:
            typer.echo(json.dumps({k: r[k] for k in q.columns}, default=float))
        else:
            typer.echo(
                f"{r['rank']}\t{r['cluster_id']}\t{r['size']}\t{r['score']:.3f}\t{r['reason']}"
            )
    err_console.print(
        f"{len(q)} clusters to label next (rank, id, size, score, why; {len(done)} already "
        "labelled left out); "
        f"details: linkage explain {run} <cluster_id>",
        highlight=False,
    )


@app.command("settings")
def show_settings(
    settings_file: Path | None = typer.Argument(None, help="Settings JSON to validate and print."),
) -> None:
    """Print the (default or given) settings as JSON: edit and pass with --settings."""
    typer.echo(Settings.load(settings_file).to_json())


@app.command("export-graph")
def export_graph(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    cluster_id: str = typer.Argument(
        ..., help="Cluster id (see clusters.jsonl or `linkage clusters`)."
    ),
    fmt: str = typer.Option(
        "graphml", "--format", "-f", help="graphml or gexf (both open in Gephi and Cytoscape)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
) -> None:
    """Write one cluster as a graph file: its accounts and the identifiers and templates
    they share, weights and evidence as attributes (see linkage.explain.graph)."""
    from linkage.explain.graph import cluster_graph, write_graph

    if fmt not in ("graphml", "gexf"):
        raise LinkageError(f"unknown --format {fmt!r}: use graphml or gexf")
    g = cluster_graph(run, cluster_id)
    write_graph(g, out, fmt=fmt)
    kinds: dict[str, int] = {}
    for _, d in g.nodes(data=True):
        kinds[d["type"]] = kinds.get(d["type"], 0) + 1
    err_console.print(
        f"wrote {out} ({fmt}): {g.number_of_nodes():,} nodes "
        f"({', '.join(f'{n:,} {k}s' for k, n in sorted(kinds.items()))}), "
        f"{g.number_of_edges():,} edges",
        highlight=False,
        soft_wrap=True,
    )


def _register_plugins() -> None:
    from linkage.api.cli import register as register_api
    from linkage.fixtures.cli import register as register_fixtures
    from linkage.respond.cli import register as register_respond
    from linkage.share.cli import register as register_share

    register_fixtures(app)
    register_api(app)
    register_respond(app)
    register_share(app)


def _is_click_exception(exc: BaseException) -> bool:
    """True for a click exception, from the ``click`` package or from the copy
    typer bundles (``typer._click``), whose classes are not ``click``'s."""
    return any(
        cls.__name__ == "ClickException" and cls.__module__.endswith("click.exceptions")
        for cls in type(exc).__mro__
    )


def main() -> None:
    """Entry point: run the app, turning user errors into one clear message."""
    _register_plugins()
    try:
        app(standalone_mode=False)
    except LinkageError as exc:
        # soft_wrap: a path or a problem list is never broken at the terminal width
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err_console.print("aborted")
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors etc.
        if _is_click_exception(exc):
            # a usage error (unknown command or option, missing argument, bare
            # `linkage`): click's own message and exit code (2), as any CLI
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "this is a bug in linkage, not in your data; rerun with --verbose (anywhere on "
            "the command line) for the traceback",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
