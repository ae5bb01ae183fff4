"""The emulator speaks the Bot API well enough for the real aiogram client (over real HTTP)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bots.telegram import bot_for
from emulators.telegram import TelegramEmulator

USER = 5001


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.upper(), callback_data=d) for d in datas]]
    )


async def test_get_me_and_wrong_token(emulator: TelegramEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "supportbot_test_bot")

    stranger = bot_for("999:WRONG", emulator.base_url)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()


async def test_raw_envelopes_for_unknown_method_and_token(emulator: TelegramEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}/bot{emulator.token}/noSuchMethod"
        async with http.post(url, json={}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.get(f"{emulator.base_url}/bot1:bad/getMe") as resp:
            assert resp.status == 401
            assert (await resp.json())["description"] == "Unauthorized"
        # JSON bodies and urlencoded forms work as well as aiogram's multipart
        emulator.send_text(USER, "hi")
        url = f"{emulator.base_url}/bot{emulator.token}/sendMessage"
        async with http.post(url, data={"chat_id": str(USER), "text": "form"}) as resp:
            assert (await resp.json())["result"]["text"] == "form"
        async with http.post(url, json={"chat_id": USER, "text": "json"}) as resp:
            body = await resp.json()
            assert body["ok"] is True
            assert body["result"]["chat"]["id"] == USER


async def test_send_message_parsed_by_aiogram(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "привет")
    msg = await bot.send_message(USER, "Здравствуйте!", reply_markup=keyboard("pay", "balance"))
    assert msg.text == "Здравствуйте!"
    assert msg.chat.id == USER and msg.from_user is not None and msg.from_user.is_bot
    assert msg.reply_markup is not None
    assert msg.reply_markup.inline_keyboard[0][1].callback_data == "balance"
    (sent,) = emulator.sent(USER)
    assert sent["message_id"] == msg.message_id
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "pay"
    assert [h["from"] for h in emulator.history(USER)] == ["subscriber", "bot"]


async def test_send_message_errors(emulator: TelegramEmulator, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "nobody wrote to us from here")
    emulator.send_text(USER, "hi")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "too long data", reply_markup=keyboard("d" * 65))
    await bot.send_message(USER, "x" * 4096, parse_mode="HTML", message_thread_id=None)
    assert len(emulator.sent(USER)) == 1


async def test_send_photo_upload_attach_url_and_file_id(
    emulator: TelegramEmulator, bot: Bot, tmp_path: Path
) -> None:
    emulator.send_text(USER, "hi")
    image = tmp_path / "tariffs.jpg"
    image.write_bytes(b"\xff\xd8 a real upload \xff\xd9")

    uploaded = await bot.send_photo(USER, FSInputFile(image), caption="Тарифы")
    assert uploaded.photo and uploaded.caption == "Тарифы"
    largest = uploaded.photo[-1]
    # the uploaded bytes can be fetched back through getFile + the file URL
    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None
    data = await bot.download_file(file.file_path)
    assert data is not None and data.read() == image.read_bytes()

    by_url = await bot.send_photo(USER, "https://example.com/map.png")
    by_id = await bot.send_photo(USER, largest.file_id)
    assert by_url.photo and by_id.photo
    assert [s["photo"] for s in emulator.sent(USER)] == [
        "tariffs.jpg",
        "https://example.com/map.png",
        largest.file_id,
    ]
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_photo(USER, BufferedInputFile(b"x", "a.jpg"), caption="c" * 1025)


async def test_send_photo_raw_multipart_upload_field(emulator: TelegramEmulator) -> None:
    emulator.send_text(USER, "hi")
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER))
    form.add_field("photo", b"bytes", filename="direct.jpg")
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}/bot{emulator.token}/sendPhoto"
        async with http.post(url, data=form) as resp:
            assert resp.status == 200
    assert emulator.sent(USER)[0]["photo"] == "direct.jpg"


async def test_sticker_chat_action_commands(emulator: TelegramEmulator, bot: Bot) -> None:
    update = emulator.send_sticker(USER, "😺")
    file_id = update["message"]["sticker"]["file_id"]
    msg = await bot.send_sticker(USER, file_id)
    assert msg.sticker is not None and msg.sticker.file_id == file_id
    assert emulator.sent(USER)[0]["sticker"] == file_id
    assert await bot.send_chat_action(USER, "typing") is True
    assert await bot.set_my_commands([BotCommand(command="start", description="Начать")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert await bot.delete_my_commands()
    assert emulator.commands == []


async def test_get_updates_offset_confirms(emulator: TelegramEmulator, bot: Bot) -> None:
    first = emulator.send_text(USER, "one")["update_id"]
    emulator.send_text(USER, "two")
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["one", "two"]
    # not confirmed yet: the same updates come again
    assert len(await bot.get_updates()) == 2
    # offset confirms everything before it
    again = await bot.get_updates(offset=first + 1)
    assert [u.update_id for u in again] == [first + 1]
    assert await bot.get_updates(offset=first + 2) == []
    emulator.send_text(USER, "three")
    assert len(await bot.get_updates(offset=first + 2, limit=5)) == 1


async def test_long_poll_wakes_on_new_update(emulator: TelegramEmulator, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.3)
        emulator.send_text(USER, "wake up")

    task = asyncio.create_task(later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=10)
    elapsed = time.monotonic() - started
    await task
    assert [u.message.text for u in updates if u.message] == ["wake up"]
    assert elapsed < 5  # woke on the update, not at the 10 s timeout


async def test_allowed_updates_filters(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "hello")
    msg = await bot.send_message(USER, "choose", reply_markup=keyboard("a"))
    emulator.press_button(USER, msg.message_id, "a")
    updates = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.callback_query.data for u in updates if u.callback_query] == ["a"]
    assert len(updates) == 1


async def test_webhook_conflict_and_delete(
    emulator: TelegramEmulator, bot: Bot, receiver: Any
) -> None:
    assert await bot.set_webhook(receiver.url)
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == []


async def test_webhook_delivery_secret_retry_in_order(
    emulator: TelegramEmulator, bot: Bot, receiver: Any
) -> None:
    receiver.statuses = [500, 502]  # the first update fails twice, then everything is accepted
    emulator.send_text(USER, "first")
    emulator.send_text(USER, "second")
    await bot.set_webhook(receiver.url, secret_token="s3cr3t-token")
    for _ in range(200):
        if not emulator.pending_updates and len(receiver.requests) >= 4:
            break
        await asyncio.sleep(0.02)
    texts = [body["message"]["text"] for _, body in receiver.requests]
    assert texts == ["first", "first", "first", "second"]
    assert all(h["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t-token" for h, _ in receiver.requests)
    assert [a["status"] for a in emulator.webhook_attempts] == [500, 502, 200, 200]
    # redelivery of an already accepted update, as after a webhook timeout
    first_id = receiver.requests[0][1]["update_id"]
    emulator.redeliver(first_id)
    for _ in range(200):
        if len(receiver.requests) == 5:
            break
        await asyncio.sleep(0.02)
    assert receiver.requests[4][1]["update_id"] == first_id


async def test_webhook_unreachable_retries(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "anyone?")
    await bot.set_webhook("http://127.0.0.1:9/nothing-listens-here")
    for _ in range(200):
        if len(emulator.webhook_attempts) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [a["status"] for a in emulator.webhook_attempts[:2]] == [0, 0]
    assert emulator.pending_updates  # not dropped
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1 and info.last_error_message


async def test_faults_429_403_500(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "hi")
    emulator.fail("sendMessage", error_code=429, retry_after=7, times=1)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(USER, "one")
    assert info.value.retry_after == 7
    await bot.send_message(USER, "two")  # the fault was for one call only

    emulator.block(USER)
    with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
        await bot.send_message(USER, "three")
    emulator.unblock(USER)

    emulator.fail("*", error_code=502, times=1)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_chat_action(USER, "typing")
    emulator.fail("sendMessage", error_code=500, chat_id=USER)
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER, "four")
    emulator.clear_faults()
    await bot.send_message(USER, "five")
    assert [s["text"] for s in emulator.sent(USER)] == ["two", "five"]
    statuses = [c["status"] for c in emulator.calls if c["method"] == "sendMessage"]
    assert statuses == [429, 200, 403, 500, 200]


async def test_fault_for_seconds_expires(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "hi")
    emulator.fail("sendMessage", error_code=500, seconds=0.2)
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER, "during")
    await asyncio.sleep(0.25)
    await bot.send_message(USER, "after")
    assert [s["text"] for s in emulator.sent(USER)] == ["after"]


async def test_enforced_limits_and_rate() -> None:
    emu = TelegramEmulator(enforce_limits=True)
    await emu.start()
    client = bot_for(emu.token, emu.base_url)
    try:
        emu.send_text(USER, "hi")
        for i in range(3):  # the burst
            await client.send_message(USER, f"m{i}")
        with pytest.raises(TelegramRetryAfter) as info:
            await client.send_message(USER, "too fast")
        assert info.value.retry_after >= 1
        assert emu.max_rate_per_second(USER) == 3
        assert emu.max_rate_per_second() == 3
    finally:
        await client.session.close()
        await emu.stop()


async def test_callbacks_and_edits(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "hi")
    msg = await bot.send_message(USER, "Оцените", reply_markup=keyboard("good", "bad"))
    update = emulator.press_button(USER, msg.message_id, "good")
    with pytest.raises(ValueError, match="no button"):
        emulator.press_button(USER, msg.message_id, "missing")
    query_id = update["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    assert emulator.callback_answers[0]["callback_query_id"] == query_id

    edited = await bot.edit_message_text("Спасибо!", chat_id=USER, message_id=msg.message_id)
    assert (
        not isinstance(edited, bool) and edited.text == "Спасибо!" and edited.reply_markup is None
    )
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text("Спасибо!", chat_id=USER, message_id=msg.message_id)
    await bot.edit_message_reply_markup(
        chat_id=USER, message_id=msg.message_id, reply_markup=keyboard("again")
    )
    emulator.press_button(USER, msg.message_id, "again")
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)


async def test_forum_topics(emulator: TelegramEmulator, bot: Bot) -> None:
    group = emulator.create_group("Операторы")
    topic = await bot.create_forum_topic(group["id"], "Иван, +7900***4567")
    msg = await bot.send_message(
        group["id"], "новый чат", message_thread_id=topic.message_thread_id
    )
    assert msg.message_thread_id == topic.message_thread_id and msg.is_topic_message
    assert await bot.edit_forum_topic(group["id"], topic.message_thread_id, name="Иван")
    assert await bot.close_forum_topic(group["id"], topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(group["id"], "x", message_thread_id=topic.message_thread_id)
    assert await bot.reopen_forum_topic(group["id"], topic.message_thread_id)
    assert emulator.topics(group["id"])[0]["name"] == "Иван"
    assert await bot.delete_forum_topic(group["id"], topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="thread not found"):
        await bot.send_message(group["id"], "x", message_thread_id=topic.message_thread_id)
    # an operator writes in the group
    update = emulator.send_text(42, "беру", chat_id=group["id"])
    assert update["message"]["chat"]["type"] == "supergroup"
    emulator.send_text(USER, "hi")
    with pytest.raises(TelegramBadRequest, match="not a forum"):
        await bot.create_forum_topic(USER, "x")


async def test_subscriber_actions_are_valid_updates(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.send_text(USER, "/start", username="ivan")
    emulator.send_photo(USER, caption="роутер")
    emulator.send_sticker(USER)
    for kind in ("voice", "video", "document", "location", "contact"):
        emulator.send_other(USER, kind)
    first = emulator.send_text(USER, "опечтака")["message"]["message_id"]
    emulator.edit_text(USER, first, "опечатка")
    updates = await bot.get_updates()
    kinds = [u.message.content_type if u.message else u.event_type for u in updates]
    assert kinds == [
        "text", "photo", "sticker", "voice", "video", "document", "location", "contact", "text",
        "edited_message",
    ]  # fmt: skip
    photo = updates[1].message
    assert photo is not None and photo.photo is not None
    file = await bot.get_file(photo.photo[-1].file_id)
    assert file.file_path
    start = updates[0].message
    assert start is not None and start.entities and start.entities[0].type == "bot_command"


async def test_wait_sent_and_control_api(emulator: TelegramEmulator, bot: Bot) -> None:
    base = f"{emulator.base_url}/_control"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/send_text", json={"user_id": USER, "text": "hi"}) as resp:
            update = (await resp.json())["result"]
            assert update["message"]["text"] == "hi"
        async with http.post(f"{base}/press_button", json={"user_id": USER}) as resp:
            assert resp.status == 400  # a clear error, not a traceback
        with pytest.raises(TimeoutError, match="expected 1 message"):
            await emulator.wait_sent(USER, 1, timeout=0.1)

        async def reply() -> None:
            await asyncio.sleep(0.1)
            await bot.send_message(USER, "ответ")

        task = asyncio.create_task(reply())
        (sent,) = await emulator.wait_sent(USER, 1, timeout=5)
        await task
        assert sent["text"] == "ответ"
        async with http.get(f"{base}/sent", params={"chat_id": str(USER)}) as resp:
            assert [s["text"] for s in (await resp.json())["result"]] == ["ответ"]
        async with http.get(f"{base}/history", params={"chat_id": str(USER)}) as resp:
            assert [h["text"] for h in (await resp.json())["result"]] == ["hi", "ответ"]
        async with http.post(f"{base}/block", json={"user_id": USER}):
            pass
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(USER, "x")
        async with http.post(f"{base}/fail", json={"method": "getMe", "error_code": 500}):
            pass
        with pytest.raises(TelegramServerError):
            await bot.get_me()
        async with http.post(f"{base}/reset", json={}):
            pass
        assert emulator.sent() == []
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await bot.send_message(USER, "x")
