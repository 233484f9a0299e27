"""Evidence is data: typed records, ordered by contribution.

An :class:`Evidence` item says *what* supports a score (``kind``), in one human
sentence (``summary``), *how much* (``contribution``: its additive share of the
score's log-odds, like a splink match-weight waterfall; positive = towards farm),
and *where to look* (``details``: identifier values, account ids, template ids,
raw row numbers of the input files).  The CLI, the API and the notebooks render
these same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Evidence:
    kind: str
    summary: str
    contribution: float
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "contribution": round(float(self.contribution), 4),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        return cls(
            kind=str(d["kind"]),
            summary=str(d.get("summary", "")),
            contribution=float(d.get("contribution", 0.0)),
            details=dict(d.get("details") or {}),
        )


def ordered(items: Iterable[Evidence]) -> list[Evidence]:
    """Evidence sorted by contribution, strongest first (ties by kind for determinism)."""
    return sorted(items, key=lambda e: (-e.contribution, e.kind, e.summary))
