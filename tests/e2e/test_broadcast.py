"""A proactive broadcast to 2,000+ subscribers through the real app (outbox workers, aiogram,
vkbottle) against emulators that enforce Telegram's ~30 msg/s and VK's 20 requests/s: everyone
concerned gets exactly one message in their channel, nobody else gets any, the busiest second
stays within the limits and the outbox ends empty. Takes ~50 s: 1,200 Telegram messages at the
app's 25/s and 800 VK ones at 18/s go out side by side."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from dialogs.content import ButtonSpec, Response, Variant
from dialogs.messages import Channel
from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from services.notify import NotifyResult, notify
from storage.db import Database
from storage.models import OutboxItem, OutboxStatus
from tests.audience import Person, seed
from tests.e2e.conftest import telegram_settings, vk_settings

NEWS = Response(
    "incident_closed",
    (
        Variant(
            text="{first_name}, связь по адресу {area} восстановлена. Спасибо за терпение!",
            buttons=((ButtonSpec("Всё работает 👍", "intent:thanks"),),),
        ),
    ),
)


def audience() -> tuple[list[Person], set[int], set[int]]:
    """The people, and the Telegram chats and VK peers that must get the news (once each)."""
    people = [Person((("telegram", 300_000 + i),)) for i in range(1_200)]
    people += [Person((("vk", 400_000 + i),)) for i in range(800)]
    tg_told = {300_000 + i for i in range(1_200)}
    vk_told = {400_000 + i for i in range(800)}
    for i in range(10):  # linked Telegram + VK: told once, where they wrote last
        tg, vk = ("telegram", 310_000 + i), ("vk", 410_000 + i)
        if i < 2:  # wrote in VK last, but blocked the bot there: Telegram it is
            people.append(Person((tg, vk), unreachable=("vk",)))
            tg_told.add(tg[1])
        elif i % 2:
            people.append(Person((vk, tg)))
            tg_told.add(tg[1])
        else:
            people.append(Person((tg, vk)))
            vk_told.add(vk[1])
    people += [Person((("telegram", 320_000 + i),), opted_out=True) for i in range(5)]
    people += [Person((("vk", 420_000 + i),), opted_out=True) for i in range(5)]
    people.append(Person((("telegram", 330_000),), unreachable=("telegram",)))
    return people, tg_told, vk_told


async def drained(db: Database, timeout: float) -> Counter[str]:  # noqa: ASYNC109
    """Outbox statuses once nothing is pending or in flight."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as s:
            rows = await s.execute(select(OutboxItem.status, func.count()).group_by("status"))
            statuses: Counter[str] = Counter({status: n for status, n in rows})
        busy = statuses[OutboxStatus.PENDING] + statuses[OutboxStatus.SENDING]
        if not busy:
            return statuses
        assert time.monotonic() < deadline, f"outbox not drained in {timeout}s: {statuses}"
        await asyncio.sleep(0.5)


async def test_broadcast_reaches_everyone_once_within_the_platform_limits(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    telegram.enforce_limits = vk.enforce_limits = True  # 429 / error 6 beyond the real limits
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"), vk=vk_settings(vk, "longpoll")
    )
    await vk.wait_listening()
    people, tg_told, vk_told = audience()
    for person in people:
        for channel, user_id in person.accounts:
            if channel == "telegram":
                telegram.add_user(user_id, first_name=person.first_name)  # started the bot once
    ids = await seed(app.db, people)

    started = time.perf_counter()
    async with app.db.session() as s, s.begin():
        result = await notify(s, ids, NEWS, {"area": "ул. Садовая, 12"})
    enqueued_in = time.perf_counter() - started
    for channel in result.channels:
        app.workers[Channel(channel)].wake()
    assert result == NotifyResult(
        queued=len(tg_told) + len(vk_told),
        opted_out=10,
        unreachable=1,
        channels=frozenset({"telegram", "vk"}),
    )
    assert enqueued_in < 5, f"enqueueing {result.queued} took {enqueued_in:.1f}s"

    statuses = await drained(app.db, timeout=120)
    assert statuses == {OutboxStatus.SENT: result.queued}
    tg_got = Counter(int(m["chat_id"]) for m in telegram.sent())
    vk_got = Counter(int(m["peer_id"]) for m in vk.sent())
    assert tg_got == dict.fromkeys(tg_told, 1)  # once each; opted out, unreachable: nothing
    assert vk_got == dict.fromkeys(vk_told, 1)
    assert "Иван, связь по адресу ул. Садовая, 12 восстановлена" in telegram.sent()[0]["text"]
    assert [c for c in telegram.calls if c["status"] == 429] == []
    assert [c for c in vk.calls if c["error"] is not None] == []
    assert telegram.max_rate_per_second() <= 30
    assert vk.max_rate_per_second() <= 20
