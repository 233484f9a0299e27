"""Read queries of the service: clusters (filtered, paged) and accounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, func, select

from linkage.store.engine import as_utc
from linkage.store.lineage import cluster_lineage
from linkage.store.models import ClusterRow, FeedbackRow, MembershipRow, RunRow, SignupRow
from linkage.store.verdicts import CLEARING_VERDICTS, effective_level, latest, resolve

__all__ = [
    "CLEARING_VERDICTS",
    "QueriesMixin",
    "feedback_dict",
    "feedback_rows",
    "ordered_evidence",
]


def feedback_rows(conn: Connection, target_type: str, target_id: str) -> list[dict[str, Any]]:
    """Verdicts on one target, oldest first (server time)."""
    rows = conn.execute(
        select(FeedbackRow)
        .where(FeedbackRow.target_type == target_type, FeedbackRow.target_id == target_id)
        .order_by(FeedbackRow.ts, FeedbackRow.id)
    )
    return [feedback_dict(f) for f in rows]


def feedback_dict(f: Any) -> dict[str, Any]:
    """One feedback row as the API shows it."""
    return {
        "id": f.id,
        "target_type": f.target_type,
        "target_id": f.target_id,
        "verdict": f.verdict,
        "who": f.who,
        "why": f.why,
        "ts": as_utc(f.ts),
        "client_ts": as_utc(f.client_ts),
        "key_id": f.key_id,
        "run_id": f.run_id,
    }


def latest_verdicts_of(conn: Connection, target_type: str, ids: Iterable[str]) -> dict[str, str]:
    """target id -> its latest verdict (server time, then row id) for a page of targets."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(FeedbackRow.target_id, FeedbackRow.verdict, FeedbackRow.ts, FeedbackRow.id).where(
            FeedbackRow.target_type == target_type, FeedbackRow.target_id.in_(wanted)
        )
    ).all()
    by: dict[str, list[Any]] = {}
    for r in rows:
        by.setdefault(r.target_id, []).append(r)
    return {k: row.verdict for k, v in by.items() if (row := latest(v)) is not None}


