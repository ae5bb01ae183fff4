"""Replicas starting together on a fresh PostgreSQL database all migrate it without an error (an
advisory lock puts them one after the other), and the schema ends up complete, once."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from sqlalchemy import text

from storage import migrate
from storage.models import Base
from tests.conftest import PG_URL, fresh_postgres
from tests.support import ROOT

REPLICAS = 4
# What each replica's start-up does first (App.start, `supportbot db upgrade`), without the
# seconds of importing the rest of the app.
UPGRADE = """
import asyncio, sys
from storage import migrate
from storage.db import Database

async def main() -> None:
    db = Database(sys.argv[1])
    await migrate.upgrade(db)
    print("database at revision", await migrate.current(db))
    await db.dispose()

asyncio.run(main())
"""


@pytest.mark.postgres
async def test_replicas_migrating_a_fresh_database_together_all_succeed() -> None:
    setup = await fresh_postgres()  # skips without a server
    try:
        async with setup.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                UPGRADE,
                PG_URL,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(REPLICAS)
        ]
        async with asyncio.timeout(60):
            outputs = [(await p.communicate())[0].decode() for p in procs]
        head = migrate.head()
        for proc, out in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, out[-2000:]
            assert f"database at revision {head}" in out
        assert await migrate.current(setup) == head
        async with setup.engine.connect() as conn:
            tables = set(
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).scalars()
            )
            versions = await conn.scalar(text("SELECT count(*) FROM alembic_version"))
        assert set(Base.metadata.tables) <= tables
        assert versions == 1
    finally:
        await setup.dispose()
