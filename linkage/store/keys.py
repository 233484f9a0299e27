"""API keys: ``lk_<id>_<secret>`` tokens, HMAC-SHA-256 under a server secret.

Key secrets are 256-bit random values, so a slow password hash buys nothing and
made every wrong guess cost 16 MiB and ~50 ms of scrypt (a lever for anyone who
knows a key id).  The store keeps ``HMAC-SHA-256(server secret, key secret)``
and compares in constant time; an unknown or revoked id goes through the same
HMAC and compare as a wrong secret, so timing does not tell them apart.

The **server secret** (the HMAC key) is, in order: ``LINKAGE_KEY_SECRET``
(the value), the file named by ``LINKAGE_KEY_SECRET_FILE``, or for a SQLite file
store the file ``<store>.keysecret`` beside it (created ``0600`` with 32 random
bytes on first use).  Copy it together with the store file; other databases
need one of the environment variables.  A database dump alone cannot check keys.

Keys made before revision 0002 (``scheme`` ``scrypt:…``) still verify (in a
thread, as before) and are re-hashed to HMAC on their first success.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, bindparam, insert, select, update

from linkage.errors import StoreError
from linkage.store.engine import FILE_MODE, as_utc, utcnow
from linkage.store.models import SCOPES, ApiKeyRow, audit_event, cli_actor

SCHEME = "hmac-sha256"
_LEGACY_PREFIX = "scrypt:"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
#: what :meth:`KeysMixin.verify_key_fast` answers when only the slow legacy check can decide
SLOW: Literal["slow"] = "slow"


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


def legacy_scrypt(secret: str, salt: bytes) -> str:
    """The pre-0002 hash (scrypt, 16 MiB): only for keys created back then."""
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    ).hex()


def load_server_secret(db_path: Path | None) -> bytes:
    """The HMAC key (see the module docstring for where it comes from)."""
    value = os.environ.get("LINKAGE_KEY_SECRET")
    if value:
        if len(value) < 32:
            raise StoreError("LINKAGE_KEY_SECRET must be at least 32 characters")
        return value.encode()
    name = os.environ.get("LINKAGE_KEY_SECRET_FILE")
    path = Path(name) if name else (Path(f"{db_path}.keysecret") if db_path else None)
    if path is None:
        raise StoreError(
            "API keys need a server secret: set LINKAGE_KEY_SECRET or LINKAGE_KEY_SECRET_FILE"
        )
    try:
        fd = -1 if path.exists() else os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        fd = -1
    except OSError as exc:
        raise StoreError(f"cannot create key secret {path}: {exc}") from None
    if fd >= 0:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32).hex().encode())
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            with contextlib.suppress(OSError):  # read-only filesystem: use it as it is
                os.chmod(path, FILE_MODE)  # a credential: never group/world readable
        data = path.read_bytes().strip()
    except OSError as exc:
        raise StoreError(f"cannot read key secret {path}: {exc}") from None
    if len(data) < 32:
        raise StoreError(f"key secret {path} is shorter than 32 bytes")
    return data


_KEYS = ApiKeyRow.__table__
# the hot path's statement, built once on the table's plain columns: SQLAlchemy then finds
# its compiled form in the cache without rebuilding the query or matching ORM-annotated
# result columns against the cached ones on every request (~0.6 ms -> ~0.1 ms a check)
_KEY_ROW = select(
    _KEYS.c.id,
    _KEYS.c.name,
    _KEYS.c.scheme,
    _KEYS.c.hash,
    _KEYS.c.scopes,
    _KEYS.c.created_at,
    _KEYS.c.revoked_at,
).where(_KEYS.c.id == bindparam("key_id"))


class KeysMixin:
    """Create, list, revoke and verify keys (needs ``self.engine`` and ``self.db_path``)."""

    engine: Engine
    db_path: Path | None
    _server_secret: bytes | None = None
    _secret_lock = threading.Lock()

    def _secret(self) -> bytes:
        if self._server_secret is None:
            with self._secret_lock:
                if self._server_secret is None:
                    self._server_secret = load_server_secret(self.db_path)
        return self._server_secret

    def _mac(self, secret: str) -> str:
        return hmac.new(self._secret(), secret.encode(), hashlib.sha256).hexdigest()

    def create_key(
        self, name: str, scopes: Iterable[str], *, actor: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns (key, token).  The token is shown once and never stored.

        Recorded in the audit (``actor``: who made it; default ``cli:<os user>``)."""
        scope_set = frozenset(scopes)
        bad = sorted(scope_set - set(SCOPES))
        if bad or not scope_set:
            raise StoreError(f"invalid scopes {bad or '[]'}; choose from {', '.join(SCOPES)}")
        secret = secrets.token_urlsafe(32)
        digest = self._mac(secret)
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
                    scheme=SCHEME,
                    salt="",
                    hash=digest,
                    scopes=" ".join(sorted(scope_set)),
                    created_at=now,
                    revoked_at=None,
                )
            )
            audit_event(
                conn,
                kind="api_key",
                action="created",
                target_id=key_id,
                actor=actor or cli_actor(),
                detail=f"name {name!r}, scopes {' '.join(sorted(scope_set))}",
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

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> bool:
        """Revoke a key; False if there is no such active key.  Recorded in the audit."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(ApiKeyRow.__table__)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if res.rowcount > 0:
                audit_event(
                    conn,
                    kind="api_key",
                    action="revoked",
                    target_id=key_id,
                    actor=actor or cli_actor(),
                    detail="revoked",
                )
        return res.rowcount > 0

    def verify_key_fast(self, token: str) -> ApiKey | Literal["slow"] | None:
        """The active key a token belongs to, None, or :data:`SLOW` for a legacy scrypt key.

        One indexed row read and one HMAC, whatever the outcome (unknown id,
        revoked key, wrong secret and right secret cost the same).  Reads the
        row every time, so revocation is immediate.
        """
        parsed = parse_token(token)
        key_id, secret = parsed if parsed is not None else ("", token[:256])
        with self.engine.connect() as conn:
            r = conn.execute(_KEY_ROW, {"key_id": key_id}).first()
        if r is not None and r.revoked_at is None and r.scheme.startswith(_LEGACY_PREFIX):
            return SLOW
        usable = r is not None and r.revoked_at is None and r.scheme == SCHEME
        expected = r.hash if usable and r is not None else "0" * 64
        ok = hmac.compare_digest(self._mac(secret), expected)
        if not (ok and usable and parsed is not None and r is not None):
            return None
        return ApiKey(r.id, r.name, frozenset(r.scopes.split()), as_utc(r.created_at))

    def verify_key(self, token: str) -> ApiKey | None:
        """Like :meth:`verify_key_fast`, but also checks (and re-hashes) legacy scrypt keys."""
        got = self.verify_key_fast(token)
        if got != SLOW:
            return got
        parsed = parse_token(token)
        assert parsed is not None
        key_id, secret = parsed
        with self.engine.connect() as conn:
            r = conn.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).first()
        if r is None or r.revoked_at is not None or not r.scheme.startswith(_LEGACY_PREFIX):
            return self.verify_key_fast(token)  # type: ignore[return-value]
        if not hmac.compare_digest(legacy_scrypt(secret, bytes.fromhex(r.salt)), r.hash):
            return None
        with self.engine.begin() as conn:  # upgrade to the fast scheme on first success
            conn.execute(
                update(ApiKeyRow.__table__)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.hash == r.hash)
                .values(scheme=SCHEME, salt="", hash=self._mac(secret))
            )
        return ApiKey(r.id, r.name, frozenset(r.scopes.split()), as_utc(r.created_at))
