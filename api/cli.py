"""CLI commands of this package, mounted on the ``linkage`` app by ``linkage.cli``.

* ``linkage serve`` — run the HTTP service with uvicorn;
* ``linkage keys create|list|revoke`` — manage API keys (a key is printed once);
* ``linkage import-run RUN_DIR --store URL`` — load a run directory into the store.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from linkage.store.db import DEFAULT_URL

console = Console()
err_console = Console(stderr=True)  # prose goes here so stdout carries only the data

STORE_OPTION = typer.Option(
    DEFAULT_URL, "--store", envvar="LINKAGE_STORE_URL", help="SQLAlchemy URL of the store."
)

keys_app = typer.Typer(
    help="Manage API keys (stored hashed; a key is shown once).", no_args_is_help=True
)


@keys_app.command("create")
def keys_create(
    scope: list[str] = typer.Option(
        ...,
        "--scope",
        "-s",
        help="read | score | feedback | metrics | respond | admin (repeat for several; "
        "admin implies all).",
    ),
    name: str = typer.Option("default", "--name", "-n", help="What the key is for."),
    store: str = STORE_OPTION,
) -> None:
    """Create a key and print it once (it cannot be recovered later); recorded in the audit."""
    from linkage.store.db import Store

    key, token = Store(store).create_key(name, scope)
    err_console.print(
        f"key id {key.id} ({', '.join(sorted(key.scopes))}) for {name!r}; store it now, it is not shown again:"
    )
    typer.echo(token)  # alone on stdout: KEY=$(linkage keys create ...) works


@keys_app.command("list")
def keys_list(store: str = STORE_OPTION) -> None:
    """List keys (ids, names, scopes, state; never secrets)."""
    from linkage.store.db import Store

    keys = Store(store).list_keys()
    if not keys:
        console.print("no keys")
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(
            f"{k.id}\t{k.name}\t{','.join(sorted(k.scopes))}\t{k.created_at:%Y-%m-%d %H:%M}\t{state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="Key id (the part after `lk_`)."),
    store: str = STORE_OPTION,
) -> None:
    """Revoke a key (effective immediately for running services); recorded in the audit."""
    from linkage.errors import StoreError
    from linkage.store.db import Store

    if not Store(store).revoke_key(key_id):
        raise StoreError(f"no active key {key_id!r}")
    console.print(f"revoked {key_id}")


def import_run(
    run_dir: Path = typer.Argument(..., help="Run directory written by `linkage detect`."),
    store: str = STORE_OPTION,
) -> None:
    """Load a run into the store (one transaction; stable cluster ids and lineage).

    The run is checked whole first: every file against the bytes, row count and sha256
    that `linkage detect` wrote into manifest.json, and the counts and contents; an
    empty, truncated or edited run is refused with the reason and the store is left
    unchanged.  Importing the same run again (same manifest sha256) adds nothing.
    """
    from linkage.store.db import Store

    res = Store(store).import_run(run_dir)
    typer.echo(res.describe())


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    store: str = STORE_OPTION,
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        envvar="LINKAGE_RUN_DIR",
        help="Signup model run dir (default: latest imported run).",
    ),
    fail_closed: bool = typer.Option(
        False, "--fail-closed", help="Answer 503 instead of a degraded `clear`."
    ),
    max_body_bytes: int = typer.Option(64 * 1024, help="Largest accepted request body."),
    velocity_window: int | None = typer.Option(
        None,
        help="Signup velocity window in seconds (default: LINKAGE_VELOCITY_WINDOW_SECONDS, "
        "else 600).",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the HTTP service (FastAPI on uvicorn)."""
    import uvicorn

    from linkage.api.config import ServiceSettings
    from linkage.api.main import create_app

    given = {"velocity_window_seconds": velocity_window} if velocity_window is not None else {}
    settings = ServiceSettings(
        store_url=store,
        run_dir=run_dir,
        fail_open=not fail_closed,
        max_body_bytes=max_body_bytes,
        **given,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    if not app.state.signups.loaded:
        console.print(
            f"[yellow]warning:[/] no signup model loaded ({app.state.signups.load_error})"
        )
    loop, http = _server_io()
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False, loop=loop, http=http
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("serve")(serve)
    app.command("import-run")(import_run)
    app.add_typer(keys_app, name="keys")


def _server_io() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop and httptools (core dependencies; the
    signup load benchmark was measured with them), asyncio and h11 where they are missing
    (uvloop does not exist on Windows)."""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http
