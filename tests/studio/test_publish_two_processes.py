"""Two `supportbot run` processes on one PostgreSQL + Redis serve the content version published in
the database: a publish is live in both within 2 s, and a restore of the previous version brings
the old text back in both."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dialogs.content_tree import read_tree
from dialogs.versions import ContentVersions
from emulators.telegram import TelegramEmulator
from handoff.events import RedisBus
from storage.db import Database
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import TG_TOKEN
from tests.studio.support import (
    NEW,
    OLD,
    PREFIX,
    REDIS_URL,
    SERVICE,
    start_process,
    wait_up,
    wait_version,
)
from tests.support import CONTENT, REFERENCE_ACTIONS

pytestmark = pytest.mark.postgres


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(TG_TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


async def test_a_publish_and_a_restore_reach_both_processes(
    tmp_path: Path, telegram: TelegramEmulator
) -> None:
    db = await fresh_postgres()  # skips without a server
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.dispose()
    a = await start_process("a", tmp_path, telegram, PG_URL)
    b = await start_process("b", tmp_path, telegram, PG_URL)
    try:
        await wait_up([a, b])
        first = await a.content_version()
        assert first is not None and await b.content_version() == first  # seeded once
        assert (await a.ask(telegram, 7001, "где ближайший офис?")).startswith(OLD)
        assert (await b.ask(telegram, 7002, "где ближайший офис?")).startswith(OLD)

        # A publish from a third party on the deployment's database and Redis, as the studio
        # in any process does it: the commit notes the event, the bus carries it.
        db = Database(PG_URL)
        bus = RedisBus(REDIS_URL, PREFIX)
        await bus.start()
        db.on_commit(publish=bus.publish, wake=lambda _c: None)
        versions = ContentVersions(db, REFERENCE_ACTIONS, None, tmp_path / "cache")
        tree = read_tree(CONTENT)
        tree[SERVICE] = tree[SERVICE].replace(OLD.encode(), NEW.encode())
        second = await versions.import_tree(tree, author="editor", comment="новый адрес")
        since = time.monotonic()  # committed: from here every process must switch
        assert second is not None
        took = await wait_version([a, b], second, since)
        print(f"publish live in both processes after {max(took):.2f} s ({took})")
        assert (await a.ask(telegram, 7003, "где ближайший офис?")).startswith(NEW)
        assert (await b.ask(telegram, 7004, "где ближайший офис?")).startswith(NEW)
        assert max(took) < 2.0, took

        third = await versions.restore(first, author="editor")
        since = time.monotonic()
        took = await wait_version([a, b], third, since)
        print(f"restore live in both processes after {max(took):.2f} s ({took})")
        assert (await a.ask(telegram, 7005, "где ближайший офис?")).startswith(OLD)
        assert (await b.ask(telegram, 7006, "где ближайший офис?")).startswith(OLD)
        assert max(took) < 2.0, took
        await bus.close()
        await db.dispose()
    finally:
        await a.stop()
        await b.stop()
