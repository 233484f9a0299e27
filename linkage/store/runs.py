"""Runs: importing a run directory (stable cluster ids and lineage) and looking runs up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from linkage.errors import StoreError
from linkage.store.engine import as_utc, inserted_id, utcnow
from linkage.store.lineage import LineageEdge, Remap, remap_clusters
from linkage.store.models import (
    ClusterRow,
    FeedbackRow,
    LineageRow,
    MembershipRow,
    RunRow,
)
from linkage.store.queries import ordered_evidence
from linkage.store.rundir import verify_run


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :meth:`Store.import_run` did."""

    run_id: int
    path: str
    n_accounts: int
    n_clusters: int
    cluster_ids: dict[str, str]  # run's cluster id -> stable id
    lineage: dict[str, int]  # relation -> number of lineage rows
    #: False: this run (same manifest digest) was already in the store; nothing was added
    created: bool = True
    #: how the files were checked: "checksums" or "counts" (a run older than checksums)
    checked: str = "checksums"
    digest: str = ""

    def describe(self) -> str:
        """One line for the command line."""
        if not self.created:
            return (
                f"run {self.path} is already in the store as run {self.run_id} "
                f"(same manifest sha256 {self.digest[:12]}…): nothing imported"
            )
        lineage = ", ".join(f"{k} {v}" for k, v in sorted(self.lineage.items())) or "none"
        how = (
            "files match the manifest's checksums"
            if self.checked == "checksums"
            else "counts checked (no checksums: run written by an older linkage)"
        )
        return (
            f"imported run {self.run_id} from {self.path}: {self.n_accounts} accounts, "
            f"{self.n_clusters} clusters; lineage: {lineage}; {how}"
        )


class RunsMixin:
    """Import and look up runs (needs ``self.engine`` and ``self.url``)."""

    engine: Engine
    url: str

    def _import_checkpoint(self, stage: str) -> None:
        """Called between import stages (inside the transaction); a no-op test seam."""

    def import_run(self, run_dir: str | Path) -> ImportResult:
        """Load a run directory in one transaction, with stable cluster ids and lineage.

        The directory is checked whole first (:func:`linkage.store.rundir.verify_run`:
        files against the manifest's bytes, sha256 and row counts; counts and contents):
        an empty, truncated or edited run raises :class:`RunError` and the store is not
        touched.  A run whose manifest digest is already in the store is not imported
        again (``created=False``, the existing run's id).  Either the whole run is in the
        store afterwards or nothing changed (an error or a killed process rolls the
        transaction back).
        """
        verified = verify_run(run_dir)
        run = verified.run
        _refuse_peer_run(run, run_dir)
        path = str(Path(run_dir).resolve())
        new_members = _members_of(run)
        acc = run.accounts
        try:
            with self.engine.begin() as conn:
                self._import_checkpoint("begin")
                same = conn.execute(
                    select(RunRow.id, RunRow.n_accounts, RunRow.n_clusters)
                    .where(RunRow.digest == verified.digest)
                    .order_by(RunRow.id.desc())
                    .limit(1)
                ).first()
                if same is not None:
                    return _existing(conn, same, path, verified)
                remap = self._stable_ids(conn, new_members)
                run_id = _insert_run(conn, path, run, verified.digest)
                self._import_checkpoint("run")
                self._insert_clusters(conn, run_id, run, remap.ids, new_members)
                self._insert_memberships(conn, run_id, acc, remap.ids, new_members)
                _insert_lineage(conn, run_id, remap.edges)
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
            checked=verified.checked,
            digest=verified.digest,
        )

    def _stable_ids(self, conn: Connection, new_members: Mapping[str, frozenset[str]]) -> Remap:
        """Stable ids and lineage of the new run's clusters against the latest imported
        run and every banned cluster; fresh ids continue after the highest ``cl-`` number."""
        prev_id = conn.execute(select(func.max(RunRow.id))).scalar()
        previous = self._cluster_members(conn, prev_id) if prev_id is not None else {}
        banned = self._banned_members(conn)
        counter = [self._max_stable_number(conn)]

        def next_id() -> str:
            counter[0] += 1
            return f"cl-{counter[0]:06d}"

        return remap_clusters(new_members, previous, banned=banned, next_id=next_id)

    def _insert_clusters(
        self,
        conn: Connection,
        run_id: int,
        run: Any,
        ids: Mapping[str, str],
        new_members: Mapping[str, frozenset[str]],
    ) -> None:
        """One row per cluster of the run, under its stable id."""
        cluster_rows = []
        for c in run.clusters:
            cid = str(c["cluster_id"])
            cluster_rows.append(
                {
                    "run_id": run_id,
                    "cluster_id": ids[cid],
                    "source_id": cid,
                    "size": int(c.get("size") or len(new_members[cid])),
                    "score": float(c.get("score") or 0.0),
                    "level": str(c.get("level") or "clear"),
                    "evidence": ordered_evidence(c.get("evidence") or []),
                }
            )
        if cluster_rows:
            conn.execute(insert(ClusterRow.__table__), cluster_rows)
        self._import_checkpoint("clusters")

    def _insert_memberships(
        self,
        conn: Connection,
        run_id: int,
        acc: pd.DataFrame,
        ids: Mapping[str, str],
        new_members: Mapping[str, frozenset[str]],
    ) -> None:
        """One row per account of the run (its stable cluster id, score and level), in
        batches of 20,000."""
        member_cluster = {a: ids[cid] for cid, ms in new_members.items() for a in ms}
        rows = []
        for account_id, cluster_id, score, level in zip(
            acc["account_id"].astype(str),
            acc["cluster_id"],
            acc["score"].astype(float),
            acc["level"].astype(str),
            strict=True,
        ):
            stable = ids.get(str(cluster_id)) if not pd.isna(cluster_id) else None
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

    @staticmethod
    def _cluster_members(conn: Connection, run_id: int) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        q = select(MembershipRow.cluster_id, MembershipRow.account_id).where(
            MembershipRow.run_id == run_id, MembershipRow.cluster_id.is_not(None)
        )
        for cid, aid in conn.execute(q):
            if cid is not None:  # the query excludes NULL; the column type does not say so
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
                    RunRow.id,
                    RunRow.path,
                    RunRow.imported_at,
                    RunRow.n_accounts,
                    RunRow.n_clusters,
                    RunRow.digest,
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
            "digest": row.digest,
        }

    def imported_ids(self, run_dir: str | Path) -> tuple[int, dict[str, str]] | None:
        """(store run id, run's cluster id -> stable id) of the imported run that is
        ``run_dir`` (same manifest sha256, else same path); None if it was never imported."""
        from linkage.store.rundir import sha256_file

        man = Path(run_dir) / "manifest.json"
        digest = sha256_file(man) if man.is_file() else None
        with self.engine.connect() as conn:
            run_id = None
            if digest is not None:
                run_id = conn.execute(
                    select(func.max(RunRow.id)).where(RunRow.digest == digest)
                ).scalar()
        if run_id is None:
            run_id = self.run_by_path(run_dir)
        if run_id is None:
            return None
        return int(run_id), self.stable_ids(run_id)

    def run_digest(self, run_id: int) -> str | None:
        """The manifest sha256 recorded when ``run_id`` was imported (None before 0004)."""
        with self.engine.connect() as conn:
            return conn.execute(select(RunRow.digest).where(RunRow.id == run_id)).scalar()

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


