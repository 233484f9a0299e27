"""Alembic environment of the store: runs on the connection the caller hands over.

``linkage.store.migrate.upgrade`` passes an open connection in
``config.attributes["connection"]``; migrations then run inside the caller's
transaction (on SQLite, ``BEGIN IMMEDIATE``: all or nothing).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline / CLI use without a connection
    raise RuntimeError("run store migrations through linkage.store.migrate (needs a connection)")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
