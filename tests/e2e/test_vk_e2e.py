"""A subscriber talks to the real vkbottle bot through the VK emulator, Long Poll and Callback API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from emulators.vk import VKEmulator
from storage.models import ChannelAccount, Message, OutboxItem
from supportbot.app import App
from tests.e2e.conftest import VK_CONFIRM, VK_GROUP, VK_SECRET, vk_settings

USER = 2001


def buttons(sent: dict[str, Any]) -> list[tuple[str, str]]:
    keyboard = sent.get("keyboard") or {}
    out = []
    for row in keyboard.get("buttons", []):
        for b in row:
            action = b["action"]
            payload = action.get("payload")
            if isinstance(payload, str):
                payload = json.loads(payload)
            out.append((action["label"], (payload or {}).get("p") or action.get("link")))
    return out


def cmid(sent: dict[str, Any]) -> int:
    return int(sent["conversation_message_id"])


async def start_bot(start_app: Callable[..., Any], emu: VKEmulator, mode: str) -> App:
    app: App = await start_app(vk=vk_settings(emu, mode))
    if mode == "callback":
        assert await emu.set_callback_server(f"{app.url}/webhook/vk", VK_SECRET)
    else:  # like VK, Long Poll only gets events published after the bot connected
        await emu.wait_listening()
    return app


async def count(app: App, model: type) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("mode", ["longpoll", "callback"])
async def test_a_conversation_with_callback_buttons_and_media(
    start_app: Callable[..., Any], vk: VKEmulator, mode: str
) -> None:
    await start_bot(start_app, vk, mode)

    vk.set_user(USER, "Мария", "Петрова")
    vk.send_text(USER, "Начать", payload='{"command":"start"}')
    [welcome] = await vk.wait_sent(USER, 1)
    assert welcome["text"].startswith("Привет, Мария!")  # VK sends ids only: users.get
    assert ("💳 Оплата", "intent:payment_methods") in buttons(welcome)

    press = vk.press_callback(USER, {"p": "intent:payment_methods"}, cmid(welcome))
    answer = (await vk.wait_sent(USER, 2))[-1]
    assert "Оплатить связь можно разными способами" in answer["text"]
    await asyncio.sleep(0.3)
    event_id = press["object"]["event_id"]
    assert any(a["event_id"] == event_id for a in vk.event_answers), "spinner must be stopped"

    vk.send_text(
        USER, "Офисы", payload=json.dumps({"p": "intent:offices"})
    )  # a text-keyboard button
    assert "салоны связи" in (await vk.wait_sent(USER, 3))[-1]["text"]
    vk.send_photo(USER, "вот скрин")
    assert "Фото получил" in (await vk.wait_sent(USER, 4))[-1]["text"]
    vk.send_sticker(USER)
    assert "стикер" in (await vk.wait_sent(USER, 5))[-1]["text"]
    vk.send_other(USER, "audio_message")
    assert "понимаю только текст" in (await vk.wait_sent(USER, 6))[-1]["text"]


async def test_callback_redelivery_is_answered_once(
    start_app: Callable[..., Any], vk: VKEmulator
) -> None:
    app = await start_bot(start_app, vk, "callback")
    event = vk.send_text(USER, "привет")
    await vk.wait_sent(USER, 1)
    vk.redeliver(event["event_id"])
    await vk.wait_callback_idle()
    await asyncio.sleep(0.3)
    assert len(vk.sent(USER)) == 1
    assert await count(app, Message) == 2


async def test_callback_refuses_wrong_secret_and_malformed_bodies(
    start_app: Callable[..., Any], vk: VKEmulator
) -> None:
    app = await start_bot(start_app, vk, "callback")
    url = f"{app.url}/webhook/vk"
    event = {
        "type": "message_new",
        "event_id": "deadbeef01",
        "v": "5.199",
        "group_id": 1,
        "object": {"message": {"id": 1, "date": 1, "peer_id": 77, "from_id": 77, "text": "hi",
                               "conversation_message_id": 1, "attachments": []}},
    }  # fmt: skip
    async with aiohttp.ClientSession() as http:
        confirm = {"type": "confirmation", "group_id": VK_GROUP, "secret": VK_SECRET}
        async with http.post(url, json=confirm) as resp:
            assert await resp.text() == VK_CONFIRM
        for secret in (None, "wrong"):
            body = {**event, "secret": secret} if secret else event
            async with http.post(url, json=body) as resp:
                assert resp.status == 403
        async with http.post(url, data=b"{oops") as resp:
            assert resp.status == 400
    assert await count(app, Message) == 0
    vk.send_text(USER, "привет")  # still serving
    assert (await vk.wait_sent(USER, 1))[0]["text"].startswith("Привет")


@pytest.mark.parametrize("code", [6, 9])
async def test_vk_rate_errors_delay_but_lose_and_duplicate_nothing(
    start_app: Callable[..., Any], vk: VKEmulator, code: int
) -> None:
    await start_bot(start_app, vk, "longpoll")
    vk.fail("messages.send", error_code=code, times=3)
    for text in ("привет", "спасибо", "пока"):
        vk.send_text(USER, text)
    sent = await vk.wait_sent(USER, 3, timeout=30)
    await asyncio.sleep(1.0)
    assert len(vk.sent(USER)) == 3
    assert sent[0]["text"].startswith("Привет")  # order kept: the welcome came first
    refused = [c for c in vk.calls if c["method"] == "messages.send" and c["error"] == code]
    assert len(refused) == 3


async def test_vk_blocked_subscriber_is_marked_unreachable(
    start_app: Callable[..., Any], vk: VKEmulator
) -> None:
    app = await start_bot(start_app, vk, "longpoll")
    vk.block(USER)
    vk.send_text(USER, "привет")
    await asyncio.sleep(2.0)
    attempts = [c for c in vk.calls if c["method"] == "messages.send"]
    assert len(attempts) == 1 and attempts[0]["error"] == 901
    async with app.db.session() as s:
        account = await s.scalar(select(ChannelAccount))
        item = await s.scalar(select(OutboxItem))
    assert account is not None and account.unreachable_at is not None
    assert item is not None and item.status == "unreachable"
