"""The ``linkage`` command line.

Sub-commands are registered here; other packages (``fixtures``, ``api``) add their
own through a ``register(app)`` function so each keeps its commands next to its code.
User errors (:class:`~linkage.errors.LinkageError`) print one clear message and exit 2.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from linkage.errors import LinkageError

app = typer.Typer(
    name="linkage",
    help="Graph-based account-linkage engine: finds coordinated account farms "
    "(LLM distillation / model-extraction farms) among API accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _register_plugins() -> None:
    from api.cli import register as register_api
    from fixtures.cli import register as register_fixtures

    register_fixtures(app)
    register_api(app)


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
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
