"""The outage story end to end, through the real aiogram and vkbottle bots and the emulators:
subscribers from one street flood «не работает интернет» (Telegram and VK) -> an incident opens
by itself and a supervisor's console socket hears of it -> a new subscriber from that street is
told about the outage and its expected fix BEFORE any troubleshooting -> a supervisor closes it
through the console API -> every one of them (but the one who pressed «🔕 Не сообщать») gets the
closing message in their channel, exactly once."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from handoff.auth import add_operator
from storage.models import OutboxItem, OutboxStatus
from supportbot.app import App
from supportbot.settings import IncidentSettings
from tests.e2e.conftest import telegram_settings, vk_settings

THRESHOLD = 4
PASSWORD = "supervisor-password-1"
CLOSED = "устранили"
TROUBLESHOOTING = "Выключи роутер"


class Subscriber:
    """One person in one channel of the emulators."""

    def __init__(self, channel: str, user: int, emu: TelegramEmulator | VKEmulator) -> None:
        self.channel, self.user, self.emu = channel, user, emu

    def texts(self) -> list[str]:
        return [m.get("text") or "" for m in self.emu.sent(self.user)]

    async def say(self, text: str) -> dict[str, Any]:
        """Write `text`; the bot's first reply to it."""
        before = len(self.emu.sent(self.user))
        self.emu.send_text(self.user, text)
        return (await self.emu.wait_sent(self.user, before + 1))[before]

    async def press(self, message: dict[str, Any], title: str) -> dict[str, Any]:
        before = len(self.emu.sent(self.user))
        if isinstance(self.emu, TelegramEmulator):
            rows = message["reply_markup"]["inline_keyboard"]
            [data] = [b["callback_data"] for row in rows for b in row if b["text"] == title]
            self.emu.press_button(self.user, message["message_id"], data)
        else:
            rows = message["keyboard"]["buttons"]
            [payload] = [
                b["action"]["payload"] for row in rows for b in row if b["action"]["label"] == title
            ]
            if isinstance(payload, str):
                payload = json.loads(payload)
            self.emu.press_callback(self.user, payload, int(message["conversation_message_id"]))
        return (await self.emu.wait_sent(self.user, before + 1))[before]

    async def report(self, address: str) -> dict[str, Any]:
        """«не работает интернет», then the address: the bot's first answer to the address."""
        prompt = await self.say("не работает интернет")
        assert "адрес подключения" in prompt["text"], prompt["text"]
        return await self.say(address)


