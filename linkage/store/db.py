"""The service store: runs, clusters, lineage, signups, feedback and API keys.

``Store(url)`` opens any SQLAlchemy URL (SQLite file by default, Postgres works)
and brings the schema to the newest alembic revision on open
(:mod:`linkage.store.migrate`; how to add a migration is explained there).
SQLite gets WAL journaling and ``synchronous=NORMAL`` so the signup route's
single INSERT is cheap; its files are created ``0600`` and guarded against being
deleted or replaced under a running service (:mod:`linkage.store.engine`).

The class is assembled from one module per resource:

* :mod:`linkage.store.runs` — :meth:`Store.import_run` (one transaction, stable
  ids; rules in :mod:`linkage.store.lineage`), ``latest_run``, ``run_by_path``…
* :mod:`linkage.store.queries` — ``list_clusters``, ``get_cluster``, ``get_account``;
* :mod:`linkage.store.signups` — ``record_signup``, ``recent_signups``…;
* :mod:`linkage.store.feedback` — ``add_feedback``, ``feedback_frame``, ``audit``;
* :mod:`linkage.store.keys` — ``create_key``, ``verify_key``… (HMAC-SHA-256).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from linkage.errors import StoreError
from linkage.store import migrate
from linkage.store.engine import as_utc, make_engine, utcnow
from linkage.store.feedback import AUDIT_KINDS, FEEDBACK_COLUMNS, FeedbackMixin
from linkage.store.keys import SLOW, ApiKey, KeysMixin, parse_token
from linkage.store.models import SchemaVersion, StoreProbe
from linkage.store.queries import CLEARING_VERDICTS, QueriesMixin
from linkage.store.runs import ImportResult, RunsMixin
from linkage.store.signups import SignupsMixin

__all__ = [
    "AUDIT_KINDS",
    "CLEARING_VERDICTS",
    "DEFAULT_URL",
    "FEEDBACK_COLUMNS",
    "SCHEMA_VERSION",
    "SLOW",
    "ApiKey",
    "ImportResult",
    "Store",
    "as_utc",
    "parse_token",
    "utcnow",
]

#: Legacy schema version written alongside alembic (refuses pre-alembic linkage).
SCHEMA_VERSION = 2
DEFAULT_URL = "sqlite:///linkage.db"


class Store(RunsMixin, QueriesMixin, SignupsMixin, FeedbackMixin, KeysMixin):
    """The service database (any SQLAlchemy URL; schema created/migrated on open)."""

    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False) -> None:
        self.url = url
        self._feedback_lock = threading.Lock()
        self._server_secret = None
        self.last_replay_skipped = 0
        #: (monotonic time, ok, error) of the last readiness write probe
        self._write_probe: tuple[float, bool, str | None] | None = None
        try:
            engine, self.db_path = make_engine(url, echo=echo)
            self.engine: Engine = engine
            self.revision = migrate.upgrade(self.engine, url)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open store {url!r}: {exc.__class__.__name__}: {exc}"
            ) from None

    def schema_version(self) -> int:
        """Legacy schema version recorded in the database."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(SchemaVersion.version)).scalar_one())

    def schema_revision(self) -> str | None:
        """Alembic revision the database is at."""
        with self.engine.connect() as conn:
            return migrate.current_revision(conn)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def ping(self) -> bool:
        """True if the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except (SQLAlchemyError, StoreError):
            return False

    def check_ready(self, *, write_max_age: float | None = None) -> dict[str, Any]:
        """Readiness of the store: ``{"ok", "read", "schema", "write", "error"}``.

        ``schema``: the database is at this code's head revision; ``write``: a
        probe row was rewritten and committed (fails on a read-only, deleted,
        replaced or full store).  ``write_max_age``: reuse the last write probe's
        outcome if it is at most that many seconds old (``write_age`` says how old),
        so frequent callers cost a read, not a committed write each.
        """
        out: dict[str, Any] = {"ok": False, "read": False, "schema": False, "write": False}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                out["read"] = True
                rev = migrate.current_revision(conn)
                out["schema"] = rev == migrate.head_revision()
                if not out["schema"]:
                    out["error"] = f"schema revision {rev}, expected {migrate.head_revision()}"
                    return out
            last = self._write_probe
            if write_max_age is not None and last is not None:
                age = time.monotonic() - last[0]
                if age <= write_max_age:
                    out["write"], out["ok"] = last[1], last[1]
                    out["write_age"] = round(age, 3)
                    if last[2]:
                        out["error"] = last[2]
                    return out
            with self.engine.begin() as conn:
                now = utcnow()
                done = conn.execute(
                    update(StoreProbe.__table__).where(StoreProbe.id == 1).values(ts=now)
                ).rowcount
                if not done:
                    conn.execute(StoreProbe.__table__.insert().values(id=1, ts=now))
            out["write"] = True
            out["ok"] = True
            self._write_probe = (time.monotonic(), True, None)
        except (SQLAlchemyError, StoreError, OSError) as exc:
            out["error"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300]}"
            if out["read"] and out["schema"]:
                self._write_probe = (time.monotonic(), False, out["error"])
        return out
