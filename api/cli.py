"""CLI commands of this package, mounted on the ``linkage`` app by ``linkage.cli``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
