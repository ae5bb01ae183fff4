"""SQLite for SQLAlchemy's asyncio API, with the statements run inline on the event loop.

SQLAlchemy's `sqlite+aiosqlite` dialect awaits the driver four times per statement (cursor,
execute, fetchall, close); aiosqlite makes each await a round trip to its worker thread, and
SQLAlchemy makes each one a greenlet switch besides. For a local SQLite file those hops cost far
more than the work: SQLite statements on a local WAL database take microseconds, so running them
on the loop blocks it less than the hand-offs did. This dialect is the standard library's
`sqlite3` (SQLAlchemy's own pysqlite dialect) declared usable from `AsyncEngine`: the ORM's sync
code runs inside one greenlet per call (as with every async driver) and never has to switch out
of it, because the driver never waits. Measured per pipeline turn (bench/turn.py): 2.8-3.1 ms
with an aiosqlite-shaped inline adapter under SQLAlchemy's aiosqlite dialect, 2.4-2.5 ms with
this dialect (aiosqlite with its thread hops: 3.2 ms per turn, measured earlier, README).

PostgreSQL (asyncpg, the production database) is unaffected. `Database` selects it for every
`sqlite` URL (`sqlite+inline://`, with `CONNECT_ARGS`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL


class InlineCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What AsyncSession calls so an async driver buffers a result's rows before its
        greenlet ends; sqlite3 reads them inline whenever asked, so there is nothing to do."""


class InlineConnection(sqlite3.Connection):
    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


CONNECT_ARGS = {"factory": InlineConnection, "check_same_thread": False}  # any loop's thread


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    driver = "inline"
    is_async = True  # usable from AsyncEngine: its calls simply never await
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # The asyncio-aware queue: a session waiting for the one connection awaits, it does
        # not block the loop.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


registry.register("sqlite.inline", __name__, "InlineSQLiteDialect")
