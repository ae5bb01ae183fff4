"""A poison message (a bug hit by one subscriber's update, a NUL the database would refuse)
must not hold up anyone else: it is answered, recorded, and the others go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from dialogs.pipeline import APOLOGY
from emulators.telegram import TelegramEmulator
from storage import repo
from storage.models import DeadLetter, Message
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import telegram_settings

POISON = 6660


async def test_a_poison_update_delays_no_other_subscriber(
    start_app: Callable[..., Any], telegram: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await fresh_postgres()).dispose()
    real = repo.get_or_create_account

    async def buggy(session: Any, **kw: Any) -> Any:
        if kw["user_id"] == str(POISON):
            raise ValueError("a bug only this account's data triggers")
        return await real(session, **kw)

    monkeypatch.setattr(repo, "get_or_create_account", buggy)
    tg = telegram_settings(telegram, "polling").model_copy(update={"rate_overall": 1000.0})
    app = await start_app(telegram=tg, database_url=PG_URL)  # sends not paced: time = work
    telegram.send_text(9000, "/start")
    await telegram.wait_sent(9000, 1, timeout=30)  # up and answering

    async def crowd(users: range) -> float:
        """The worst reply time among `users`, all asking at once."""
        asked = time.monotonic()
        for user in users:
            telegram.send_text(user, "где оплатить?")
        for user in users:
            await telegram.wait_sent(user, 1, timeout=10)
        return max(telegram.sent(u)[0]["at"] for u in users) - asked

    alone = await crowd(range(9001, 9011))  # how long it takes on this machine right now
    telegram.send_text(POISON, "привет")
    telegram.send_text(POISON + 1, "тариф\x00 какой у меня?")  # a NUL: stored clean, answered
    beside = await crowd(range(9011, 9021))
    assert beside < alone + 1.0, f"{beside:.2f} s beside the poison, {alone:.2f} s alone"

    await telegram.wait_sent(POISON, 1, timeout=10)
    assert telegram.sent(POISON)[0]["text"] == APOLOGY
    await telegram.wait_sent(POISON + 1, 1, timeout=10)
    await asyncio.sleep(0.5)
    assert len(telegram.sent(POISON)) == 1  # not retried in a loop
    async with app.db.session() as s:
        [letter] = (await s.execute(select(DeadLetter))).scalars()
        stored = await s.scalar(select(Message.text).where(Message.text.like("тариф%")))
    assert letter.user_id == str(POISON) and "ValueError" in letter.error
    assert stored == "тариф какой у меня?"
