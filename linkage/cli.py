"""The ``linkage`` command line.

Sub-commands are registered here; other packages (``fixtures``, ``api``) add their
own through a ``register(app)`` function so each keeps its commands next to its code.
User errors (:class:`~linkage.errors.LinkageError`) print one clear message and exit 2.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from linkage.errors import LinkageError
from linkage.settings import Settings

app = typer.Typer(
    name="linkage",
    help="Graph-based account-linkage engine: finds coordinated account farms "
    "(LLM distillation / model-extraction farms) among API accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
_STATE: dict[str, bool] = {"quiet": False}  # set by the root options (-q)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    _STATE["quiet"] = quiet
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


_STEP_RE = re.compile(r"^(?P<stage>[\w -]+): (?P<done>\d+)/(?P<total>\d+)\b ?(?P<what>.*)$")


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _progress_printer(quiet: bool | None = None):
    """A progress callback that prints each stage with the elapsed time (nothing with -q).

    Messages ``"stage: done/total what"`` are drawn as a progress bar with the counts;
    on a terminal the bar is redrawn in place, elsewhere each step is one line.
    """
    import time

    t0 = time.perf_counter()
    quiet = _STATE["quiet"] if quiet is None else quiet
    tty = sys.stderr.isatty()
    open_bar = [False]

    def show(msg: str) -> None:
        if quiet:
            return
        elapsed = f"{time.perf_counter() - t0:7.1f}s"
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
    from linkage.pipeline import run_detect

    if store and method != "graph":
        raise LinkageError(
            f"--store serves graph runs only: a `--method {method}` run would replace the "
            "service's clusters with none; drop --store for a peer method"
        )
    settings = _with_engine(Settings.load(settings_file), engine)
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    if template_cache is not None:
        ids = settings.identifiers
        tpl = ids.templates.model_copy(update={"cache_dir": str(template_cache)})
        ids = ids.model_copy(update={"templates": tpl})
        settings = settings.model_copy(update={"identifiers": ids})
    feedback = None
    db = None
    if store:
        from linkage.store.db import Store

        db = Store(store)
        feedback = db.feedback_frame()
        err_console.print(f"read {len(feedback)} feedback rows from the store")
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
        err_console.print(f"imported into the store: {res}")


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


@app.command()
def explain(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    cluster_id: str = typer.Argument(
        ..., help="Cluster id (see clusters.jsonl or `linkage clusters`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the raw evidence records as JSON."),
) -> None:
    """Show the evidence behind one cluster, strongest reason first."""
    import json

    from linkage.explain.render import render_cluster
    from linkage.store import load_run

    rr = load_run(run)
    c = rr.cluster(cluster_id)
    if c is None:
        raise LinkageError(
            f"cluster {cluster_id!r} not found in {run} ({len(rr.clusters)} clusters there)"
        )
    if as_json:
        typer.echo(json.dumps(c, indent=2))
    else:
        render_cluster(c, Console())


@app.command()
def clusters(
    run: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    level: list[str] = typer.Option(
        [], "--level", "-l", help="Only clusters of this level (repeat: block, review, clear)."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Show at most this many (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, no members."),
) -> None:
    """List the clusters of a run, highest score first: id, size, score, level, top evidence."""
    import json

    from linkage.store import load_run

    rr = load_run(run)
    rows = [c for c in rr.clusters if not level or c.get("level") in level]
    rows.sort(key=lambda c: (-float(c.get("score") or 0), -int(c.get("size") or 0)))
    total = len(rows)
    if limit:
        rows = rows[:limit]
    for c in rows:
        ev = c.get("evidence") or []
        top = max(ev, key=lambda e: float(e.get("contribution") or 0)) if ev else None
        if as_json:
            item = {k: c.get(k) for k in ("cluster_id", "size", "score", "level")}
            item["top_evidence"] = top["summary"] if top else None
            typer.echo(json.dumps(item, ensure_ascii=False))
        else:
            summary = top["summary"] if top else "-"
            typer.echo(
                f"{c['cluster_id']}\t{int(c.get('size') or 0)}\t"
                f"{float(c.get('score') or 0):.3f}\t{c.get('level')}\t{summary}"
            )
    if not as_json:
        err_console.print(
            f"{len(rows):,} of {total:,} clusters (id, size, score, level, top evidence); "
            f"details: linkage explain {run} <cluster_id>",
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
    res = scorer.score_frame(ds.signups)
    dt = time.perf_counter() - t0
    out = out or (run / "signups_scored.csv")
    res.to_csv(out, index=False)
    counts = res["level"].value_counts().to_dict()
    err_console.print(
        f"scored {len(res):,} signups in {dt:.2f} s → {out}: "
        + ", ".join(f"{k} {counts.get(k, 0):,}" for k in ("clear", "review", "block"))
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
    feedback: Path | None = typer.Option(
        None,
        "--feedback",
        help="Learn from analysts' verdicts (CSV/JSONL/Parquet: account_id, verdict) on the "
        "one DATASET instead of its labels table.",
    ),
) -> None:
    """Fit the scoring model on labelled datasets: the out-of-the-box score plus a residual learnt from the labels."""
    from linkage.score.train import train_from_feedback, train_model

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
    accounts, a few farms and their legit look-alikes) with ground-truth labels.
    """
    from fixtures import demo_world
    from linkage.evaluate import compare
    from linkage.evaluate import evaluate as _evaluate
    from linkage.explain.render import render_cluster
    from linkage.ingest import load_dataset
    from linkage.pipeline import run_detect
    from linkage.store import load_run

    world = demo_world(out / "world")
    err_console.print(f"demo world written to {world}")
    reports = {}
    for method in ("graph", "rules"):
        run_dir = out / ("run" if method == "graph" else f"run-{method}")
        manifest = run_detect(
            world,
            run_dir,
            settings=_with_engine(Settings(), engine),
            method=method,
            progress=_progress_printer(),
        )
        if method == "graph":
            _print_run_summary(manifest, run_dir)
        reports["linkage" if method == "graph" else method] = _evaluate(
            load_run(run_dir).accounts, load_dataset(world).labels
        )
    run = load_run(out / "run")
    flagged = [c for c in run.clusters if c["level"] != "clear"]
    console = Console()
    console.print(
        f"\n[bold]{len(flagged)} flagged clusters[/] (of {len(run.clusters)}); the top one:"
    )
    if flagged:
        render_cluster(flagged[0], console)
    console.print("\n[bold]quality against the world's labels[/]")
    typer.echo(compare(reports))
    console.print(f"\nnext: linkage explain {out / 'run'} <cluster_id>   |   linkage serve --help")


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


def _register_plugins() -> None:
    from api.cli import register as register_api
    from fixtures.cli import register as register_fixtures
    from linkage.respond.cli import register as register_respond

    register_fixtures(app)
    register_api(app)
    register_respond(app)


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
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
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
            "this is a bug in linkage, not in your data; rerun with --verbose for the traceback",
            highlight=False,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
