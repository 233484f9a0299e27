"""Opening a store: the SQLAlchemy engine, SQLite file hygiene and time helpers.

A SQLite file store is

* created ``0600`` (it holds e-mails and IPs; SQLite gives its ``-wal``/``-shm``
  files the same mode), and an existing group/world-readable file is tightened;
* opened ``mode=ro`` on a read-only filesystem (reads are served, writes fail);
* otherwise opened ``mode=rw`` once it exists, so a store file deleted under a running
  service is **not** silently recreated empty;
* watched: every connection checkout compares the file's (device, inode) with the
  one opened, so a deleted or replaced file turns reads and writes into a
  :class:`~linkage.errors.StoreError` (HTTP 503) instead of writes acknowledged
  into an unlinked inode and lost.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from linkage.errors import StoreError

log = logging.getLogger(__name__)

_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")

#: Mode of store files (and the key secret) this code creates.
FILE_MODE = 0o600


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """Read datetimes back as UTC-aware (SQLite returns naive values)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


#: Timestamps the store accepts: not before this ...
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: ... and not more than this far after the server's clock (clock skew).
MAX_FUTURE = timedelta(days=1)


def bounded_utc(value: datetime, *, now: datetime | None = None) -> datetime:
    """``value`` as UTC if it lies in [2000-01-01, now + 1 day]; ValueError otherwise.

    Naive values are UTC.  Never raises OverflowError (``9999-12-31T23:59:59-14:00``
    is out of range, not a crash).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None
    latest = (now or utcnow()) + MAX_FUTURE
    if utc < EARLIEST or utc > latest:
        raise ValueError(
            f"timestamp must lie between {EARLIEST:%Y-%m-%d} and now + {MAX_FUTURE.days} day "
            f"(UTC {latest:%Y-%m-%dT%H:%M:%SZ})"
        )
    return utc


def parse_bounded(value: object, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 string (or datetime) within the window, as UTC; ValueError otherwise.

    Numbers and numeric strings (epochs of unknown unit) are refused.
    """
    if isinstance(value, datetime):
        return bounded_utc(value, now=now)
    if not isinstance(value, str) or not _ISO_START.match(value.strip()):
        raise ValueError("timestamp must be an ISO 8601 string (YYYY-MM-DD...)")
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("timestamp is not valid ISO 8601") from None
    return bounded_utc(dt, now=now)


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL; None for memory, URI-mode or other databases."""
    if not url.startswith("sqlite"):
        return None
    db = url.split("///", 1)[1] if "///" in url else ""
    if db in ("", ":memory:") or "mode=memory" in url or "?" in db or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def _tighten(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("store file %s had mode %o; tightening to %o", p, mode, FILE_MODE)
            os.chmod(p, FILE_MODE)


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _quiet_sql_logs() -> None:
    """Statements, parameters and result rows hold e-mails, IPs, devices, cards and
    feedback text: SQLAlchemy's engine/pool loggers stay at WARNING even when the root
    logger is at DEBUG (``--verbose``), unless the operator set their level explicitly
    (or passes ``echo=True``)."""
    for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.WARNING)


def make_engine(url: str, *, echo: bool = False) -> tuple[Engine, Path | None]:
    """An engine for ``url`` and, for a SQLite file, the file it guards.

    ``hide_parameters``: an error's message names the statement, never the values
    bound to it (a signup's e-mail or card would otherwise reach the logs)."""
    if not echo:
        _quiet_sql_logs()
    if not url.startswith("sqlite"):
        return create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True), None
    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
    memory = path is None and (url.rstrip("/") in ("sqlite:", "sqlite:/") or "memory" in url)
    kwargs: dict[str, Any] = {"connect_args": connect_args, "hide_parameters": True}
    if path is None:
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)
    else:
        path = path.resolve() if path.parent.is_dir() else path
        if not path.parent.is_dir():
            raise StoreError(f"cannot open store {url!r}: directory {path.parent} does not exist")
        read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
        if read_only and path.exists():
            # serve reads; every write fails (HTTP 503) and /readyz reports it
            log.warning("store %s is on a read-only filesystem: writes will fail", path)
            # immutable: a WAL store has no -shm to share on a read-only filesystem
            ro_url = f"sqlite:///file:{quote(str(path))}?mode=ro&immutable=1&uri=true"
            engine = create_engine(
                ro_url, echo=echo, connect_args=connect_args, hide_parameters=True
            )
            return engine, path
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            os.close(fd)  # an empty file is an empty SQLite database
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create store file {path}: {exc}") from None
        _tighten(path)
        rw_url = f"sqlite:///file:{quote(str(path))}?mode=rw&uri=true"
        kwargs["pool_size"] = 16
        kwargs["max_overflow"] = 16
        engine = create_engine(rw_url, echo=echo, **kwargs)
        identity = _identity(path)

        @event.listens_for(engine, "checkout")
        def _same_file(*_: Any) -> None:
            try:
                now = _identity(path)
            except OSError:
                now = None
            if now != identity:
                raise StoreError(
                    f"store file {path} was removed or replaced while open; restore it or restart"
                )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine, path
