"""Shared fixtures: a migrated database on SQLite and on PostgreSQL (the `db` fixture runs twice)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import migrate
from storage.db import Database

PG_URL = os.environ.get("SUPPORTBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


async def _pg_problem() -> str | None:
    """None if PostgreSQL answers, else why not (checked once per run)."""
    if "problem" not in _pg_state:
        probe = Database(PG_URL)
        try:
            async with asyncio.timeout(5), probe.engine.connect() as conn:
                await conn.execute(text("select 1"))
            _pg_state["problem"] = None
        except Exception as exc:
            _pg_state["problem"] = f"PostgreSQL at {PG_URL} unreachable: {exc!r}"
        finally:
            await probe.dispose()
    return _pg_state["problem"]


async def fresh_postgres() -> Database:
    problem = await _pg_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem + " (CI must run the PostgreSQL tests)")
        pytest.skip(problem)
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await migrate.upgrade(db)
    return db


async def fresh_sqlite(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    await migrate.upgrade(db)
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database; every test using it runs on SQLite and on PostgreSQL."""
    database = (
        await fresh_sqlite(tmp_path / "test.db")
        if request.param == "sqlite"
        else await fresh_postgres()
    )
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await fresh_sqlite(tmp_path / "test.db")
    try:
        yield database
    finally:
        await database.dispose()