class QueriesMixin:
    """Clusters and accounts as the API reads them (needs ``self.engine``)."""

    engine: Engine

    # ------------------------------------------------------------------ clusters
    _SORTS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "score": (ClusterRow.score.asc(),),
        "-score": (ClusterRow.score.desc(),),
        "size": (ClusterRow.size.asc(),),
        "-size": (ClusterRow.size.desc(),),
        "cluster_id": (),
        "-cluster_id": (ClusterRow.cluster_id.desc(),),
    }

    def list_clusters(
        self,
        *,
        level: Iterable[str] | None = None,
        min_score: float | None = None,
        min_size: int | None = None,
        sort: str = "-score",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, int | None, list[dict[str, Any]]]:
        """Clusters of the latest run: (total matching, run id, page of summaries)."""
        if sort not in self._SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        with self.engine.connect() as conn:
            run_id = conn.execute(select(func.max(RunRow.id))).scalar()
            if run_id is None:
                return 0, None, []
            conds = [ClusterRow.run_id == run_id]
            levels = list(level or [])
            if levels:
                conds.append(ClusterRow.level.in_(levels))
            if min_score is not None:
                conds.append(ClusterRow.score >= min_score)
            if min_size is not None:
                conds.append(ClusterRow.size >= min_size)
            total = conn.execute(
                select(func.count()).select_from(ClusterRow).where(*conds)
            ).scalar_one()
            q = (
                select(
                    ClusterRow.cluster_id,
                    ClusterRow.size,
                    ClusterRow.score,
                    ClusterRow.level,
                    ClusterRow.evidence,
                )
                .where(*conds)
                .order_by(*self._SORTS[sort], ClusterRow.cluster_id.asc())
                .limit(limit)
                .offset(offset)
            )
            rows = conn.execute(q).all()
            verdicts = latest_verdicts_of(conn, "cluster", (r.cluster_id for r in rows))
            items = []
            for r in rows:
                v = resolve(None, verdicts.get(r.cluster_id))
                items.append(
                    {
                        "cluster_id": r.cluster_id,
                        "size": r.size,
                        "score": r.score,
                        "level": r.level,
                        "verdict": v.verdict if v else None,
                        "effective_level": effective_level(r.level, v.verdict if v else None),
                        "top_evidence": (r.evidence or [None])[0],
                    }
                )
        return int(total), int(run_id), items

    def get_cluster(
        self, cluster_id: str, *, members_limit: int = 1000, members_offset: int = 0
    ) -> dict[str, Any] | None:
        """A cluster as last seen: members (by score), evidence, lineage, feedback."""
        with self.engine.connect() as conn:
            latest = conn.execute(select(func.max(RunRow.id))).scalar()
            row = conn.execute(
                select(ClusterRow)
                .where(ClusterRow.cluster_id == cluster_id)
                .order_by(ClusterRow.run_id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            c = row
            members = [
                {"account_id": m.account_id, "score": m.score, "level": m.level}
                for m in conn.execute(
                    select(MembershipRow.account_id, MembershipRow.score, MembershipRow.level)
                    .where(MembershipRow.run_id == c.run_id, MembershipRow.cluster_id == cluster_id)
                    .order_by(MembershipRow.score.desc(), MembershipRow.account_id.asc())
                    .limit(members_limit)
                    .offset(members_offset)
                )
            ]
            parents, children = cluster_lineage(conn, cluster_id)
            feedback = feedback_rows(conn, "cluster", cluster_id)
            own = latest_verdicts_of(conn, "account", (m["account_id"] for m in members))
        r = resolve(None, feedback[-1]["verdict"] if feedback else None)
        verdict = r.verdict if r is not None else None
        for m in members:  # the same resolution as GET /v1/accounts/{id} and the action
            mv = resolve(own.get(m["account_id"]), verdict)
            m["effective_level"] = effective_level(m["level"], mv.verdict if mv else None)
        return {
            "cluster_id": c.cluster_id,
            "run_id": c.run_id,
            "current": c.run_id == latest,
            "source_id": c.source_id,
            "size": c.size,
            "score": c.score,
            "level": c.level,
            "members": members,
            "evidence": ordered_evidence(c.evidence or []),
            "lineage": {"parents": parents, "children": children},
            "feedback": feedback,
            "verdict": verdict,
            "effective_level": effective_level(c.level, verdict),
        }

    # ------------------------------------------------------------------ accounts
    def get_account(self, account_id: str) -> dict[str, Any] | None:
        """An account as last seen in a run (or, failing that, as last scored at signup)."""
        with self.engine.connect() as conn:
            m = conn.execute(
                select(MembershipRow)
                .where(MembershipRow.account_id == account_id)
                .order_by(MembershipRow.run_id.desc())
                .limit(1)
            ).first()
            signup = conn.execute(
                select(SignupRow)
                .where(SignupRow.account_id == account_id)
                .order_by(SignupRow.id.desc())
                .limit(1)
            ).first()
            if m is None and signup is None:
                return None
            feedback = feedback_rows(conn, "account", account_id)
            evidence: list[dict[str, Any]] = []
            out: dict[str, Any]
            if m is not None:
                if m.cluster_id is not None:
                    ev = conn.execute(
                        select(ClusterRow.evidence).where(
                            ClusterRow.run_id == m.run_id, ClusterRow.cluster_id == m.cluster_id
                        )
                    ).scalar()
                    items = ordered_evidence(ev or [])
                    mine = [e for e in items if mentions(e.get("details"), account_id)]
                    evidence = mine or items
                    feedback += feedback_rows(conn, "cluster", m.cluster_id)
                out = {
                    "account_id": account_id,
                    "source": "run",
                    "run_id": m.run_id,
                    "score": m.score,
                    "level": m.level,
                    "cluster_id": m.cluster_id,
                    "evidence": evidence,
                }
            else:
                s = signup
                assert s is not None  # m is None here, and both None returned above
                out = {
                    "account_id": account_id,
                    "source": "signup",
                    "run_id": None,
                    "score": s.score,
                    "level": s.level,
                    "cluster_id": s.cluster_id,
                    "evidence": list(s.evidence or []),
                }
        feedback.sort(key=lambda f: (f["ts"], f["id"]))
        own = latest(f for f in feedback if f["target_type"] == "account")
        bulk = latest(f for f in feedback if f["target_type"] == "cluster")
        r = resolve(own["verdict"] if own else None, bulk["verdict"] if bulk else None)
        verdict = r.verdict if r is not None else None
        out["feedback"] = feedback
        out["verdict"] = verdict
        out["verdict_source"] = r.source if r is not None else None
        out["cleared"] = verdict in CLEARING_VERDICTS
        out["effective_level"] = effective_level(out["level"], verdict)
        if signup is not None:
            s = signup
            out["signup"] = {
                "score": s.score,
                "level": s.level,
                "cluster_id": s.cluster_id,
                "degraded": s.degraded,
                "created_at": as_utc(s.created_at),
            }
        else:
            out["signup"] = None
        return out


def ordered_evidence(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Evidence dicts normalised and ordered by contribution (strongest first)."""
    out: list[dict[str, Any]] = []
    for e in items:
        if not isinstance(e, Mapping):
            continue
        out.append(
            {
                "kind": str(e.get("kind", "")),
                "summary": str(e.get("summary", "")),
                "contribution": float(e.get("contribution") or 0.0),
                "details": dict(e.get("details") or {}),
            }
        )
    out.sort(key=lambda e: (-e["contribution"], e["kind"], e["summary"]))
    return out


def mentions(obj: Any, needle: str, depth: int = 0) -> bool:
    """Whether ``needle`` appears as a value anywhere in nested details."""
    if depth > 6:
        return False
    if isinstance(obj, str):
        return obj == needle
    if isinstance(obj, Mapping):
        return any(mentions(v, needle, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple | set | frozenset):
        return any(mentions(v, needle, depth + 1) for v in obj)
    return False
