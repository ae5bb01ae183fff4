"""A subscriber talks to the real aiogram bot through the Telegram emulator, polling and webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from emulators.telegram import TelegramEmulator
from storage.models import ChannelAccount, Message, OutboxItem
from supportbot.app import App
from tests.e2e.conftest import TG_SECRET, free_port, telegram_settings

USER = 1001


def buttons(sent: dict[str, Any]) -> list[tuple[str, str]]:
    markup = sent.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data") or b.get("url"))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


async def start_bot(start_app: Callable[..., Any], emu: TelegramEmulator, mode: str) -> App:
    port = free_port()
    return await start_app(telegram=telegram_settings(emu, mode, port), http_port=port)


async def count(app: App, model: type) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_conversation_with_menu_buttons_media_and_edits(
    start_app: Callable[..., Any], telegram: TelegramEmulator, mode: str
) -> None:
    await start_bot(start_app, telegram, mode)

    telegram.send_text(USER, "/start")
    [welcome] = await telegram.wait_sent(USER, 1)
    assert welcome["text"].startswith("Привет, Иван!")
    assert ("💳 Оплата", "intent:payment_methods") in buttons(welcome)

    update = telegram.press_button(USER, welcome["message_id"], "intent:payment_methods")
    answer = (await telegram.wait_sent(USER, 2))[-1]
    assert "Оплатить связь можно разными способами" in answer["text"]
    await asyncio.sleep(0.2)
    answered = [
        a
        for a in telegram.callback_answers
        if a["callback_query_id"] == update["callback_query"]["id"]
    ]
    assert answered, "the button spinner must be stopped with answerCallbackQuery"

    telegram.send_photo(USER, caption="вот роутер")
    assert "Фото получил" in (await telegram.wait_sent(USER, 3))[-1]["text"]
    telegram.send_sticker(USER)
    assert "стикер" in (await telegram.wait_sent(USER, 4))[-1]["text"]
    telegram.send_other(USER, "voice")
    assert "понимаю только текст" in (await telegram.wait_sent(USER, 5))[-1]["text"]

    typo = telegram.send_text(USER, "где оплптить")
    await telegram.wait_sent(USER, 6)
    telegram.edit_text(USER, typo["message"]["message_id"], "где оплатить")
    await telegram.wait_sent(USER, 7)
    telegram.send_text(USER, "/start")  # the chat keeps working after an edit
    assert (await telegram.wait_sent(USER, 8))[-1]["text"].startswith("Привет")


async def test_webhook_redelivery_is_stored_once_and_answered_once(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    app = await start_bot(start_app, telegram, "webhook")
    update = telegram.send_text(USER, "/start")
    await telegram.wait_sent(USER, 1)
    telegram.redeliver(update["update_id"])
    await asyncio.sleep(0.5)
    deliveries = [a for a in telegram.webhook_attempts if a["update_id"] == update["update_id"]]
    assert len(deliveries) == 2 and all(a["status"] == 200 for a in deliveries)
    assert len(telegram.sent(USER)) == 1
    assert await count(app, Message) == 2  # one inbound, one reply


async def test_webhook_refuses_wrong_secret_and_malformed_bodies(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    app = await start_bot(start_app, telegram, "webhook")
    url = f"{app.url}/webhook/telegram"
    good = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    body = {
        "update_id": 990001,
        "message": {
            "message_id": 1,
            "date": 1700000000,
            "chat": {"id": 4242, "type": "private"},
            "from": {"id": 4242, "is_bot": False, "first_name": "X"},
            "text": "/start",
        },
    }
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status in (401, 403)
        async with http.post(url, data=b"{not json", headers=good) as resp:
            assert resp.status == 400
        async with http.post(url, json={"hello": "world"}, headers=good) as resp:
            assert resp.status == 400
    assert await count(app, Message) == 0  # nothing refused was stored

    telegram.send_text(USER, "/start")  # and the server keeps serving
    assert (await telegram.wait_sent(USER, 1))[0]["text"].startswith("Привет")


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_429_retry_after_delays_but_loses_and_duplicates_nothing(
    start_app: Callable[..., Any], telegram: TelegramEmulator, mode: str
) -> None:
    app = await start_bot(start_app, telegram, mode)
    telegram.fail("sendMessage", error_code=429, retry_after=2, seconds=2.5)
    texts = ["/start", "спасибо", "где оплатить?", "пока"]
    for text in texts:
        telegram.send_text(USER, text)
    sent = await telegram.wait_sent(USER, len(texts), timeout=20)
    await asyncio.sleep(1.0)  # nothing more may trickle in
    sent = telegram.sent(USER)
    assert len(sent) == len(texts)
    assert len({s["message_id"] for s in sent}) == len(texts)
    refused = [c for c in telegram.calls if c["method"] == "sendMessage" and c.get("status") == 429]
    assert refused, "the emulator must have refused at least one send"
    # replies arrive in the order the subscriber wrote: welcome first, then three "unknown" answers
    assert sent[0]["text"].startswith("Привет")
    async with app.db.session() as s:
        rows = (await s.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars().all()
    assert [r.status for r in rows] == ["sent"] * len(texts)
    ids = [int(r.platform_message_ids[0]) for r in rows]
    assert ids == sorted(ids) == [s["message_id"] for s in sent]


async def test_blocked_subscriber_is_marked_unreachable_and_not_retried(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    app = await start_bot(start_app, telegram, "polling")
    telegram.block(USER)
    telegram.send_text(USER, "/start")
    await asyncio.sleep(2.5)
    attempts = [c for c in telegram.calls if c["method"] == "sendMessage"]
    assert len(attempts) == 1 and attempts[0].get("status") == 403
    async with app.db.session() as s:
        account = await s.scalar(select(ChannelAccount))
        item = await s.scalar(select(OutboxItem))
    assert account is not None and account.unreachable_at is not None
    assert item is not None and item.status == "unreachable"


async def test_a_shared_contact_is_stored_and_a_contact_button_is_delivered_as_reply_keyboard(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    """The whole app: a shared contact is stored as the subscriber's message (an attachment of
    kind "contact", the number not copied into the row) and answered; a reply with a contact
    button goes through the outbox (stored as JSON and back) and arrives as Telegram's one-time
    reply keyboard."""
    from dialogs import outgoing
    from dialogs.messages import Button, Outbound
    from storage.models import Conversation

    app = await start_bot(start_app, telegram, "polling")
    telegram.send_contact(USER, "+79110000001")
    await telegram.wait_sent(USER, 1)
    async with app.db.session() as s:
        stored = (await s.scalars(select(Message).order_by(Message.id))).first()
        account = await s.scalar(select(ChannelAccount))
        conversation = await s.scalar(select(Conversation))
    assert stored is not None and stored.direction == "in"
    assert (stored.text, stored.attachments) == (None, [{"kind": "contact"}])
    assert "79110000001" not in repr((stored.text, stored.payload, stored.attachments, stored.nlu))
    assert account is not None and conversation is not None

    ask = Outbound(
        "Поделитесь номером, чтобы я нашёл ваш договор.",
        buttons=(
            (Button("📱 Поделиться номером", request="contact"),),
            (Button("Ввести вручную", payload="manual"),),
        ),
    )
    async with app.db.transaction() as session:
        await outgoing.reply(session, conversation.id, account, [ask])
    sent = (await telegram.wait_sent(USER, 2))[-1]
    assert sent["text"] == ask.text
    assert sent["reply_markup"] == {
        "keyboard": [
            [{"text": "📱 Поделиться номером", "request_contact": True}],
            [{"text": "Ввести вручную"}],
        ],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    assert telegram.reply_keyboard(USER) == sent["reply_markup"]
