"""One exception hierarchy for everything the engine can refuse.

Every error a user can cause (bad files, missing columns, unknown run, bad settings)
is a :class:`LinkageError`; the CLI and the API turn them into one clear message
instead of a traceback.  Schema problems are *collected* into one
:class:`SchemaError` rather than raised one by one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in the input: where it is and what is wrong."""

    table: str
    file: str
    #: where: the 1-based line an editor shows (CSV, JSON lines; a CSV header is line 1)
    #: or the 1-based row (Parquet); None = the whole file / column
    row: int | None
    column: str | None
    message: str
    value: str | None = None
    severity: str = (
        "error"  # "error" = row quarantined / run refused; "warning" = field set unknown
    )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            unit = "row" if ".parquet" in self.file else "line"
            where += f" {unit} {self.row}"
        if self.column:
            where += f" column {self.column!r}"
        val = f" (value {self.value!r})" if self.value is not None else ""
        return f"{where}: {self.message}{val}"


class LinkageError(Exception):
    """Base class: an error the user can act on (shown without a traceback)."""

    exit_code = 2


class DatasetError(LinkageError):
    """The dataset directory is missing, empty, or lacks a required table."""


class SchemaError(LinkageError):
    """The input breaks the data contract; carries *all* problems found."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = list(problems or [])
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        tail = f"\n  … and {more} more" if more > 0 else ""
        return f"{head}\n{shown}{tail}"


class SettingsError(LinkageError):
    """Settings file or values are invalid."""


class RunError(LinkageError):
    """A run directory is missing, incomplete or from an incompatible version."""


class ModelError(LinkageError):
    """The scoring model is missing or cannot score."""


class StoreError(LinkageError):
    """The store (database) cannot be opened, migrated or written."""
