"""The service store: runs, clusters, lineage, signups, feedback and API keys.

``Store(url)`` opens any SQLAlchemy URL (SQLite file by default, Postgres works)
and creates / migrates the schema on open.  SQLite gets WAL journaling and
``synchronous=NORMAL`` so the signup route's single INSERT is cheap.

Main entry points:

* :meth:`Store.import_run` — load a run directory in **one transaction**, mapping
  the run's cluster ids onto stable ids (rules in :mod:`linkage.store.lineage`).
* :meth:`Store.feedback_frame` — analysts' verdicts for the next ``detect``.
* :meth:`Store.create_key` / :meth:`Store.verify_key` — API keys; only a salted
  scrypt hash of the secret is stored, the token carries the key id
  (``lk_<id>_<secret>``) so verifying a key reads one row.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from linkage.errors import StoreError
from linkage.store.lineage import remap_clusters
from linkage.store.models import (
    SCOPES,
    TARGET_TYPES,
    VERDICTS,
    ApiKeyRow,
    Base,
    ClusterRow,
    FeedbackRow,
    LineageRow,
    MembershipRow,
    RunRow,
    SchemaVersion,
    SignupRow,
)
from linkage.store.rundir import load_run

log = logging.getLogger(__name__)

#: Schema version this code writes; :data:`MIGRATIONS` brings older stores forward.
SCHEMA_VERSION = 1
DEFAULT_URL = "sqlite:///linkage.db"
FEEDBACK_COLUMNS = ["account_id", "verdict", "ts", "who", "why"]
#: Verdicts that clear an account (the next detect keeps it clear).
CLEARING_VERDICTS = ("false_positive", "appeal_upheld")

# scrypt parameters for API-key hashes (16 MiB, ~30-60 ms once per key per process:
# verified keys are cached in memory, see Store.verify_key).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCHEME = f"scrypt:n={_SCRYPT_N},r={_SCRYPT_R},p={_SCRYPT_P}"
_TABLES = [
    t.__table__
    for t in (RunRow, ClusterRow, MembershipRow, LineageRow, SignupRow, FeedbackRow, ApiKeyRow)
]


def _migrate_to_1(conn: Connection) -> None:
    """Initial schema (tables created only if missing)."""
    Base.metadata.create_all(conn, tables=_TABLES, checkfirst=True)


#: version -> function that migrates a store from ``version - 1`` to ``version``.
#: Add new versions at the end with explicit DDL (never edit an applied migration).
MIGRATIONS = {1: _migrate_to_1}


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """Read datetimes back as UTC-aware (SQLite returns naive values)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :meth:`Store.import_run` did."""

    run_id: int
    path: str
    n_accounts: int
    n_clusters: int
    cluster_ids: dict[str, str]  # run's cluster id -> stable id
    lineage: dict[str, int]  # relation -> number of lineage rows


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A verified (or listed) API key; never carries the secret."""

    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` implies every scope."""
        return scope in self.scopes or "admin" in self.scopes


@dataclass
class _KeyCache:
    """Successful verifications: (key id, sha256(token)) -> the stored hash they matched."""

    entries: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_size: int = 4096


#: Process-wide: an entry is only valid for the exact stored hash it was checked against,
#: so sharing it between Store instances (and databases) is safe.
_KEY_CACHE = _KeyCache()


def hash_secret(secret: str, salt: bytes) -> str:
    """scrypt hash (hex) of a key secret with its per-key salt."""
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    ).hex()


def parse_token(token: str) -> tuple[str, str] | None:
    """Split ``lk_<id>_<secret>`` into (id, secret); None if malformed."""
    if not token.startswith("lk_"):
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    key_id, secret = parts[1], parts[2]
    if len(key_id) > 32 or len(secret) > 256 or not key_id.isalnum():
        return None
    return key_id, secret


class Store:
    """The service database (any SQLAlchemy URL; schema created/migrated on open)."""

    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False) -> None:
        self.url = url
        self._key_cache = _KEY_CACHE
        try:
            self.engine: Engine = self._make_engine(url, echo=echo)
            self._migrate()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open store {url!r}: {exc.__class__.__name__}: {exc}"
            ) from None

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _make_engine(url: str, *, echo: bool) -> Engine:
        if url.startswith("sqlite"):
            db = url.split("///", 1)[1] if "///" in url else ""
            memory = db in ("", ":memory:") or "mode=memory" in url
            if not memory:
                parent = Path(db).expanduser().parent
                if not parent.is_dir():
                    raise StoreError(
                        f"cannot open store {url!r}: directory {parent} does not exist"
                    )
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
            if memory:
                kwargs["poolclass"] = StaticPool
            else:
                kwargs["pool_size"] = 16
                kwargs["max_overflow"] = 16
            engine = create_engine(url, echo=echo, **kwargs)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return engine
        return create_engine(url, echo=echo, pool_pre_ping=True)

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            SchemaVersion.__table__.create(conn, checkfirst=True)
            row = conn.execute(select(SchemaVersion.version).where(SchemaVersion.id == 1)).first()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.url!r} has schema version {current}; this linkage knows up to "
                    f"{SCHEMA_VERSION}: upgrade linkage"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                log.info("migrating store %s to schema version %d", self.url, version)
                MIGRATIONS[version](conn)
            if row is None:
                conn.execute(insert(SchemaVersion.__table__).values(id=1, version=SCHEMA_VERSION))
            elif current != SCHEMA_VERSION:
                conn.execute(
                    update(SchemaVersion.__table__)
                    .where(SchemaVersion.id == 1)
                    .values(version=SCHEMA_VERSION)
                )

    def schema_version(self) -> int:
        """Schema version recorded in the database."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(SchemaVersion.version)).scalar_one())

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def ping(self) -> bool:
        """True if the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # ------------------------------------------------------------------ runs
    def _import_checkpoint(self, stage: str) -> None:
        """Called between import stages (inside the transaction); a no-op test seam."""

    def import_run(self, run_dir: str | Path) -> ImportResult:
        """Load a run directory in one transaction, with stable cluster ids and lineage.

        Either the whole run is in the store afterwards or nothing changed
        (an error or a killed process rolls the transaction back).
        """
        run = load_run(run_dir)
        path = str(Path(run_dir).resolve())
        new_members: dict[str, frozenset[str]] = {
            str(c["cluster_id"]): frozenset(str(m) for m in c.get("members") or ())
            for c in run.clusters
        }
        acc = run.accounts
        if any(not m for m in new_members.values()):
            # clusters.jsonl without member lists: take them from accounts.csv
            grouped = acc.dropna(subset=["cluster_id"]).groupby("cluster_id")["account_id"]
            from_acc = {str(k): frozenset(map(str, v)) for k, v in grouped}
            new_members = {k: (v or from_acc.get(k, frozenset())) for k, v in new_members.items()}
        settings = run.manifest.get("settings") or {}
        try:
            with self.engine.begin() as conn:
                self._import_checkpoint("begin")
                prev_id = conn.execute(select(func.max(RunRow.id))).scalar()
                previous = self._cluster_members(conn, prev_id) if prev_id is not None else {}
                banned = self._banned_members(conn)
                counter = [self._max_stable_number(conn)]

                def next_id() -> str:
                    counter[0] += 1
                    return f"cl-{counter[0]:06d}"

                remap = remap_clusters(new_members, previous, banned=banned, next_id=next_id)
                run_id = conn.execute(
                    insert(RunRow.__table__).values(
                        path=path,
                        manifest=run.manifest,
                        settings=settings if isinstance(settings, dict) else {"value": settings},
                        imported_at=utcnow(),
                        n_accounts=len(acc),
                        n_clusters=len(run.clusters),
                    )
                ).inserted_primary_key[0]
                self._import_checkpoint("run")
                cluster_rows = []
                for c in run.clusters:
                    cid = str(c["cluster_id"])
                    cluster_rows.append(
                        {
                            "run_id": run_id,
                            "cluster_id": remap.ids[cid],
                            "source_id": cid,
                            "size": int(c.get("size") or len(new_members[cid])),
                            "score": float(c.get("score") or 0.0),
                            "level": str(c.get("level") or "clear"),
                            "evidence": _ordered_evidence(c.get("evidence") or []),
                        }
                    )
                if cluster_rows:
                    conn.execute(insert(ClusterRow.__table__), cluster_rows)
                self._import_checkpoint("clusters")
                member_cluster = {a: remap.ids[cid] for cid, ms in new_members.items() for a in ms}
                rows = []
                for account_id, cluster_id, score, level in zip(
                    acc["account_id"].astype(str),
                    acc["cluster_id"],
                    acc["score"].astype(float),
                    acc["level"].astype(str),
                    strict=True,
                ):
                    stable = remap.ids.get(str(cluster_id)) if not pd.isna(cluster_id) else None
                    rows.append(
                        {
                            "run_id": run_id,
                            "account_id": account_id,
                            "cluster_id": stable or member_cluster.get(account_id),
                            "score": score,
                            "level": level,
                        }
                    )
                for start in range(0, len(rows), 20000):
                    conn.execute(insert(MembershipRow.__table__), rows[start : start + 20000])
                    self._import_checkpoint("memberships")
                if remap.edges:
                    conn.execute(
                        insert(LineageRow.__table__),
                        [
                            {
                                "run_id": run_id,
                                "cluster_id": e.cluster_id,
                                "parent_cluster_id": e.parent_cluster_id,
                                "relation": e.relation,
                                "overlap": e.overlap,
                            }
                            for e in remap.edges
                        ],
                    )
                self._import_checkpoint("lineage")
        except SQLAlchemyError as exc:
            raise StoreError(f"importing {path} into {self.url!r} failed: {exc}") from None
        counts: dict[str, int] = {}
        for e in remap.edges:
            counts[e.relation] = counts.get(e.relation, 0) + 1
        return ImportResult(
            run_id=int(run_id),
            path=path,
            n_accounts=len(acc),
            n_clusters=len(run.clusters),
            cluster_ids=dict(remap.ids),
            lineage=counts,
        )

    @staticmethod
    def _cluster_members(conn: Connection, run_id: int) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        q = select(MembershipRow.cluster_id, MembershipRow.account_id).where(
            MembershipRow.run_id == run_id, MembershipRow.cluster_id.is_not(None)
        )
        for cid, aid in conn.execute(q):
            out.setdefault(cid, set()).add(aid)
        return {k: frozenset(v) for k, v in out.items()}

    @staticmethod
    def _banned_members(conn: Connection) -> dict[str, frozenset[str]]:
        """Members (as last seen) of every cluster ever blocked or confirmed as a farm."""
        blocked = set(
            conn.scalars(
                select(ClusterRow.cluster_id).where(ClusterRow.level == "block").distinct()
            )
        )
        confirmed = set(
            conn.scalars(
                select(FeedbackRow.target_id).where(
                    FeedbackRow.target_type == "cluster", FeedbackRow.verdict == "confirmed_farm"
                )
            )
        )
        out: dict[str, frozenset[str]] = {}
        for cid in sorted(blocked | confirmed):
            last = conn.execute(
                select(func.max(ClusterRow.run_id)).where(ClusterRow.cluster_id == cid)
            ).scalar()
            if last is None:
                continue
            members = conn.scalars(
                select(MembershipRow.account_id).where(
                    MembershipRow.run_id == last, MembershipRow.cluster_id == cid
                )
            )
            out[cid] = frozenset(members)
        return out

    @staticmethod
    def _max_stable_number(conn: Connection) -> int:
        best = 0
        for cid in conn.scalars(select(ClusterRow.cluster_id).distinct()):
            if cid.startswith("cl-") and cid[3:].isdigit():
                best = max(best, int(cid[3:]))
        return best

    def latest_run(self) -> dict[str, Any] | None:
        """The most recently imported run (id, path, imported_at, counts) or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    RunRow.id, RunRow.path, RunRow.imported_at, RunRow.n_accounts, RunRow.n_clusters
                )
                .order_by(RunRow.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return {
            "run_id": row.id,
            "path": row.path,
            "imported_at": as_utc(row.imported_at),
            "n_accounts": row.n_accounts,
            "n_clusters": row.n_clusters,
        }

    def run_by_path(self, path: str | Path) -> int | None:
        """Latest run id imported from ``path`` (None if never imported)."""
        p = str(Path(path).resolve())
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(RunRow.id)).where(RunRow.path == p)).scalar()

    def stable_ids(self, run_id: int) -> dict[str, str]:
        """Run's own cluster id -> stable id, for one imported run."""
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(ClusterRow.source_id, ClusterRow.cluster_id).where(
                        ClusterRow.run_id == run_id
                    )
                ).all()
            )

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
            items = [
                {
                    "cluster_id": r.cluster_id,
                    "size": r.size,
                    "score": r.score,
                    "level": r.level,
                    "top_evidence": (r.evidence or [None])[0],
                }
                for r in conn.execute(q)
            ]
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
            parents = [
                _lineage_dict(r)
                for r in conn.execute(
                    select(LineageRow)
                    .where(LineageRow.cluster_id == cluster_id)
                    .order_by(LineageRow.id)
                )
            ]
            children = [
                _lineage_dict(r)
                for r in conn.execute(
                    select(LineageRow)
                    .where(
                        LineageRow.parent_cluster_id == cluster_id,
                        LineageRow.cluster_id != cluster_id,
                    )
                    .order_by(LineageRow.id)
                )
            ]
            feedback = self._feedback(conn, "cluster", cluster_id)
        return {
            "cluster_id": c.cluster_id,
            "run_id": c.run_id,
            "current": c.run_id == latest,
            "source_id": c.source_id,
            "size": c.size,
            "score": c.score,
            "level": c.level,
            "members": members,
            "evidence": _ordered_evidence(c.evidence or []),
            "lineage": {"parents": parents, "children": children},
            "feedback": feedback,
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
            feedback = self._feedback(conn, "account", account_id)
            evidence: list[dict[str, Any]] = []
            out: dict[str, Any]
            if m is not None:
                if m.cluster_id is not None:
                    ev = conn.execute(
                        select(ClusterRow.evidence).where(
                            ClusterRow.run_id == m.run_id, ClusterRow.cluster_id == m.cluster_id
                        )
                    ).scalar()
                    items = _ordered_evidence(ev or [])
                    mine = [e for e in items if _mentions(e.get("details"), account_id)]
                    evidence = mine or items
                    feedback += self._feedback(conn, "cluster", m.cluster_id)
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
        own = [f for f in feedback if f["target_type"] == "account"]
        verdict = own[-1]["verdict"] if own else None
        cleared = verdict in CLEARING_VERDICTS
        out["feedback"] = feedback
        out["verdict"] = verdict
        out["cleared"] = cleared
        out["effective_level"] = (
            "clear" if cleared else ("block" if verdict == "confirmed_farm" else out["level"])
        )
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

    # ------------------------------------------------------------------ signups
    def record_signup(
        self,
        *,
        account_id: str,
        payload: Mapping[str, Any],
        score: float,
        level: str,
        cluster_id: str | None,
        evidence: list[dict[str, Any]],
        degraded: bool,
        created_at: datetime | None = None,
    ) -> None:
        """Record one scored signup (a single INSERT)."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(SignupRow.__table__).values(
                    account_id=account_id,
                    payload=dict(payload),
                    score=float(score),
                    level=level,
                    cluster_id=cluster_id,
                    evidence=evidence,
                    degraded=bool(degraded),
                    created_at=created_at or utcnow(),
                )
            )

    def recent_signups(self, since: datetime, *, limit: int = 100_000) -> list[dict[str, Any]]:
        """Payloads of signups recorded at or after ``since`` (oldest first), to warm velocity."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SignupRow.payload)
                .where(SignupRow.created_at >= since)
                .order_by(SignupRow.id.desc())
                .limit(limit)
            ).all()
        return [dict(r.payload) for r in reversed(rows)]

    def count_signups(self) -> int:
        """Number of recorded signups."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SignupRow)).scalar_one())

    # ------------------------------------------------------------------ feedback
    def target_exists(self, target_type: str, target_id: str) -> bool:
        """Whether an account (in a run or a signup) or a cluster is known to the store."""
        with self.engine.connect() as conn:
            if target_type == "cluster":
                q = select(ClusterRow.cluster_id).where(ClusterRow.cluster_id == target_id).limit(1)
                return conn.execute(q).first() is not None
            q1 = (
                select(MembershipRow.account_id)
                .where(MembershipRow.account_id == target_id)
                .limit(1)
            )
            if conn.execute(q1).first() is not None:
                return True
            q2 = select(SignupRow.id).where(SignupRow.account_id == target_id).limit(1)
            return conn.execute(q2).first() is not None

    def add_feedback(
        self,
        *,
        target_type: str,
        target_id: str,
        verdict: str,
        who: str,
        why: str,
        ts: datetime | None = None,
    ) -> dict[str, Any]:
        """Store one verdict; returns it with its id."""
        if target_type not in TARGET_TYPES:
            raise ValueError(f"target_type must be one of {TARGET_TYPES}")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        ts = as_utc(ts) or utcnow()
        with self.engine.begin() as conn:
            fid = conn.execute(
                insert(FeedbackRow.__table__).values(
                    target_type=target_type,
                    target_id=target_id,
                    verdict=verdict,
                    who=who,
                    why=why,
                    ts=ts,
                )
            ).inserted_primary_key[0]
        return {
            "id": int(fid),
            "target_type": target_type,
            "target_id": target_id,
            "verdict": verdict,
            "who": who,
            "why": why,
            "ts": ts,
        }

    @staticmethod
    def _feedback(conn: Connection, target_type: str, target_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(FeedbackRow)
            .where(FeedbackRow.target_type == target_type, FeedbackRow.target_id == target_id)
            .order_by(FeedbackRow.ts, FeedbackRow.id)
        )
        return [
            {
                "id": f.id,
                "target_type": f.target_type,
                "target_id": f.target_id,
                "verdict": f.verdict,
                "who": f.who,
                "why": f.why,
                "ts": as_utc(f.ts),
            }
            for f in rows
        ]

    def feedback_frame(self) -> pd.DataFrame:
        """All verdicts as ``account_id, verdict, ts, who, why`` (for the next ``detect``).

        Cluster feedback is expanded to the cluster's members in the latest run in
        which that cluster appears.  Ordered by ``ts``; ``ts`` is UTC.
        """
        records: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for f in conn.execute(
                select(FeedbackRow).order_by(FeedbackRow.ts, FeedbackRow.id)
            ).all():
                base = {"verdict": f.verdict, "ts": as_utc(f.ts), "who": f.who, "why": f.why}
                if f.target_type == "account":
                    records.append({"account_id": f.target_id, **base})
                    continue
                last = conn.execute(
                    select(func.max(ClusterRow.run_id)).where(ClusterRow.cluster_id == f.target_id)
                ).scalar()
                if last is None:
                    continue
                for aid in conn.scalars(
                    select(MembershipRow.account_id)
                    .where(MembershipRow.run_id == last, MembershipRow.cluster_id == f.target_id)
                    .order_by(MembershipRow.account_id)
                ):
                    records.append({"account_id": aid, **base})
        frame = pd.DataFrame.from_records(records, columns=FEEDBACK_COLUMNS)
        frame["account_id"] = frame["account_id"].astype("string")
        frame["verdict"] = frame["verdict"].astype("string")
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame["who"] = frame["who"].astype("string")
        frame["why"] = frame["why"].astype("string")
        return frame

    # ------------------------------------------------------------------ API keys
    def create_key(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """Create a key; returns (key, token).  The token is shown once and never stored."""
        scope_set = frozenset(scopes)
        bad = sorted(scope_set - set(SCOPES))
        if bad or not scope_set:
            raise StoreError(f"invalid scopes {bad or '[]'}; choose from {', '.join(SCOPES)}")
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = utcnow()
        with self.engine.begin() as conn:
            for _ in range(10):
                key_id = secrets.token_hex(6)
                if conn.execute(select(ApiKeyRow.id).where(ApiKeyRow.id == key_id)).first() is None:
                    break
            else:  # pragma: no cover - 48-bit ids
                raise StoreError("could not allocate a key id")
            conn.execute(
                insert(ApiKeyRow.__table__).values(
                    id=key_id,
                    name=name,
                    scheme=_SCHEME,
                    salt=salt.hex(),
                    hash=hash_secret(secret, salt),
                    scopes=" ".join(sorted(scope_set)),
                    created_at=now,
                    revoked_at=None,
                )
            )
        return ApiKey(key_id, name, scope_set, now), f"lk_{key_id}_{secret}"

    def list_keys(self) -> list[ApiKey]:
        """All keys (never their secrets)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
            ).all()
            return [
                ApiKey(
                    r.id,
                    r.name,
                    frozenset(r.scopes.split()),
                    as_utc(r.created_at),
                    as_utc(r.revoked_at),
                )
                for r in rows
            ]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(ApiKeyRow.__table__)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        with self._key_cache.lock:
            for k in [k for k in self._key_cache.entries if k[0] == key_id]:
                del self._key_cache.entries[k]
        return res.rowcount > 0

    def key_is_cached(self, token: str) -> bool:
        """Whether verifying ``token`` will skip scrypt (in memory, no I/O).

        Lets an async caller verify cached keys inline and send the rest to a thread.
        """
        parsed = parse_token(token)
        if parsed is None:
            return True  # rejected without hashing
        return (parsed[0], hashlib.sha256(token.encode()).hexdigest()) in self._key_cache.entries

    def verify_key(self, token: str) -> ApiKey | None:
        """The active key a token belongs to, or None.

        Reads one row (by the id in the token) every time, so revocation is
        immediate; the scrypt check runs once per key and process, after which a
        SHA-256 of the token is matched against the in-memory cache.
        """
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self.engine.connect() as conn:
            r = conn.execute(
                select(
                    ApiKeyRow.id,
                    ApiKeyRow.name,
                    ApiKeyRow.scheme,
                    ApiKeyRow.salt,
                    ApiKeyRow.hash,
                    ApiKeyRow.scopes,
                    ApiKeyRow.created_at,
                    ApiKeyRow.revoked_at,
                ).where(ApiKeyRow.id == key_id)
            ).first()
        if r is None or r.revoked_at is not None or r.scheme != _SCHEME:
            return None
        ck = (r.id, hashlib.sha256(token.encode()).hexdigest())
        if self._key_cache.entries.get(ck) != r.hash:
            if not hmac.compare_digest(hash_secret(secret, bytes.fromhex(r.salt)), r.hash):
                return None
            with self._key_cache.lock:
                if len(self._key_cache.entries) >= self._key_cache.max_size:
                    self._key_cache.entries.clear()
                self._key_cache.entries[ck] = r.hash
        return ApiKey(r.id, r.name, frozenset(r.scopes.split()), as_utc(r.created_at))

    # ------------------------------------------------------------------ maintenance
    def delete_signups_before(self, ts: datetime) -> int:
        """Drop recorded signups older than ``ts`` (retention); returns rows deleted."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(SignupRow.__table__).where(SignupRow.created_at < ts)
            ).rowcount


def _lineage_dict(r: Any) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "cluster_id": r.cluster_id,
        "parent_cluster_id": r.parent_cluster_id,
        "relation": r.relation,
        "overlap": r.overlap,
    }


def _ordered_evidence(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Evidence dicts normalised and ordered by contribution (strongest first)."""
    out = []
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


def _mentions(obj: Any, needle: str, depth: int = 0) -> bool:
    """Whether ``needle`` appears as a value anywhere in nested details."""
    if depth > 6:
        return False
    if isinstance(obj, str):
        return obj == needle
    if isinstance(obj, Mapping):
        return any(_mentions(v, needle, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple | set | frozenset):
        return any(_mentions(v, needle, depth + 1) for v in obj)
    return False
