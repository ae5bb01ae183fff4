"""Two processes sending for one bot stay under the bot-wide rate together: the send limits are
shared through Redis (delivery/pacing.py SharedLimits). Two outbox workers, each with its own
database engine, share one PostgreSQL outbox and one Redis; Telegram is the emulator."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from bots.telegram import TelegramSender, bot_for
from delivery.pacing import RateLimits, SharedLimits
from delivery.worker import OutboxWorker
from dialogs.messages import Outbound
from emulators.telegram import TelegramEmulator
from storage import repo
from storage.db import Database
from tests.conftest import PG_URL, fresh_postgres

TOKEN = "7000000003:shared-limits"
REDIS = os.environ.get("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RATE = 10.0  # the bot-wide limit, requests per second
CHATS = 40


async def _redis_problem() -> str | None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS)
    try:
        await asyncio.wait_for(client.ping(), 2)
        return None
    except Exception as exc:
        return f"Redis at {REDIS} unreachable: {exc!r}"
    finally:
        await client.aclose()


async def two_processes_send(*, shared: bool) -> int:
    """Both workers drain 40 chats' messages; the emulator's busiest 1-second window."""
    problem = await _redis_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    await (await fresh_postgres()).dispose()
    emu = TelegramEmulator(TOKEN)
    await emu.start()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    parts = []
    try:
        for i in range(2):  # "two processes": separate engines, bots, limiters
            db = Database(PG_URL)
            bot = bot_for(TOKEN, emu.base_url)
            limiter = SharedLimits(REDIS, prefix) if shared else None
            worker = OutboxWorker(
                db, TelegramSender(bot), RateLimits(overall=RATE), shared=limiter,
                poll_interval=0.1, batch=8,
            )  # fmt: skip
            parts.append((db, bot, limiter, worker, asyncio.create_task(worker.run())))
        chats = [8000 + i for i in range(CHATS)]
        for chat in chats:
            emu.send_text(chat, "hi")  # the chat must exist for Telegram
        async with parts[0][0].session() as s, s.begin():
            await repo.enqueue(
                s,
                [
                    {
                        "channel": "telegram",
                        "chat_id": str(c),
                        "body": Outbound(text="новость").to_json(),
                    }
                    for c in chats
                ],
            )
        for *_, worker, _ in parts:
            worker.wake()
        await emu.wait_sent(None, CHATS, timeout=30)
        assert len(emu.sent()) == CHATS  # each once
        return emu.max_rate_per_second()
    finally:
        for db, bot, limiter, worker, task in parts:
            await worker.stop()
            await task
            await bot.session.close()
            if limiter is not None:
                await limiter.close()
            await db.dispose()
        await emu.stop()


async def test_two_processes_together_keep_the_bot_wide_rate() -> None:
    assert await two_processes_send(shared=True) <= RATE + 1


async def test_without_shared_limits_two_processes_double_the_rate() -> None:
    """The control: the same run with per-process limits only goes well over the limit, so
    the test above can fail."""
    assert await two_processes_send(shared=False) > RATE + 3
