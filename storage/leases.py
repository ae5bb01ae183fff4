"""Single-instance roles across app processes: at most one process per database runs each role
(Telegram polling, VK Long Poll, the Telegram operator group, periodic jobs); the others stand by.

On PostgreSQL a role is a session advisory lock held on this process's lease connection (one
connection for all its roles, outside the pool, in autocommit). The lock goes with the
connection: when the holder stops, crashes or is killed, a stand-by, trying every `retry`
seconds, takes the role over within a few seconds. The holder checks its connection every
`CHECK` seconds and stops the role when it is lost (its lock may be another process's by then:
so a holder cut off from a live database may overlap a new holder by up to that second).
Server-side TCP keepalives on that connection let PostgreSQL notice a holder whose machine
vanished within about half a minute. A role whose job ends or crashes is released and, after
`retry` seconds, taken again by whichever process gets it first.

On SQLite (one machine, the embedded default) a role just runs.

Session locks need a session: not through PgBouncer in transaction-pooling mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)
LOCK_CLASS = 0x5B7E  # first half of the two-int advisory lock keys: "supportbot roles"
RETRY = 3.0  # seconds between a stand-by's attempts
CHECK = 1.0  # seconds between the holder's checks that its lease connection still answers
QUERY_TIMEOUT = 5.0  # a lease query taking longer means the connection is gone
# Idle seconds before PostgreSQL probes the connection, seconds between probes, probes lost:
# a holder whose machine vanished loses its roles after about 10 + 5 * 3 = 25 s.
KEEPALIVES = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}
_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


def role_key(role: str) -> int:
    """The second half of the role's advisory lock key (a signed 32-bit int)."""
    return zlib.crc32(role.encode()) - 2**31


class _Try(Enum):
    GOT = "got"
    BUSY = "busy"  # another process holds it
    NO_DATABASE = "no database"


class Leases:
    """The roles of one process. `run(role, job)` runs `job()` whenever this process holds
    `role`, until cancelled; `held` names the roles it holds now."""

    def __init__(self, url: str, *, retry: float = RETRY, check: float = CHECK) -> None:
        self.retry = retry
        self.check = min(check, retry)
        self.held: set[str] = set()
        self._engine = (
            None
            if url.startswith("sqlite")
            else create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        )
        self._conn: AsyncConnection | None = None
        self._generation = 0  # +1 each time the lease connection is dropped (its locks with it)
        self._lock = asyncio.Lock()  # one statement at a time on the lease connection

    async def run(
        self,
        role: str,
        job: Callable[[], Awaitable[Any]],
        *,
        on_standby: Callable[[], None] | None = None,
    ) -> None:
        """Hold `role` and run `job()` while held; stand by while another process holds it
        (`on_standby` is called each time this process starts standing by). Until cancelled."""
        if self._engine is None:
            self.held.add(role)
            try:
                await job()
            finally:
                self.held.discard(role)
            return
        key = role_key(role)
        waiting: _Try | None = None
        while True:
            generation, outcome = await self._try_lock(key)
            if outcome is not _Try.GOT:
                if waiting is not outcome:
                    if outcome is _Try.BUSY:
                        log.info("standing by for %s: another process runs it", role)
                    else:
                        log.warning("cannot reach the database to take %s; retrying", role)
                    if waiting is None and on_standby is not None:
                        on_standby()
                    waiting = outcome
                await asyncio.sleep(self.retry)
                continue
            log.info("%s %s", "took over" if waiting is _Try.BUSY else "running", role)
            waiting = None
            self.held.add(role)
            try:
                await self._hold(role, key, generation, job)
            finally:
                self.held.discard(role)
            await asyncio.sleep(self.retry)

    async def _hold(
        self, role: str, key: int, generation: int, job: Callable[[], Awaitable[Any]]
    ) -> None:
        async def call() -> None:
            await job()

        task = asyncio.create_task(call(), name=f"role: {role}")
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.check)
                if done:
                    if task.cancelled():
                        log.warning("%s was cancelled; releasing it", role)
                    elif task.exception() is not None:
                        log.error("%s crashed; releasing it", role, exc_info=task.exception())
                    else:
                        log.warning("%s ended; releasing it", role)
                    return
                # Shielded: a stop (cancellation) in the middle of the check's query would make
                # SQLAlchemy drop the connection, releasing the lock before the job has ended.
                if not await asyncio.shield(self._alive(generation)):
                    log.warning("%s: lost the database connection holding it; stopped here", role)
                    return
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._unlock(key, generation)

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            assert self._engine is not None
            conn = await self._engine.connect()
            try:
                for name, value in KEEPALIVES.items():
                    await conn.execute(text(f"SET {name} = {int(value)}"))
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _try_lock(self, key: int) -> tuple[int, _Try]:
        async with self._lock:
            try:
                async with asyncio.timeout(QUERY_TIMEOUT):
                    conn = await self._connection()
                    got = await conn.scalar(
                        text("SELECT pg_try_advisory_lock(CAST(:c AS int), CAST(:k AS int))"),
                        {"c": LOCK_CLASS, "k": key},
                    )
            except _ERRORS as exc:
                log.debug("leases: %s", exc)
                await self._drop()
                return self._generation, _Try.NO_DATABASE
            return self._generation, _Try.GOT if got else _Try.BUSY

    async def _alive(self, generation: int) -> bool:
        """The connection that took the lock at `generation` still answers."""
        async with self._lock:
            if generation != self._generation or self._conn is None:
                return False
            try:
                async with asyncio.timeout(QUERY_TIMEOUT):
                    await self._conn.execute(text("SELECT 1"))
            except _ERRORS:
                await self._drop()
                return False
            return True

    async def _unlock(self, key: int, generation: int) -> None:
        async with self._lock:
            if generation != self._generation or self._conn is None:
                return  # that connection, and its locks, are gone
            try:
                async with asyncio.timeout(QUERY_TIMEOUT):
                    await self._conn.execute(
                        text("SELECT pg_advisory_unlock(CAST(:c AS int), CAST(:k AS int))"),
                        {"c": LOCK_CLASS, "k": key},
                    )
            except _ERRORS:
                await self._drop()

    async def _drop(self) -> None:
        """Close the lease connection (releasing every lock on it); the next try reconnects."""
        conn, self._conn = self._conn, None
        self._generation += 1
        if conn is not None:
            with contextlib.suppress(*_ERRORS):
                async with asyncio.timeout(QUERY_TIMEOUT):
                    await conn.invalidate()
                    await conn.close()

    async def close(self) -> None:
        """Release every role (after the jobs were cancelled) and close the connection."""
        async with self._lock:
            await self._drop()
        if self._engine is not None:
            await self._engine.dispose()
