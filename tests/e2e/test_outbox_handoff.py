"""Replies handed to this process's outbox worker as their transaction commits (storage/repo.py
`enqueue`, delivery/worker.py `take`): they go out without waiting for a claim or a poll, in
order per chat, and a process that dies holding them loses none. The real aiogram sender
against the Telegram emulator; the worker polls every 30 s, so a poll can't be what sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import delivery.worker
from bots.telegram import TelegramSender, bot_for
from delivery.pacing import RateLimits
from delivery.worker import OutboxWorker, WorkerSenders
from dialogs import outgoing
from dialogs.messages import Channel, Outbound
from dialogs.outgoing import Outgoing, Recipient
from emulators.telegram import TelegramEmulator
from storage import repo
from storage.db import Database
from storage.models import OutboxItem
from tests.conftest import fresh_postgres, fresh_sqlite

TOKEN = "7000000019:handoff-test"
TELEGRAM = Channel("telegram")


@dataclass
class Setup:
    emu: TelegramEmulator
    db: Database
    worker: OutboxWorker
    claims: list[int]  # rows each claim of the worker returned
    task: asyncio.Task[None]  # the worker's run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    """The real worker and sender, on both databases."""
    emu = TelegramEmulator(TOKEN)
    await emu.start()
    if request.param == "sqlite":
        db = await fresh_sqlite(tmp_path / "handoff.db")
    else:
        db = await fresh_postgres()
    bot = bot_for(TOKEN, emu.base_url)
    worker = OutboxWorker(db, TelegramSender(bot), RateLimits(), poll_interval=30)
    claims: list[int] = []
    claim = worker._claim

    async def counted(room: int) -> list[Any]:
        rows = await claim(room)
        claims.append(len(rows))
        return rows

    worker._claim = counted  # type: ignore[method-assign]
    db.on_commit(wake=lambda _channel: worker.wake(), senders=WorkerSenders({TELEGRAM: worker}))
    task = asyncio.create_task(worker.run())
    await _until(lambda: claims)  # the worker's first round (nothing queued yet)
    yield Setup(emu, db, worker, claims, task)
    await worker.stop()
    await task
    await bot.session.close()
    await db.dispose()
    await emu.stop()


async def _until(done: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def write(
    db: Database,
    *replies: tuple[int, str],
    before_commit: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """The replies (chat, text), written in one transaction as the pipeline writes them (to
    each chat's subscriber's conversation)."""
    async with db.transaction() as session:
        to: dict[int, Recipient] = {}
        for chat in sorted({chat for chat, _ in replies}):
            account = await repo.get_or_create_account(
                session, channel="telegram", user_id=str(chat), chat_id=str(chat)
            )
            conv, _ = await repo.open_conversation(session, account)
            to[chat] = Recipient.of(conv, account)
        await outgoing.write(session, [Outgoing(to[chat], Outbound(text=t)) for chat, t in replies])
        if before_commit is not None:
            await before_commit()


def texts(emu: TelegramEmulator, chat: int) -> list[str]:
    return [str(m["text"]) for m in emu.sent(chat)]


async def rows(db: Database) -> list[tuple[str, str, int]]:
    async with db.session() as s:
        result = await s.execute(
            select(OutboxItem.chat_id, OutboxItem.status, OutboxItem.attempts).order_by(
                OutboxItem.id
            )
        )
        return [tuple(r) for r in result]  # type: ignore[misc]


async def test_replies_go_out_at_commit_in_order_per_chat(setup: Setup) -> None:
    emu = setup.emu
    for chat in (601, 602):
        emu.add_user(chat)  # the chats exist for Telegram
    await write(setup.db, (601, "первый"), (601, "второй"), (602, "вам"), (601, "третий"))
    # As the transaction committed, each chat's first reply was already claimed and on its
    # way; the others wait their turn behind it.
    assert await rows(setup.db) == [
        ("601", "sending", 1),
        ("601", "pending", 0),
        ("602", "sending", 1),
        ("601", "pending", 0),
    ]
    await _until(lambda: len(emu.sent()) == 4)
    assert texts(emu, 601) == ["первый", "второй", "третий"]
    assert texts(emu, 602) == ["вам"]
    # Only the replies queued behind another were claimed (two more claims at most).
    assert sum(setup.claims) == 2
    await _until(lambda: setup.worker._flying == {})
    assert {status for _, status, _ in await rows(setup.db)} == {"sent"}


async def test_a_reply_behind_one_on_the_wire_follows_it_without_waiting_for_a_poll(
    setup: Setup,
) -> None:
    emu = setup.emu
    emu.add_user(603)
    started = time.monotonic()
    await write(setup.db, (603, "ответ на первое"))
    await write(setup.db, (603, "ответ на второе"))  # the first is handed, not yet sent
    await _until(lambda: len(texts(emu, 603)) == 2)
    assert texts(emu, 603) == ["ответ на первое", "ответ на второе"]
    assert time.monotonic() - started < 5  # the poll is 30 s away


async def test_a_process_that_dies_holding_handed_replies_loses_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows handed to a worker that never sends them (its process died after the commit) are
    claimed by another process's worker once their lease runs out, and sent once."""
    monkeypatch.setattr(delivery.worker, "LEASE", timedelta(seconds=1))
    emu = TelegramEmulator(TOKEN)
    await emu.start()
    db = await fresh_sqlite(tmp_path / "died.db")
    bot = bot_for(TOKEN, emu.base_url)
    dead = OutboxWorker(db, TelegramSender(bot), RateLimits())
    dead._running = True  # it accepts rows, and dies before it can send them
    dead.take = lambda rows: None  # type: ignore[method-assign]
    db.on_commit(senders=WorkerSenders({TELEGRAM: dead}))
    try:
        emu.add_user(604)
        await write(db, (604, "не потеряется"))
        assert await rows(db) == [("604", "sending", 1)]
        survivor = OutboxWorker(db, TelegramSender(bot), RateLimits(), poll_interval=0.2)
        task = asyncio.create_task(survivor.run())
        try:
            await _until(lambda: texts(emu, 604) == ["не потеряется"])
            await asyncio.sleep(0.5)
            assert texts(emu, 604) == ["не потеряется"]
        finally:
            await survivor.stop()
            await task
    finally:
        await bot.session.close()
        await db.dispose()
        await emu.stop()


