"""Schema migrations of the store, with alembic.

The revisions live in ``linkage/store/migrations/versions/`` (``0001`` is the
schema the old hand-rolled runner called "version 1"; a store made by it is
stamped ``0001`` and upgraded).  :class:`linkage.store.db.Store` calls
:func:`upgrade` when it opens a store.

Adding a migration (e.g. a table for a new module)::

    python -m linkage.store.migrate revision -m "respond: watermark keys"
    # -> linkage/store/migrations/versions/<rev>_respond_watermark_keys.py
    #    revision = "<rev>", down_revision = the current head ("0002", ...)

Fill in ``upgrade()``/``downgrade()`` with explicit ``op.*`` DDL (never import the
live models: a migration must keep describing the schema *as of* its revision),
add the table/columns to :mod:`linkage.store.models`, and test that an old store
file opens and upgrades (``tests/store/test_migrations.py``).  Never edit a
revision that has been released; add a new one.  ``python -m
linkage.store.migrate heads`` / ``current --store URL`` / ``upgrade --store URL``
inspect and apply them by hand.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from linkage.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The revision of the old runner's "schema version 1".
BASE_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config for the store's migrations (optionally bound to a connection)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this code knows."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The revision a database is at (None: not managed by alembic yet).

    Reads ``alembic_version`` directly: ``MigrationContext.configure`` logs two INFO
    lines per call, which ``/readyz`` and every CLI command would print.
    """
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # branched history: let alembic say what it is
        return MigrationContext.configure(conn).get_current_revision()
    return rows[0] if rows else None


def _legacy_version(conn: Connection) -> int | None:
    if "schema_version" not in inspect(conn).get_table_names():
        return None
    row = conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).first()
    return int(row[0]) if row else None


def upgrade(engine: Engine, url: str) -> str:
    """Bring the store to the head revision (no-op when it is there); returns it.

    Runs in one transaction (SQLite: ``BEGIN IMMEDIATE``, so two processes
    opening a new store do not both create it).  A store newer than this code
    is refused.
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
        if current == head:
            return head
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        current = current_revision(conn)
        if current is not None and current not in known_revisions():
            raise StoreError(
                f"store {url!r} is at schema revision {current}, newer than this linkage "
                f"(head {head}): upgrade linkage"
            )
        if current is None:
            legacy = _legacy_version(conn)
            if legacy is not None:
                if legacy != 1:
                    raise StoreError(
                        f"store {url!r} has legacy schema version {legacy}; expected 1"
                    )
                log.info("store %s: legacy schema version 1 -> stamping %s", url, BASE_REVISION)
                command.stamp(alembic_config(conn), BASE_REVISION)
        if current != head:
            log.info("migrating store %s from %s to %s", url, current or "nothing", head)
            command.upgrade(alembic_config(conn), "head")
        conn.commit()
    return head


def main(argv: list[str] | None = None) -> None:
    """``python -m linkage.store.migrate revision|heads|current|upgrade``."""
    p = argparse.ArgumentParser(prog="python -m linkage.store.migrate")
    sub = p.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="new empty revision file after the current head")
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("heads", help="print the head revision")
    for name in ("current", "upgrade"):
        sp = sub.add_parser(name)
        sp.add_argument("--store", required=True, help="SQLAlchemy URL")
    a = p.parse_args(argv)
    if a.cmd == "revision":
        heads = sorted(known_revisions())
        nxt = f"{max(int(r) for r in heads if r.isdigit()) + 1:04d}"
        command.revision(alembic_config(), message=a.message, rev_id=nxt)
    elif a.cmd == "heads":
        print(head_revision())
    else:
        from linkage.store.db import Store

        s = Store(a.store)  # opening upgrades
        print(s.schema_revision())


if __name__ == "__main__":
    main()