async def supervisor_client(app: App) -> tuple[aiohttp.ClientSession, str]:
    """A supervisor logged in to the console: (HTTP session, CSRF token)."""
    async with app.db.session() as s, s.begin():
        await add_operator(
            s, login="lead", name="Олег", password=PASSWORD, role="supervisor", groups=["tech"]
        )
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    base = f"{app.url}/console"
    async with http.get(f"{base}/login") as resp:
        token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert token is not None
    async with http.post(
        f"{base}/login",
        data={"login": "lead", "password": PASSWORD, "csrf": token.group(1)},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303
    async with http.get(f"{base}/incidents") as resp:
        assert resp.status == 200
        csrf = re.search(r'<meta name="csrf-token" content="([^"]*)"', await resp.text())
    assert csrf is not None
    return http, csrf.group(1)


async def incident_event(ws: aiohttp.ClientWebSocketResponse, action: str) -> dict[str, Any]:
    """The next live `incident` event with this action (opened, updated, closed)."""
    while True:
        event = await ws.receive_json(timeout=10)
        if event.get("type") == "incident" and event["incident"]["action"] == action:
            return dict(event["incident"])


async def outbox_drained(app: App) -> None:
    for _ in range(400):
        async with app.db.session() as s:
            busy = await s.scalar(
                select(func.count(OutboxItem.id)).where(
                    OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
                )
            )
        if not busy:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the outbox did not drain")


async def test_a_flood_from_one_street_opens_an_incident_and_its_close_reaches_everyone(
    start_app: Callable[..., Awaitable[App]], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        vk=vk_settings(vk, "longpoll"),
        incidents=IncidentSettings(threshold=THRESHOLD),
    )
    await vk.wait_listening()
    http, csrf = await supervisor_client(app)
    base = f"{app.url}/console"
    try:
        ws = await http.ws_connect(f"{base}/ws")
        assert (await ws.receive_json(timeout=5))["type"] == "hello"

        flood = [
            Subscriber("telegram", 810_001, telegram),
            Subscriber("vk", 910_001, vk),
            Subscriber("telegram", 810_002, telegram),
            Subscriber("vk", 910_002, vk),
        ]
        addresses = ["Лесная 7, кв 12", "ул. Лесная, д. 9", "лесная ул., 11", "Лесная, 15 кв 3"]
        answers = [await who.report(where) for who, where in zip(flood, addresses, strict=True)]
        for answer in answers[: THRESHOLD - 1]:  # below the threshold: troubleshooting as usual
            assert TROUBLESHOOTING in answer["text"]
        assert "сейчас авария" in answers[-1]["text"]  # the one who crossed it is told at once

        alert = await incident_event(ws, "opened")
        assert alert["source"] == "detected"
        assert alert["reports"] == THRESHOLD and "Лесная" in alert["area_title"]
        async with http.get(f"{base}/api/incidents") as resp:
            listed = await resp.json()
        [incident] = listed["open"]
        assert incident["id"] == alert["id"] and incident["subscribers"] == THRESHOLD

        later = (datetime.now(UTC) + timedelta(hours=6)).isoformat(timespec="minutes")
        async with http.post(
            f"{base}/api/incidents/{incident['id']}",
            json={"eta": later, "description": "Обрыв кабеля, бригада уже едет"},
            headers={"X-CSRF-Token": csrf},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["eta"] != incident["eta"]
        async with http.post(
            f"{base}/api/incidents/{incident['id']}",
            json={"eta": "2020-01-01T10:00"},
            headers={"X-CSRF-Token": csrf},
        ) as resp:
            assert resp.status == 400  # a fix time in the past is refused

        newcomer = Subscriber("telegram", 810_003, telegram)
        told = await newcomer.report("Лесная 20")
        assert "авария" in told["text"] and "починим к" in told["text"]
        assert "Обрыв кабеля, бригада уже едет" in told["text"]  # the supervisor's update
        assert "напишу сюда" in told["text"]
        muting = Subscriber("vk", 910_003, vk)
        told_vk = await muting.report("ул. Лесная, 22")
        assert "починим к" in told_vk["text"]
        muted = await muting.press(told_vk, "🔕 Не сообщать")
        assert "не буду писать" in muted["text"]
        await asyncio.sleep(0.3)  # nothing else is coming: no troubleshooting after the notice
        for who in (newcomer, muting):
            assert not [t for t in who.texts() if TROUBLESHOOTING in t], who.texts()

        async with http.post(
            f"{base}/api/incidents/{incident['id']}/close",
            json={"resolution": "Бригада заменила повреждённый кабель."},
            headers={"X-CSRF-Token": csrf},
        ) as resp:
            assert resp.status == 200, await resp.text()
            closed = await resp.json()
        assert closed["status"] == "closed" and closed["queued"] == THRESHOLD + 1
        assert (await incident_event(ws, "closed"))["id"] == incident["id"]
        async with http.post(
            f"{base}/api/incidents/{incident['id']}/close",
            json={},
            headers={"X-CSRF-Token": csrf},
        ) as resp:
            assert resp.status == 409  # closing twice tells nobody twice

        told_all = [*flood, newcomer]
        await outbox_drained(app)  # everything queued by the close went out (or failed)
        for who in told_all:
            closing = [t for t in who.texts() if CLOSED in t]
            assert len(closing) == 1, (who.channel, who.user, who.texts()[-3:])
            assert "Бригада заменила повреждённый кабель." in closing[0]
        assert not [t for t in muting.texts() if CLOSED in t]
        await ws.close()
    finally:
        await http.close()
