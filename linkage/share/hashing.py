"""Keyed hashing of identifiers for one partnership (HMAC-SHA-256).

Two providers that agree on a secret key (one key per partnership, 32 random bytes)
hash the *canonical* value of an identifier, normalised exactly as the engine
normalises it (:mod:`linkage.identifiers.kinds`: Gmail dots and ``+tags`` removed,
``/24`` and ``/48`` subnets, trimmed lower-cased fingerprints…), so that the same
mailbox typed differently at the two providers gives the same digest::

    digest = HMAC-SHA-256(key, "linkage-share/v1" 0x1f kind 0x1f canonical value)

Without the key nobody can test a guess (a card token, an address) against a digest,
so a bundle cannot be matched against a dictionary; with it, a partner can test only
values it already holds.  The key id (an HMAC of a fixed label) names the key in a
bundle without revealing it, so a bundle made under another partnership's key is
refused with a clear message.  See docs/SHARING.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linkage.errors import LinkageError

__all__ = ["KEY_BYTES", "PartnershipKey", "ShareError", "write_key"]

#: Bytes of a partnership key (a generated key; a shorter key file is refused).
KEY_BYTES = 32
_DOMAIN = b"linkage-share/v1"
_SEP = "\x1f"
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


class ShareError(LinkageError):
    """A sharing operation refused (bad key file, malformed or foreign bundle…)."""


@dataclass(frozen=True)
class PartnershipKey:
    """The secret of one partnership; :meth:`digest` is the only thing it does."""

    secret: bytes
    _mac: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < KEY_BYTES:
            raise ShareError(
                f"a partnership key needs at least {KEY_BYTES} bytes of secret, "
                f"got {len(self.secret)} (make one with `linkage share keygen`)"
            )
        # keyed once; each digest copies it (3x faster than hmac.new on the signup path)
        object.__setattr__(self, "_mac", hmac.new(self.secret, _DOMAIN, hashlib.sha256))

    def __repr__(self) -> str:  # never print the secret
        return f"PartnershipKey(id={self.key_id})"

    @property
    def key_id(self) -> str:
        """A public name of the key (16 hex): equal keys, equal ids; reveals nothing else."""
        return hmac.new(self.secret, _DOMAIN + b" key-id", hashlib.sha256).hexdigest()[:16]

    def digest(self, kind: str, value: str) -> str:
        """The keyed hash (64 hex) of one canonical identifier value of ``kind``."""
        h = self._mac.copy()
        h.update((_SEP + kind + _SEP + value).encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    @classmethod
    def generate(cls) -> PartnershipKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> PartnershipKey:
        """A key written as hex or base64 (whitespace ignored)."""
        s = "".join(text.split())
        if not s:
            raise ShareError("the key file is empty")
        if _HEX_RE.match(s) and len(s) % 2 == 0:
            return cls(bytes.fromhex(s))
        try:
            return cls(base64.b64decode(s, validate=True))
        except (binascii.Error, ValueError):
            raise ShareError("the key file must hold the key as hex or base64") from None

    @classmethod
    def from_file(cls, path: str | Path) -> PartnershipKey:
        p = Path(path)
        try:
            text = p.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ShareError(f"key file not found: {p}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ShareError(f"cannot read key file {p}: {exc}") from None
        return cls.from_text(text)


def write_key(path: str | Path, key: PartnershipKey) -> Path:
    """Write ``key`` as hex to a new file readable by its owner only (0600)."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise ShareError(f"{p} exists: refusing to overwrite a key") from None
    except OSError as exc:
        raise ShareError(f"cannot create key file {p}: {exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.secret.hex() + "\n")
    return p
