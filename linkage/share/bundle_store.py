"""Import: validate a partner's bundle and keep its indicators next to the run.

``RUN/shared/indicators.json`` (mode 0600) records, per partner, where its
partnership key is (the key file's path, never the key), its key id, the confidence
its indicators get, the bundles imported (id, creation time, import time) and every
indicator (id, version, validity, revocation, cluster score/level/verdict, hashes).
:class:`~linkage.share.match.PartnerMatcher` reads it when a run's signup scorer loads.

An import is all or nothing: a bundle that is too large, not JSON, not STIX 2.1, made
under another partnership key, already imported (replay), older than the last one
from that partner, or holding an expired indicator or an older version of a stored
indicator raises :class:`~linkage.share.hashing.ShareError` with the reason and
changes nothing.  A valid bundle is a snapshot: a stored indicator of that partner
missing from it is withdrawn; a ``revoked: true`` indicator is withdrawn; withdrawn
and expired indicators stop acting (they are kept, for the record).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linkage.share.export import FORMAT, build_pattern
from linkage.share.hashing import PartnershipKey, ShareError
from linkage.share.settings import SHARED_KINDS, ShareSettings

__all__ = ["STORE_FILE", "IndicatorStore", "ParsedBundle", "read_bundle"]

log = logging.getLogger(__name__)

#: Where a run keeps its partners' indicators (relative to the run directory).
STORE_FILE = Path("shared") / "indicators.json"
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_PARTNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


@dataclass
class ParsedBundle:
    """A validated bundle: what an import keeps."""

    id: str
    created: datetime
    key_id: str
    producer: str | None
    snapshot: bool
    indicators: list[dict[str, Any]] = field(default_factory=list)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _read_text(source: str | bytes | Path, settings: ShareSettings) -> str:
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise ShareError(f"bundle not found: {source}") from None
        if size > settings.max_bundle_bytes:
            raise ShareError(
                f"bundle {source} is {size:,} bytes, over the limit of "
                f"{settings.max_bundle_bytes:,}: refused unread"
            )
        data: str | bytes = source.read_bytes()
    else:
        data = source
    if len(data) > settings.max_bundle_bytes:
        raise ShareError(
            f"bundle is {len(data):,} bytes, over the limit of {settings.max_bundle_bytes:,}"
        )
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ShareError("bundle is not UTF-8 text") from None
    return data


def _hashes(
    ind: Mapping[str, Any], where: str, settings: ShareSettings
) -> dict[str, dict[str, float]]:
    raw = ind.get("x_linkage_hashes")
    if not isinstance(raw, Mapping) or not raw:
        raise ShareError(f"{where}: no x_linkage_hashes (not a linkage indicator)")
    out: dict[str, dict[str, float]] = {}
    for kind, d in raw.items():
        if kind not in SHARED_KINDS:
            raise ShareError(f"{where}: unknown identifier kind {kind!r}")
        if not isinstance(d, Mapping):
            raise ShareError(f"{where}: hashes of {kind!r} must map hash to share")
        for h, s in d.items():
            if not isinstance(h, str) or not _HASH_RE.match(h):
                raise ShareError(f"{where}: {kind} hash {str(h)[:80]!r} is not 64 lower-case hex")
            if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s <= 1:
                raise ShareError(f"{where}: share of a {kind} hash must lie in (0, 1], got {s!r}")
        out[str(kind)] = {str(h): float(s) for h, s in d.items()}
    if ind.get("pattern") != build_pattern({k: list(d) for k, d in out.items()}):
        raise ShareError(f"{where}: pattern and x_linkage_hashes disagree")
    return out


def _parse_document(text: str, settings: ShareSettings) -> dict[str, Any]:
    """The bundle's JSON document, checked for shape and against the size limits before
    the (slow) STIX parse."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShareError(f"bundle is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "bundle":
        raise ShareError("not a STIX bundle (no top-level object of type 'bundle')")
    objs = doc.get("objects")
    if not isinstance(objs, list):
        raise ShareError("STIX bundle has no 'objects' list")
    n_ind = sum(1 for o in objs if isinstance(o, dict) and o.get("type") == "indicator")
    if n_ind > settings.max_indicators:
        raise ShareError(
            f"bundle holds {n_ind:,} indicators, over the limit of {settings.max_indicators:,}"
        )
    n_hash = sum(
        len(d)
        for o in objs
        if isinstance(o, dict) and isinstance(o.get("x_linkage_hashes"), dict)
        for d in o["x_linkage_hashes"].values()
        if isinstance(d, dict)
    )
    if n_hash > settings.max_hashes:
        raise ShareError(
            f"bundle holds {n_hash:,} hashes, over the limit of {settings.max_hashes:,}"
        )
    return doc


