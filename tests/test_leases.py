"""Single-instance roles (storage/leases.py): on one PostgreSQL database only one process runs a
role at a time; when the holder stops or its connection dies, a stand-by takes over within a
few seconds. On SQLite a role just runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.leases import LOCK_CLASS, Leases, role_key
from tests.conftest import fresh_postgres

ROLE = "telegram polling"
RETRY = 0.5


class Runs:
    """Who runs the role, and the most that ever ran it at once."""

    def __init__(self) -> None:
        self.running: list[str] = []
        self.most = 0
        self.changed = asyncio.Event()

    def job(self, name: str, clean_up: float = 0.0) -> object:
        """A job that runs until cancelled, then takes `clean_up` seconds to finish (like a
        poller finishing its request)."""

        async def run() -> None:
            self.running.append(name)
            self.most = max(self.most, len(self.running))
            self.changed.set()
            try:
                await asyncio.Event().wait()
            finally:
                if clean_up:
                    await asyncio.shield(asyncio.sleep(clean_up))
                self.running.remove(name)
                self.changed.set()

        return run

    async def until(self, expected: list[str] | None) -> float:
        """Seconds until exactly `expected` (None: anyone) run the role."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(10):
            while (not self.running) if expected is None else sorted(self.running) != expected:
                self.changed.clear()
                await self.changed.wait()
        return loop.time() - start


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    db = await fresh_postgres()  # skips without a server
    yield db
    await db.dispose()


async def holder_pid(db: Database, role: str) -> int | None:
    key = role_key(role) & 0xFFFFFFFF  # pg_locks shows the halves as unsigned oids
    async with db.engine.connect() as conn:
        return await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = :c AND objid = :k AND objsubid = 2"
            ),
            {"c": LOCK_CLASS, "k": key},
        )


@pytest.mark.postgres
async def test_one_process_runs_a_role_and_a_stand_by_takes_over_when_it_stops(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="storage.leases")
    runs = Runs()
    first, second = Leases(pg.url, retry=RETRY), Leases(pg.url, retry=RETRY)
    standby = asyncio.Event()
    one = asyncio.create_task(first.run(ROLE, runs.job("first")))  # type: ignore[arg-type]
    await runs.until(["first"])
    two = asyncio.create_task(
        second.run(ROLE, runs.job("second"), on_standby=standby.set)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(standby.wait(), 5)
    await asyncio.sleep(3 * RETRY)  # the stand-by keeps trying: still only the first runs it
    assert runs.running == ["first"] and first.held == {ROLE} and second.held == set()
    assert "standing by for telegram polling: another process runs it" in caplog.text

    one.cancel()  # the holder stops: its job is cancelled, the lock released
    await asyncio.gather(one, return_exceptions=True)
    await first.close()
    took = await runs.until(["second"])
    assert took <= 2 * RETRY + 1
    assert second.held == {ROLE} and runs.most == 1
    assert "took over telegram polling" in caplog.text
    two.cancel()
    await asyncio.gather(two, return_exceptions=True)
    await second.close()
    assert runs.running == []


@pytest.mark.postgres
async def test_a_holder_stopped_during_its_check_releases_the_role_only_after_its_job(
    pg: Database,
) -> None:
    """A deploy stops the holder while its lease connection is answering the liveness check.
    SQLAlchemy drops a connection whose statement is cancelled, and that would release the
    lock at once: the stand-by would start its job while the holder's job is still finishing
    (here a 1 s clean-up). The role must pass over only after the holder's job has ended."""
    runs = Runs()
    first, second = Leases(pg.url, retry=0.1, check=0.05), Leases(pg.url, retry=0.1)
    checking = asyncio.Event()
    check = first._alive

    async def slow_check(generation: int) -> bool:  # the check's query takes a while
        async with first._lock:
            assert first._conn is not None
            checking.set()
            await first._conn.execute(text("SELECT pg_sleep(0.5)"))
        return await check(generation)

    first._alive = slow_check  # type: ignore[method-assign]
    one = asyncio.create_task(first.run(ROLE, runs.job("first", 1.0)))  # type: ignore[arg-type]
    await asyncio.wait_for(checking.wait(), 5)  # the first holds the role (and checks it)
    two = asyncio.create_task(second.run(ROLE, runs.job("second")))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.3)  # the stand-by is trying
        checking.clear()
        await asyncio.wait_for(checking.wait(), 5)
        assert runs.running == ["first"]
        one.cancel()  # mid-check
        await asyncio.gather(one, return_exceptions=True)
        await runs.until(["second"])
        assert runs.most == 1
    finally:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_when_the_holders_connection_dies_it_stops_and_the_other_takes_over(
    pg: Database,
) -> None:
    runs = Runs()
    leases = {name: Leases(pg.url, retry=RETRY, check=0.2) for name in ("a", "b")}
    tasks = {
        name: asyncio.create_task(lease.run(ROLE, runs.job(name)))  # type: ignore[arg-type]
        for name, lease in leases.items()
    }
    try:
        await runs.until(None)
        await asyncio.sleep(3 * RETRY)  # whoever got it first keeps it alone
        assert len(runs.running) == 1
        holder = runs.running[0]
        pid = await holder_pid(pg, ROLE)
        assert pid is not None
        async with pg.engine.connect() as conn:  # as if its process or machine died
            assert await conn.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        other = "b" if holder == "a" else "a"
        took = await runs.until([other])
        assert took <= 2 * RETRY + 1
        assert await holder_pid(pg, ROLE) not in (None, pid)
        # The old holder reconnects and stands by; it does not run the role again meanwhile.
        await asyncio.sleep(3 * RETRY)
        assert runs.running == [other]
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for lease in leases.values():
            await lease.close()


@pytest.mark.postgres
async def test_a_role_whose_job_crashes_is_released_and_taken_again(pg: Database) -> None:
    attempts: list[str] = []
    third = asyncio.Event()
    leases = Leases(pg.url, retry=0.1)

    async def flaky() -> None:
        attempts.append("run")
        if len(attempts) < 3:
            raise RuntimeError("polling crashed")
        third.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(leases.run(ROLE, flaky))
    try:
        await asyncio.wait_for(third.wait(), 5)
        assert await holder_pid(pg, ROLE) is not None  # held while the third attempt runs
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await leases.close()
    assert await holder_pid(pg, ROLE) is None


async def test_on_sqlite_a_role_just_runs(tmp_path: Path) -> None:
    runs = Runs()
    leases = [Leases(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}") for _ in range(2)]
    tasks = [
        asyncio.create_task(lease.run(ROLE, runs.job(str(n))))  # type: ignore[arg-type]
        for n, lease in enumerate(leases)
    ]
    await runs.until(["0", "1"])  # one machine, one process expected: nothing to guard
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert runs.running == []
