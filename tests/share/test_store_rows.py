from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from linkage.share.bundle_store import IndicatorStore
from linkage.share.export import export_bundle, write_bundle
from linkage.share.store_rows import SharedIndicatorRow, mirror_partner, stored_indicators
from linkage.store import migrate
from linkage.store.db import Store
from linkage.store.rundir import load_run
from tests.share.conftest import make_tiny_run

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_migration_builds_the_table_the_model_declares(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert s.schema_revision() == migrate.head_revision()
    with s.engine.connect() as conn:
        cols = {r[1] for r in conn.execute(text("PRAGMA table_info(shared_indicators)"))}
    assert cols == {c.name for c in SharedIndicatorRow.__table__.columns}
    s.close()


def test_imports_are_mirrored_with_source_time_confidence_expiry(
    tiny_run, key, key_file, tmp_path
) -> None:
    s = Store(f"sqlite:///{tmp_path / 's.db'}")
    files = IndicatorStore(tiny_run)
    b1, _ = export_bundle(load_run(tiny_run), key, now=T0)
    files.import_bundle(
        write_bundle(b1, tmp_path / "1.json"),
        key_file=key_file,
        partner="A",
        confidence=0.6,
        now=T0,
    )
    assert mirror_partner(s.engine, "A", files.load()) == 1
    (row,) = stored_indicators(s.engine)
    assert (row["partner"], row["confidence"], row["revoked"], row["n_hashes"]) == (
        "A",
        0.6,
        False,
        6,
    )
    assert row["valid_until"] == T0 + timedelta(days=90) and row["imported_at"] == T0
    # the partner withdraws it: the mirror says so
    gone, _ = export_bundle(
        load_run(make_tiny_run(tmp_path / "r2", farm_level="clear")),
        key,
        now=T0 + timedelta(hours=1),
    )
    files.import_bundle(
        write_bundle(gone, tmp_path / "2.json"),
        key_file=key_file,
        partner="A",
        now=T0 + timedelta(hours=1),
    )
    mirror_partner(s.engine, "A", files.load())
    (row,) = stored_indicators(s.engine, partner="A")
    assert row["revoked"] and row["n_hashes"] == 0 and "withdrawn" in row["revoked_reason"]
    s.close()
