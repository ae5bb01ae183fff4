"""The sandbox's JSON side without a browser: GET /sandbox/sms (the demo's SMS, filtered and
limited), sharing a contact from the Telegram pane, and the reply keyboard a Telegram chat shows
(read in /api/state, pressed through /api/telegram/reply). The Telegram pane talks to a real
emulator, the bot's side is the real TelegramSender over aiogram."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bots.telegram import TelegramSender, bot_for
from dialogs.messages import Button, Outbound
from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from storage.db import Database
from storage.models import DemoSms
from supportbot.sandbox import sandbox_app

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@dataclass
class Site:
    url: str
    http: aiohttp.ClientSession
    telegram: TelegramEmulator

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", params=params) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}{path}", json=body) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def site(db: Database) -> AsyncIterator[Site]:
    telegram = TelegramEmulator()
    await telegram.start()
    vk = VKEmulator("vk1.a.sandbox-test", 229000555)
    app = web.Application()
    app.add_subapp("/sandbox", sandbox_app(db=db, telegram=telegram, vk=vk))
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    async with aiohttp.ClientSession() as http:
        yield Site(f"http://127.0.0.1:{runner.addresses[0][1]}/sandbox", http, telegram)
    await runner.cleanup()
    await telegram.stop()


async def add_sms(db: Database, *rows: tuple[str, str, int]) -> None:
    """(phone, text, minutes after T0) each."""
    async with db.transaction() as session:
        for phone, text, minutes in rows:
            session.add(DemoSms(phone=phone, text=text, at=T0 + timedelta(minutes=minutes)))


async def test_sms_newest_first_filtered_by_any_spelling_and_limited(
    site: Site, db: Database
) -> None:
    status, body = await site.get("/sms")
    assert (status, body) == (200, [])
    await add_sms(
        db,
        ("+79110000001", "Код подтверждения: 4821", 1),
        ("+79110000002", "Код подтверждения: 1177", 2),
        ("+79110000001", "Код подтверждения: 9034", 3),
    )
    status, body = await site.get("/sms")
    assert status == 200
    assert body == [
        {"phone": "+79110000001", "text": "Код подтверждения: 9034", "at": _iso(3)},
        {"phone": "+79110000002", "text": "Код подтверждения: 1177", "at": _iso(2)},
        {"phone": "+79110000001", "text": "Код подтверждения: 4821", "at": _iso(1)},
    ]
    assert datetime.fromisoformat(body[0]["at"]) == T0 + timedelta(minutes=3)
    _, anna = await site.get("/sms", phone="8 (911) 000-00-01")
    assert [s["text"][-4:] for s in anna] == ["9034", "4821"]
    _, newest = await site.get("/sms", phone="+79110000001", limit="1")
    assert [s["text"][-4:] for s in newest] == ["9034"]
    _, nobody = await site.get("/sms", phone="+79110000006")
    assert nobody == []
    # the page gets the newest ones with its state
    _, state = await site.get("/api/state")
    assert [s["text"][-4:] for s in state["sms"]] == ["9034", "1177", "4821"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"phone": "12345"}, "phone must be a Russian phone number"),
        ({"limit": "0"}, "limit must be a number from 1 to 200"),
        ({"limit": "201"}, "limit must be"),
        ({"limit": "ten"}, "limit must be"),
    ],
)
async def test_sms_refuses_bad_queries(site: Site, params: dict[str, str], error: str) -> None:
    status, body = await site.get("/sms", **params)
    assert status == 400 and error in body["error"]


async def test_share_own_and_somebody_elses_contact_from_the_telegram_pane(site: Site) -> None:
    status, body = await site.post("/api/telegram/contact", {"phone": "8 911 000-00-01"})
    assert status == 200
    user = body["user_id"]
    status, _ = await site.post(
        "/api/telegram/contact", {"phone": "+7 911 000-00-02", "own": False}
    )
    assert status == 200
    [own, other] = [u["message"]["contact"] for u in site.telegram.pending_updates]
    assert own == {"phone_number": "79110000001", "first_name": "Иван", "user_id": user}
    assert other == {"phone_number": "+7 911 000-00-02", "first_name": "Пётр"}
    _, state = await site.get("/api/state")
    bubbles = [m["attachment"] for m in state["panes"]["telegram"]["messages"]]
    assert bubbles == ["📱 мой номер +79110000001", "👤 контакт Пётр: +79110000002"]

    status, body = await site.post("/api/telegram/contact", {"phone": "не номер"})
    assert status == 400 and "Russian phone number" in body["error"]
    status, body = await site.post("/api/telegram/contact", {"phone": "+79110000001", "own": 1})
    assert status == 400
    status, body = await site.post("/api/vk/contact", {"phone": "+79110000001"})
    assert status == 409 and "VK has no way to share a contact" in body["error"]
    assert len(site.telegram.pending_updates) == 2


async def test_the_reply_keyboard_is_shown_and_pressed(site: Site) -> None:
    status, body = await site.post("/api/telegram/send", {"text": "баланс"})
    user = body["user_id"]
    _, state = await site.get("/api/state")
    assert state["panes"]["telegram"]["reply_keyboard"] is None
    assert state["panes"]["vk"]["reply_keyboard"] is None

    bot = bot_for(site.telegram.token, site.telegram.base_url)
    try:
        buttons = (
            (Button("📱 Поделиться номером", request="contact"),),
            (Button("Ввести вручную", payload="manual"),),
        )
        await TelegramSender(bot).send(str(user), Outbound("Номер?", buttons), key=1)
    finally:
        await bot.session.close()
    _, state = await site.get("/api/state")
    assert state["panes"]["telegram"]["reply_keyboard"] == {
        "rows": [
            [{"label": "📱 Поделиться номером", "kind": "contact"}],
            [{"label": "Ввести вручную", "kind": "text"}],
        ],
        "placeholder": None,
    }
    assert state["panes"]["telegram"]["messages"][-1]["buttons"] == []  # not inline ones

    status, body = await site.post("/api/telegram/reply", {"text": "Нет такой"})
    assert status == 409 and "can't be pressed" in body["error"]
    status, _ = await site.post("/api/telegram/reply", {"text": "Ввести вручную"})
    assert status == 200
    _, state = await site.get("/api/state")
    pane = state["panes"]["telegram"]
    assert pane["messages"][-1]["text"] == "Ввести вручную"
    assert pane["reply_keyboard"] is None  # one-time: hidden once used
    status, _ = await site.post("/api/vk/reply", {"text": "Ввести вручную"})
    assert status == 409


def _iso(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()
