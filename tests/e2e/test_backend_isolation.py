"""A hung or broken billing/CRM must not stall other subscribers (services/backend/guard.py).

The app runs on PostgreSQL with Telegram polling; the backend is the demo with `offices`
replaced: it hangs forever, or raises an ordinary exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from emulators.telegram import TelegramEmulator
from services.backend import BackendContext, Office
from services.backend.demo import DemoBackend
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import telegram_settings

UNAVAILABLE = "биллинг отвечает с задержкой"


class HangingBackend(DemoBackend):
    async def offices(self, ctx: BackendContext) -> list[Office]:
        await asyncio.Event().wait()  # billing never answers
        raise AssertionError("unreachable")


class BrokenBackend(DemoBackend):
    async def offices(self, ctx: BackendContext) -> list[Office]:
        raise RuntimeError("billing client bug: 'NoneType' object is not subscriptable")


async def test_a_hung_backend_leaves_other_subscribers_answered(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    await (await fresh_postgres()).dispose()
    await start_app(
        telegram=telegram_settings(telegram, "polling").model_copy(update={"rate_overall": 1e3}),
        database_url=PG_URL,
        backend=f"{__name__}:HangingBackend",
        backend_timeout=2.0,
        backend_concurrency=3,
    )
    hung = list(range(7001, 7011))  # ten subscribers ask for the offices at once
    others = list(range(7101, 7131))  # thirty others ask an FAQ meanwhile
    started = time.monotonic()
    for user in hung:
        telegram.send_text(user, "где ваши офисы?")
    await asyncio.sleep(0.3)
    for user in others:
        telegram.send_text(user, "как оплатить связь?")
    answered_at = {}
    for user in others:
        await telegram.wait_sent(user, 1, timeout=20)
        answered_at[user] = telegram.sent(user)[0]["at"]
    worst_other = max(answered_at.values()) - started
    for user in hung:  # each told billing is slow, none left without an answer
        await telegram.wait_sent(user, 1, timeout=20)
        assert UNAVAILABLE in (telegram.sent(user)[0]["text"] or "")
    # Sends are not paced here (rate_overall), so this is the bot's own time: the others are
    # answered before the hung calls' 2 s timeout is even up.
    assert worst_other < 1.5, f"others waited {worst_other:.1f} s for an FAQ answer"
    # The breaker is open now: the next one is told at once, not after the timeout.
    asked = time.monotonic()
    telegram.send_text(7200, "где ваши офисы?")
    await telegram.wait_sent(7200, 1, timeout=10)
    assert UNAVAILABLE in (telegram.sent(7200)[0]["text"] or "")
    assert telegram.sent(7200)[0]["at"] - asked < 1.5


async def test_a_backend_exception_is_a_friendly_reply_not_a_redelivery_storm(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    """It used to be a webhook 500 for every redelivery (188 in 40 s in one run)."""
    from tests.e2e.conftest import free_port

    port = free_port()
    await start_app(
        telegram=telegram_settings(telegram, "webhook", port),
        http_port=port,
        backend=f"{__name__}:BrokenBackend",
    )
    update = telegram.send_text(7301, "где ваши офисы?")
    await telegram.wait_sent(7301, 1, timeout=10)
    assert UNAVAILABLE in (telegram.sent(7301)[0]["text"] or "")
    await asyncio.sleep(0.5)
    attempts = [a for a in telegram.webhook_attempts if a["update_id"] == update["update_id"]]
    assert [a["status"] for a in attempts] == [200]