async def test_a_worker_takes_no_more_than_it_has_room_for(setup: Setup) -> None:
    """Beyond the worker's room (`batch` rows in flight) new replies wait for its claims, as
    a broadcast's rows would, and still all go out."""
    setup.worker.batch, setup.worker._refill = 2, 1
    chats = list(range(610, 615))
    for chat in chats:
        setup.emu.add_user(chat)
    await write(setup.db, *((chat, "новость") for chat in chats))
    assert [status for _, status, _ in await rows(setup.db)] == ["sending"] * 2 + ["pending"] * 3
    await _until(lambda: len(setup.emu.sent()) == 5)
    assert sorted(int(m["chat_id"]) for m in setup.emu.sent()) == chats


async def test_a_reply_handed_as_the_worker_stops_goes_to_the_next_process_at_once(
    setup: Setup,
) -> None:
    """A deploy: the reply's transaction took this worker's lease, then the worker stopped before
    the commit. The reply is pending again as it commits, so the next process sends it at once
    rather than after the lease (20 s)."""
    setup.emu.add_user(620)

    async def stop_the_worker() -> None:
        await setup.worker.stop()
        await setup.task

    await write(setup.db, (620, "после выкладки"), before_commit=stop_the_worker)
    deadline = time.monotonic() + 5
    while (now := await rows(setup.db)) != [("620", "pending", 1)]:
        assert time.monotonic() < deadline, now  # still leased to the stopped worker
        await asyncio.sleep(0.05)
    bot = bot_for(TOKEN, setup.emu.base_url)
    successor = OutboxWorker(setup.db, TelegramSender(bot), RateLimits(), poll_interval=30)
    task = asyncio.create_task(successor.run())
    try:
        await _until(lambda: texts(setup.emu, 620) == ["после выкладки"])
    finally:
        await successor.stop()
        await task
        await bot.session.close()
