"""Persistence at the edges: run directories (files) and the service's database."""

from linkage.store.rundir import Run, load_run, write_run

__all__ = ["Run", "load_run", "write_run"]
