"""The database goes away mid-conversation (PostgreSQL restart): no subscriber message is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from emulators.telegram import TelegramEmulator
from storage.models import Message
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import telegram_settings
from tests.support import TcpProxy

USER = 3003


async def test_polling_holds_updates_until_postgres_is_back(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    await (await fresh_postgres()).dispose()  # a fresh schema (skips if no server)
    url = make_url(PG_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        database_url=url.set(port=port).render_as_string(hide_password=False),
    )
    telegram.send_text(USER, "/start")
    await telegram.wait_sent(USER, 1)

    await proxy.cut()
    telegram.send_text(USER, "спасибо")
    telegram.send_text(USER, "пока")
    await asyncio.sleep(1.5)  # the bot cannot store them now, so it must not answer or drop them
    assert len(telegram.sent(USER)) == 1
    await proxy.start()  # the database is back on the same address

    replies = await telegram.wait_sent(USER, 3, timeout=30)
    assert len(replies) == 3
    async with app.db.session() as s:
        texts = (await s.execute(select(Message.text).where(Message.direction == "in"))).scalars()
        assert list(texts) == ["/start", "спасибо", "пока"]
        assert await s.scalar(select(func.count()).select_from(Message)) == 6