def _key_id(doc: Mapping[str, Any], key: PartnershipKey | None) -> Any:
    """The bundle's key id, once its format is ours and (unless ``key`` is None) the key
    id is the partnership key's."""
    if doc.get("x_linkage_format") != FORMAT:
        raise ShareError(
            f"bundle format {doc.get('x_linkage_format')!r} is not {FORMAT!r}: "
            "not written by `linkage share export`"
        )
    key_id = doc.get("x_linkage_key_id")
    if key is not None and key_id != key.key_id:
        raise ShareError(
            f"bundle was made under another partnership key (key id {key_id!r}; "
            f"the key given has id {key.key_id!r}): nothing imported"
        )
    return key_id


def _indicator(o: Any, key_id: Any, settings: ShareSettings, now: datetime) -> dict[str, Any]:
    """What an import keeps of STIX indicator ``o`` (an unexpired one, under ``key_id``)."""
    ind = json.loads(o.serialize())
    where = f"indicator {o.id}"
    if ind.get("x_linkage_key_id") != key_id:
        raise ShareError(f"{where}: key id differs from the bundle's")
    revoked = bool(ind.get("revoked", False))
    valid_until = _dt(ind["valid_until"]) if ind.get("valid_until") else None
    if not revoked and valid_until is not None and valid_until <= now:
        raise ShareError(f"{where} expired on {_iso(valid_until)}: nothing imported")
    return {
        "id": o.id,
        "modified": _iso(_dt(ind["modified"])),
        "valid_from": _iso(_dt(ind["valid_from"])),
        "valid_until": None if valid_until is None else _iso(valid_until),
        "revoked": revoked,
        "score": float(ind.get("x_linkage_score", 0.0)),
        "level": str(ind.get("x_linkage_level", "")),
        "verdict": str(ind.get("x_linkage_verdict", "")),
        "first_seen": ind.get("x_linkage_first_seen"),
        "last_seen": ind.get("x_linkage_last_seen"),
        "cadence": ind.get("x_linkage_cadence"),
        "hashes": {} if revoked else _hashes(ind, where, settings),
    }


def read_bundle(
    source: str | bytes | Path,
    *,
    key: PartnershipKey | None,
    settings: ShareSettings | None = None,
    now: datetime | None = None,
) -> ParsedBundle:
    """Parse and validate a bundle (``key=None``: skip the key check, for tests and
    benchmarks that show what a foreign bundle matches)."""
    settings = settings or ShareSettings()
    now = now or datetime.now(UTC)
    doc = _parse_document(_read_text(source, settings), settings)
    key_id = _key_id(doc, key)
    import stix2  # 0.16 s to import: only when a bundle is read
    from stix2.exceptions import STIXError

    try:
        bundle = stix2.parse(doc, allow_custom=True)
    except (STIXError, ValueError, TypeError, KeyError) as exc:
        raise ShareError(f"malformed STIX 2.1 bundle: {exc}") from None
    try:
        created = _dt(doc.get("x_linkage_created"))
    except (TypeError, ValueError):
        raise ShareError("bundle has no valid x_linkage_created time") from None
    producer = None
    indicators: list[dict[str, Any]] = []
    for o in bundle.objects:
        if o.type == "identity":
            producer = str(o.name)
        elif o.type == "indicator":
            indicators.append(_indicator(o, key_id, settings, now))
    return ParsedBundle(
        id=str(doc.get("id")),
        created=created,
        key_id=str(key_id),
        producer=producer,
        snapshot=bool(doc.get("x_linkage_snapshot", False)),
        indicators=indicators,
    )