def _members_of(run: Any) -> dict[str, frozenset[str]]:
    """Members of every cluster of a run: from clusters.jsonl, or from accounts.csv where
    a cluster line has no member list."""
    new_members: dict[str, frozenset[str]] = {
        str(c["cluster_id"]): frozenset(str(m) for m in c.get("members") or ())
        for c in run.clusters
    }
    if any(not m for m in new_members.values()):
        acc = run.accounts
        grouped = acc.dropna(subset=["cluster_id"]).groupby("cluster_id")["account_id"]
        from_acc = {str(k): frozenset(map(str, v)) for k, v in grouped}
        new_members = {k: (v or from_acc.get(k, frozenset())) for k, v in new_members.items()}
    return new_members


def _refuse_peer_run(run: Any, run_dir: str | Path) -> None:
    """Raise StoreError for a run made by a peer method (``--method rules`` ...)."""
    method = run.manifest.get("method", "graph")
    if method != "graph":
        # a peer's run has no clusters the service can explain or score signups
        # against: made the latest run it would empty /v1/clusters and fail /readyz
        raise StoreError(
            f"refusing to import {run_dir}: it was made with `--method {method}`; the "
            "store serves graph runs only (run `linkage detect` without --method)"
        )


def _insert_run(conn: Connection, path: str, run: Any, digest: str) -> int:
    """The ``runs`` row of an imported run (its manifest, settings and counts); its id."""
    settings = run.manifest.get("settings") or {}
    return inserted_id(
        conn.execute(
            insert(RunRow.__table__).values(
                path=path,
                manifest=run.manifest,
                settings=settings if isinstance(settings, dict) else {"value": settings},
                imported_at=utcnow(),
                n_accounts=len(run.accounts),
                n_clusters=len(run.clusters),
                digest=digest,
            )
        )
    )


def _insert_lineage(conn: Connection, run_id: int, edges: list[LineageEdge]) -> None:
    """One ``lineage`` row per edge of the run's remap (none: no statement)."""
    if edges:
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
                for e in edges
            ],
        )


def _existing(conn: Connection, same: Any, path: str, verified: Any) -> ImportResult:
    """The import result of a run already in the store (same manifest digest)."""
    ids = dict(
        conn.execute(
            select(ClusterRow.source_id, ClusterRow.cluster_id).where(ClusterRow.run_id == same.id)
        ).all()
    )
    return ImportResult(
        run_id=int(same.id),
        path=path,
        n_accounts=int(same.n_accounts),
        n_clusters=int(same.n_clusters),
        cluster_ids=ids,
        lineage={},
        created=False,
        checked=verified.checked,
        digest=verified.digest,
    )
