"""Collect problems: a capped verbatim sample plus exact counts of all of them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from linkage.errors import Problem

_MAX_VALUE_CHARS = 120


def _short(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"


def problem_key(p: Problem) -> str:
    """The counting key of a problem: ``"{table}/{column}/{message}"``."""
    return f"{p.table}/{p.column or '-'}/{p.message}"


class ProblemLog:
    """Problems found while ingesting; keeps ``max_listed`` verbatim, counts all."""

    def __init__(self, max_listed: int) -> None:
        self.max_listed = max_listed
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.first: dict[str, int] = {}  # key -> first (smallest) line / row where seen

    def _first(self, key: str, row: int | None) -> None:
        if row is not None and (key not in self.first or row < self.first[key]):
            self.first[key] = row

    def add(self, problem: Problem) -> None:
        """Record one problem."""
        key = problem_key(problem)
        self.counts[key] += 1
        self._first(key, problem.row)
        if len(self.problems) < self.max_listed:
            self.problems.append(problem)

    def add_mask(
        self,
        *,
        table: str,
        file: str,
        column: str | None,
        message: str,
        mask: np.ndarray,
        rows: np.ndarray,
        values: pd.Series | None,
        severity: str,
    ) -> int:
        """Record one problem per ``True`` in ``mask`` (vectorised; only the listed
        sample is materialised as :class:`Problem` objects).  Returns the count."""
        n = int(np.count_nonzero(mask))
        if n == 0:
            return 0
        key = f"{table}/{column or '-'}/{message}"
        self.counts[key] += n
        self._first(key, int(rows[mask].min()))
        room = self.max_listed - len(self.problems)
        if room > 0:
            idx = np.flatnonzero(mask)[:room]
            vals = values.iloc[idx].tolist() if values is not None else [None] * len(idx)
            self.problems.extend(
                Problem(table, file, int(rows[i]), column, message, _short(v), severity)
                for i, v in zip(idx, vals, strict=True)
            )
        return n

    def add_more(self, problem: Problem, n: int) -> None:
        """Count ``n`` more problems like ``problem`` without listing them (a reader
        that kept only the first ones in detail)."""
        if n > 0:
            key = problem_key(problem)
            self.counts[key] += n
            self._first(key, problem.row)