def _check_replay(
    parsed: ParsedBundle,
    info: Mapping[str, Any],
    stored: Mapping[str, Mapping[str, Any]],
    partner: str,
    key: PartnershipKey,
) -> None:
    """Refuse a bundle of a known partner that was imported already, is not newer than
    its last one, or holds an older version of a stored indicator."""
    seen = {b["id"] for b in info.get("bundles", [])}
    if parsed.id in seen:
        raise ShareError(f"bundle {parsed.id} was already imported from {partner} (replay)")
    last = max((_dt(b["created"]) for b in info.get("bundles", [])), default=None)
    if last is not None and parsed.created <= last:
        raise ShareError(
            f"bundle {parsed.id} was made {_iso(parsed.created)}, not after the last "
            f"bundle from {partner} ({_iso(last)}): replayed or out of order, nothing imported"
        )
    for ind in parsed.indicators:
        old = stored.get(ind["id"])
        if old is not None and _dt(old["modified"]) > _dt(ind["modified"]):
            raise ShareError(
                f"indicator {ind['id']} is an older version ({ind['modified']}) than the "
                f"one stored ({old['modified']}): replayed, nothing imported"
            )
    if info.get("key_id") != key.key_id:
        log.warning(
            "partner %s: key changed from %s to %s", partner, info.get("key_id"), key.key_id
        )


def _merge(
    parsed: ParsedBundle, stored: dict[str, dict[str, Any]], partner: str, stamp: str
) -> dict[str, int]:
    """Store ``parsed``'s indicators into ``stored`` (in place) and withdraw, for a
    snapshot, those it no longer holds; the counts of added, updated, revoked and
    withdrawn indicators."""
    n = {"added": 0, "updated": 0, "revoked": 0, "withdrawn": 0}
    incoming = {ind["id"] for ind in parsed.indicators}
    for ind in parsed.indicators:
        old = stored.get(ind["id"])
        rec = {**ind, "bundle_id": parsed.id, "imported_at": stamp}
        if ind["revoked"]:
            rec["revoked_reason"] = f"revoked by {partner} in bundle {parsed.id}"
            if old is not None:
                rec["hashes"] = {}
            n["revoked"] += 1
        elif old is None:
            n["added"] += 1
        else:
            n["updated"] += 1
        stored[ind["id"]] = rec
    if parsed.snapshot:
        for iid, old in stored.items():
            if iid not in incoming and not old.get("revoked"):
                old["revoked"] = True
                old["hashes"] = {}
                old["revoked_reason"] = f"withdrawn: absent from {partner}'s bundle {parsed.id}"
                old["imported_at"] = stamp
                n["withdrawn"] += 1
    return n


class IndicatorStore:
    """The partners' indicators of one run directory (``RUN/shared/indicators.json``)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE

    def load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"version": 1, "partners": {}, "indicators": {}}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ShareError(f"{self.path} is corrupt ({exc}); restore it or delete it") from None

    def _save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        tmp.replace(self.path)

    def import_bundle(
        self,
        source: str | bytes | Path,
        *,
        key_file: str | Path,
        partner: str,
        confidence: float | None = None,
        settings: ShareSettings | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Validate and store one bundle of ``partner``; returns what changed."""
        settings = settings or ShareSettings()
        now = now or datetime.now(UTC)
        if not _PARTNER_RE.match(partner or ""):
            raise ShareError(
                "partner name: 1-100 characters, letters, digits, space, '.', '_' or '-'"
            )
        if confidence is None:
            confidence = settings.default_confidence
        if not 0 < float(confidence) <= 1:
            raise ShareError(f"confidence must lie in (0, 1], got {confidence}")
        if not self.run_dir.is_dir():
            raise ShareError(f"run directory not found: {self.run_dir}")
        key = PartnershipKey.from_file(key_file)
        parsed = read_bundle(source, key=key, settings=settings, now=now)
        data = self.load()
        info = data["partners"].get(partner)
        stored: dict[str, dict[str, Any]] = data["indicators"].get(partner, {})
        if info is not None:
            _check_replay(parsed, info, stored, partner, key)
        stamp = _iso(now)
        counts = _merge(parsed, stored, partner, stamp)
        bundles = list((info or {}).get("bundles", []))
        bundles.append(
            {
                "id": parsed.id,
                "created": _iso(parsed.created),
                "imported_at": stamp,
                "indicators": len(parsed.indicators),
                "producer": parsed.producer,
            }
        )
        data["partners"][partner] = {
            "key_file": str(Path(key_file).resolve()),
            "key_id": key.key_id,
            "confidence": float(confidence),
            "bundles": bundles,
        }
        data["indicators"][partner] = stored
        self._save(data)
        active = sum(1 for r in stored.values() if not r.get("revoked"))
        return {
            "partner": partner,
            "bundle_id": parsed.id,
            **counts,
            "active": active,
            "hashes": sum(len(d) for r in stored.values() for d in r.get("hashes", {}).values()),
            "confidence": float(confidence),
        }
