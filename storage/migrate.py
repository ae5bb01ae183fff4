"""Schema migrations: `supportbot db upgrade` and the app's start-up call this (Alembic under the hood).

On PostgreSQL an upgrade runs under an advisory lock, so replicas starting together on a fresh
database migrate one after the other (the later ones find the schema current) instead of racing.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from storage.db import Database

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x5B_7E7E_0002  # pg advisory lock: "supportbot migrations" (retention has ..0001)


def alembic_config() -> Config:
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` inside one transaction (PostgreSQL DDL is transactional).
    On PostgreSQL one process at a time: the advisory lock is held on a connection of its own
    around the upgrade (and goes with that connection if the process dies)."""

    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    if db.is_sqlite:  # one file, one writer: nothing to race
        async with db.engine.begin() as conn:
            await conn.run_sync(run)
        return
    async with db.engine.connect() as guard:
        await guard.execution_options(isolation_level="AUTOCOMMIT")
        if not await guard.scalar(text(f"SELECT pg_try_advisory_lock({LOCK_KEY})")):
            log.info("migrations: another process is migrating this database; waiting for it")
            await guard.execute(text(f"SELECT pg_advisory_lock({LOCK_KEY})"))
        try:
            async with db.engine.begin() as conn:
                await conn.run_sync(run)
        finally:  # a broken connection has dropped the lock with it
            with contextlib.suppress(SQLAlchemyError, OSError):
                await guard.execute(text(f"SELECT pg_advisory_unlock({LOCK_KEY})"))


async def current(db: Database) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


def head() -> str | None:
    """The newest revision in storage/migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
