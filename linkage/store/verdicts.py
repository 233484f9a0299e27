"""One resolution of analysts' verdicts, used by every view of an account.

``GET /v1/accounts/{id}``, ``GET /v1/accounts/{id}/action`` (and ``linkage action``),
``GET /v1/clusters/{id}`` and the next ``linkage detect --store`` (through
:func:`linkage.score.scoring.latest_verdicts`) all call :func:`resolve`, so they tell
the same story.  The rules:

1. **Time order within a target**: of the verdicts on one account (or on one cluster)
   the latest by *server* time wins (ties: the later row id).  The time a client
   claims is data only.
2. **The account's own verdict wins over its cluster's**: a verdict on the account
   was given on that account's own evidence (an upheld appeal, an individual
   confirmation); a cluster verdict is a bulk decision on all members.  So an
   upheld appeal stays upheld when the cluster is later confirmed a farm, and an
   account confirmed a farm stays one when its cluster is later cleared.  A new
   verdict *on the account* is what changes it.
3. Without an account verdict, the cluster's latest verdict applies to its members
   (members as of the latest run the cluster appears in).

The resolved verdict then sets the effective level (:func:`effective_level`):
``false_positive`` / ``appeal_upheld`` → ``clear``; ``confirmed_farm`` → ``block``;
none → the engine's level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CLEARING_VERDICTS",
    "FARM_VERDICTS",
    "Resolved",
    "effective_level",
    "latest",
    "resolve",
]

#: Verdicts that clear an account (the next detect keeps it clear).
CLEARING_VERDICTS = ("false_positive", "appeal_upheld")
#: Verdicts that make an account a farm (block; its identifiers weigh more next run).
FARM_VERDICTS = ("confirmed_farm",)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The verdict that applies to an account, and where it comes from."""

    verdict: str
    source: str  # "account" or "cluster"
    ts: Any = None
    id: int | None = None


def latest(rows: Iterable[Any]) -> Any | None:
    """The latest of verdict rows (objects or mappings with ``ts`` and ``id``) by server
    time, then row id; None for no rows."""
    best = None
    best_key: tuple[Any, int] | None = None
    for r in rows:
        ts = r["ts"] if isinstance(r, dict) else r.ts
        rid = r.get("id", 0) if isinstance(r, dict) else getattr(r, "id", 0)
        key = (_sortable(ts), int(rid or 0))
        if best_key is None or key >= best_key:
            best, best_key = r, key
    return best


def _sortable(ts: Any) -> Any:
    """Naive datetimes (SQLite) are UTC."""
    if isinstance(ts, datetime) and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def resolve(account: str | None, cluster: str | None) -> Resolved | None:
    """The verdict that applies, given the latest verdict on the account itself and the
    latest on its cluster (either None): the account's own wins (module docstring)."""
    if account is not None:
        return Resolved(account, "account")
    if cluster is not None:
        return Resolved(cluster, "cluster")
    return None


def effective_level(level: str, verdict: str | None) -> str:
    """The level after a resolved verdict."""
    if verdict in CLEARING_VERDICTS:
        return "clear"
    if verdict in FARM_VERDICTS:
        return "block"
    return level
