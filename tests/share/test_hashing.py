from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from linkage.share.hashing import PartnershipKey, ShareError, write_key


def test_digest_is_keyed_and_separates_kinds() -> None:
    k1, k2 = PartnershipKey(b"a" * 32), PartnershipKey(b"b" * 32)
    assert k1.digest("payment", "pay_1") == k1.digest("payment", "pay_1")
    assert k1.digest("payment", "pay_1") != k2.digest("payment", "pay_1")
    assert k1.digest("payment", "x") != k1.digest("device", "x")
    assert len(k1.digest("email", "a@b.example")) == 64


def test_key_id_names_the_key_without_the_secret() -> None:
    k = PartnershipKey(b"s" * 32)
    assert k.key_id == PartnershipKey(b"s" * 32).key_id != PartnershipKey(b"t" * 32).key_id
    assert k.secret.hex() not in repr(k) and k.key_id in repr(k)


def test_key_text_hex_or_base64_and_short_keys_refused(tmp_path: Path) -> None:
    raw = bytes(range(32))
    assert PartnershipKey.from_text(raw.hex() + "\n").secret == raw
    assert PartnershipKey.from_text(base64.b64encode(raw).decode()).secret == raw
    with pytest.raises(ShareError, match="at least 32 bytes"):
        PartnershipKey.from_text("ab" * 16)
    with pytest.raises(ShareError, match="empty"):
        PartnershipKey.from_text("  \n")
    with pytest.raises(ShareError, match="hex or base64"):
        PartnershipKey.from_text("not a key!")
    with pytest.raises(ShareError, match="not found"):
        PartnershipKey.from_file(tmp_path / "missing.key")


def test_write_key_is_private_and_never_overwrites(tmp_path: Path) -> None:
    k = PartnershipKey.generate()
    p = write_key(tmp_path / "k", k)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert PartnershipKey.from_file(p) == k
    with pytest.raises(ShareError, match="refusing to overwrite"):
        write_key(p, PartnershipKey.generate())
    assert PartnershipKey.from_file(p) == k


def test_digest_is_the_documented_hmac() -> None:
    """docs/SHARING.md states the formula so a partner can hash without linkage."""
    import hashlib
    import hmac

    k = PartnershipKey(bytes(range(32)))
    msg = b"linkage-share/v1\x1fsubnet\x1f203.0.113.0/24"
    assert (
        k.digest("subnet", "203.0.113.0/24") == hmac.new(k.secret, msg, hashlib.sha256).hexdigest()
    )
