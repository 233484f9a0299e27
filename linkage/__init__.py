"""linkage: graph-based account-linkage engine for coordinated account farms.

Public API::

    from linkage import Settings, load_dataset, run_detect, SignupScorer, evaluate
"""

from __future__ import annotations

__version__ = "0.1.0"

from linkage.errors import LinkageError, SchemaError
from linkage.settings import Settings


def __getattr__(name: str):  # lazy: keep `import linkage` cheap for the CLI and API
    if name == "load_dataset":
        from linkage.ingest import load_dataset

        return load_dataset
    if name in ("run_detect", "prepare"):
        from linkage import pipeline

        return getattr(pipeline, name)
    if name == "SignupScorer":
        from linkage.signup import SignupScorer

        return SignupScorer
    if name == "evaluate":
        from linkage.evaluate import evaluate

        return evaluate
    if name == "load_run":
        from linkage.store import load_run

        return load_run
    raise AttributeError(f"module 'linkage' has no attribute {name!r}")


__all__ = [
    "LinkageError",
    "SchemaError",
    "Settings",
    "SignupScorer",
    "__version__",
    "evaluate",
    "load_dataset",
    "load_run",
    "prepare",
    "run_detect",
]
