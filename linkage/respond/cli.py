"""CLI of the respond module, mounted on ``linkage`` by ``linkage.cli``.

* ``linkage action ACCOUNT_ID`` — what the account gets now (JSON);
* ``linkage watermark detect CORPUS`` — test a corpus against every cluster key;
* ``linkage watermark keys`` / ``rotate CLUSTER_ID`` — list keys (never secrets) / rotate;
* ``linkage watermark perturb FILE --account ID`` — an output as that account would get it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from linkage.store.db import DEFAULT_URL

err_console = Console(stderr=True)
STORE_OPTION = typer.Option(
    DEFAULT_URL, "--store", envvar="LINKAGE_STORE_URL", help="SQLAlchemy URL of the store."
)
watermark_app = typer.Typer(
    help="Per-cluster watermark keys: detect a leaked corpus, list and rotate keys.",
    no_args_is_help=True,
)


def _responder(store: str):
    from linkage.respond.service import Responder
    from linkage.store.db import Store

    return Responder(Store(store), refresh_seconds=0)


@watermark_app.command("detect")
def detect_cmd(
    corpus: Path = typer.Argument(
        ..., help="Directory (or file) of responses: .txt/.md per response, .jsonl[.gz], .json."
    ),
    store: str = STORE_OPTION,
    threshold: float | None = typer.Option(
        None, help="Attribute below this p-value (default: the run's settings, 1e-6)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per key."),
    top: int = typer.Option(20, help="Show this many keys (0 = all)."),
) -> None:
    """Test CORPUS against every watermark key; exit 0 if attributed, 1 if not."""
    from linkage.respond.corpus import read_corpus
    from linkage.respond.watermark import CHANNELS, corpus_stats, format_p

    texts = read_corpus(corpus)
    r = _responder(store)
    stats = corpus_stats(texts)
    res = r.detect(stats, threshold=threshold)
    per = ", ".join(f"{c} {n}" for c, n in stats.channel_contexts().items())
    err_console.print(
        f"{stats.n_texts} responses, {stats.n_words} words, {stats.n_opportunities} "
        f"watermark sites in {stats.n_contexts} contexts ({per}); {len(res)} keys tested"
    )
    shown = res if top == 0 else res[:top]
    if as_json:
        for a in shown:
            typer.echo(json.dumps(a.to_dict()))
    else:
        head = " | ".join(f"z {c}" for c in CHANNELS)
        typer.echo(f"| key | cluster | z | p-value | {head} | attributed |")
        typer.echo("|---|---|---:|---:|" + "---:|" * len(CHANNELS) + "---|")
        for a in shown:
            zc = " | ".join(f"{a.channels[c]['z']:.2f}" for c in CHANNELS if c in a.channels)
            p = format_p(a.log10_p)
            typer.echo(
                f"| {a.key_id}{' (retired)' if a.retired else ''} | {a.cluster_id} | "
                f"{a.z:.2f} | {p} | {zc} | "
                f"{'**yes**' if a.attributed else 'no'} |"
            )
    hits = [a for a in res if a.attributed]
    err_console.print(
        f"attributed to {', '.join(f'{a.cluster_id} ({a.key_id})' for a in hits)}"
        if hits
        else "not attributed to any key"
    )
    raise SystemExit(0 if hits else 1)


@watermark_app.command("keys")
def keys_cmd(store: str = STORE_OPTION) -> None:
    """List watermark keys (ids, clusters, dates; never secrets)."""
    from linkage.store.db import Store
    from linkage.store.watermark_keys import WatermarkKeys

    for k in WatermarkKeys(Store(store).engine).list():
        typer.echo(
            f"{k.key_id}\t{k.cluster_id}\t{k.created_at.isoformat()}\t"
            f"{'retired ' + k.retired_at.isoformat() if k.retired_at else 'active'}"
        )


@watermark_app.command("rotate")
def rotate_cmd(cluster_id: str = typer.Argument(...), store: str = STORE_OPTION) -> None:
    """Retire the cluster's key (kept for detection) and create a new one."""
    from linkage.store.db import Store
    from linkage.store.watermark_keys import WatermarkKeys

    typer.echo(WatermarkKeys(Store(store).engine).rotate(cluster_id))


@watermark_app.command("perturb")
def perturb_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A model output."),
    account: str = typer.Option(..., "--account", help="The account the output is for."),
    store: str = STORE_OPTION,
) -> None:
    """Print FILE as ACCOUNT would receive it (unchanged unless its action perturbs)."""
    out, action = _responder(store).perturb_output(account, file.read_text(encoding="utf-8"))
    err_console.print(json.dumps(action.to_dict() if action else None))
    typer.echo(out, nl=False)


def action_cmd(
    account_id: str = typer.Argument(..., help="Account id."),
    store: str = STORE_OPTION,
) -> None:
    """What ACCOUNT_ID gets now: action, perturbation strength, watermark key id, reason."""
    from linkage.errors import LinkageError

    a = _responder(store).action(account_id)
    if a is None:
        raise LinkageError(f"no account {account_id!r} in the store")
    typer.echo(json.dumps(a.to_dict()))


def register(app: typer.Typer) -> None:
    app.add_typer(watermark_app, name="watermark")
    app.command("action")(action_cmd)
