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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote

from sqlalchemy import CursorResult, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from linkage.errors import StoreError

log = logging.getLogger(__name__)

_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")

#: Mode of store files (and the key secret) this code creates.
FILE_MODE = 0o600


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


@overload
def as_utc(dt: datetime) -> datetime: ...
@overload
def as_utc(dt: None) -> None: ...
@overload
def as_utc(dt: datetime | None) -> datetime | None: ...
def as_utc(dt: datetime | None) -> datetime | None:
    """Read datetimes back as UTC-aware (SQLite returns naive values)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row a single-row ``INSERT`` just wrote."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise StoreError("the database did not report the id of the row just written")
    return int(key[0])


#: The window of client timestamps (a signup's ``created_at``, a verdict's ``ts``): the
#: date as written lies in years 2000..2099.  Client times are data only (velocity and
#: verdict order run on the server's clock), so the window is a sanity bound that the
#: OpenAPI schema can state exactly (:data:`TIMESTAMP_PATTERN`).
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099
EARLIEST = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
WINDOW_TEXT = f"{EARLIEST_YEAR}-01-01 .. {LATEST_YEAR}-12-31 (the date as written)"

_D = "[0-9]"
_DATE = (
    f"20{_D}{_D}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]{_D}|3[01])"
    f"|(?:0[469]|11)-(?:0[1-9]|[12]{_D}|30)|02-(?:0[1-9]|1{_D}|2[0-8]))"
    "|20(?:[02468][048]|[13579][26])-02-29"
)
_TIME = f"(?:[01]{_D}|2[0-3]):[0-5]{_D}(?::[0-5]{_D}(?:\\.{_D}{{1,6}})?)?"
_OFFSET = f"(?:[Zz]|[+-](?:[01]{_D}|2[0-3]):[0-5]{_D})?"
#: An ISO 8601 / RFC 3339 date-time in the window: valid calendar date (leap years
#: included), ``T``, ``t`` or a space, ``hh:mm[:ss[.ffffff]]``, then ``Z`` or ``±hh:mm``
#: or nothing (naive = UTC).  The API checks values against exactly this (an
#: ECMA-compatible regex: it goes into the OpenAPI schema).
TIMESTAMP_PATTERN = f"^(?:{_DATE})[Tt ]{_TIME}{_OFFSET}$"
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)


def bounded_utc(value: datetime, *, now: datetime | None = None) -> datetime:
    """``value`` as UTC if its date as written lies in the window; ValueError otherwise.

    Naive values are UTC.  Never raises OverflowError (``9999-12-31T23:59:59-14:00``
    is out of range, not a crash).  ``now`` is accepted for compatibility (unused: the
    window no longer moves with the clock).
    """
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"timestamp must lie in {WINDOW_TEXT}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None


def parse_bounded(value: object, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 date-time string (or datetime) in the window, as UTC; ValueError otherwise.

    Strings must match :data:`TIMESTAMP_PATTERN` exactly (what the OpenAPI schema
    states); numbers and numeric strings (epochs of unknown unit) are refused.
    """
    if isinstance(value, datetime):
        return bounded_utc(value, now=now)
    if not isinstance(value, str) or not _ISO_START.match(value):
        raise ValueError("timestamp must be an ISO 8601 string (YYYY-MM-DDThh:mm...)")
    if _TIMESTAMP_RE.fullmatch(value) is None:
        raise ValueError(
            f"timestamp must be an ISO 8601 date-time (YYYY-MM-DDThh:mm[:ss[.ffffff]] "
            f"[Z|±hh:mm]) in {WINDOW_TEXT}"
        )
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
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
