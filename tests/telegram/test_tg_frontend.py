"""The aiogram frontend turns real updates into Inbound, over polling and over the webhook."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from aiohttp import web

from bots.telegram import build_dispatcher, run_polling, set_webhook, webhook_handler
from dialogs.messages import Attachment, Channel, Inbound
from emulators.telegram import TelegramEmulator

USER = 7001
SECRET = "hook-secret_1"


async def until(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def polling(bot: Bot, recorder: Any) -> AsyncIterator[Dispatcher]:
    dispatcher = build_dispatcher(recorder)
    task = asyncio.create_task(run_polling(dispatcher, bot, polling_timeout=1))
    yield dispatcher
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_each_kind_of_update_becomes_one_inbound(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    start = emulator.send_text(USER, "/start", first_name="Пётр", username="petr")
    emulator.send_text(USER, "где оплатить?")
    photo = emulator.send_photo(USER, caption="не работает роутер")
    emulator.send_sticker(USER, "🙏")
    emulator.send_other(USER, "voice")
    first = emulator.send_text(USER, "балнс")["message"]["message_id"]
    emulator.edit_text(USER, first, "баланс")
    emulator.send_other(USER, "location")
    await until(lambda: len(recorder.inbounds) == 8, "8 inbounds")

    got: list[Inbound] = recorder.inbounds
    assert got[0] == Inbound(
        channel=Channel.TELEGRAM,
        chat_id=str(USER),
        user_id=str(USER),
        update_id=str(start["update_id"]),
        text="/start",
        platform_message_id=str(start["message"]["message_id"]),
        first_name="Пётр",
        username="petr",
    )
    assert got[1].text == "где оплатить?" and got[1].attachments == ()
    largest = photo["message"]["photo"][-1]["file_id"]
    assert got[2].text == "не работает роутер"
    assert got[2].attachments == (Attachment(kind="photo", ref=largest),)
    assert got[3].attachments[0].kind == "sticker" and got[3].attachments[0].emoji == "🙏"
    assert got[3].text is None
    assert got[4].attachments[0].kind == "voice" and got[4].attachments[0].ref
    assert (got[6].text, got[6].edited, got[6].platform_message_id) == ("баланс", True, str(first))
    assert got[5].edited is False
    assert got[7].attachments[0].kind == "location"
    # update ids are the platform's, one per update, in order
    ids = [int(i.update_id) for i in got]
    assert ids == sorted(ids) and len(set(ids)) == 8


async def test_button_press_becomes_payload_and_is_answered(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    emulator.send_text(USER, "тариф")
    await until(lambda: len(recorder.inbounds) == 1, "the text")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Да", callback_data="affirm")]]
    )
    msg = await bot.send_message(USER, "Сменить тариф?", reply_markup=markup)
    press = emulator.press_button(USER, msg.message_id, "affirm")
    await until(lambda: len(emulator.callback_answers) == 1, "the callback answer")
    inbound = recorder.inbounds[1]
    assert (inbound.payload, inbound.text, inbound.update_id) == (
        "affirm",
        None,
        str(press["update_id"]),
    )
    assert inbound.platform_message_id == str(msg.message_id)
    answer = emulator.callback_answers[0]
    assert answer["callback_query_id"] == press["callback_query"]["id"] and answer["text"] is None


async def test_group_messages_are_not_subscriber_messages(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    group = emulator.create_group("Операторы")
    emulator.send_text(42, "это пишет оператор", chat_id=group["id"])
    emulator.send_text(USER, "а это абонент")
    await until(lambda: len(recorder.inbounds) == 1, "the subscriber's text")
    await asyncio.sleep(0.1)
    assert [i.text for i in recorder.inbounds] == ["а это абонент"]


async def test_updates_are_routed_on_the_loop_without_a_thread_per_update(
    bot: Bot, recorder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiogram runs a plain or magic filter through `asyncio.to_thread` for every update it
    checks (~120 us of CPU each, measured); our filters are async, so routing a subscriber's
    message, an operator's message or a button press starts no thread."""
    operators: list[str | None] = []

    async def on_group(message: Message, _update_id: int) -> None:
        operators.append(message.text)

    group = -100500
    dispatcher = build_dispatcher(recorder, group_handler=on_group, group_id=group)
    threads: list[object] = []

    async def no_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        threads.append(func)
        return func(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", no_thread)

    def update(n: int, **event: Any) -> Update:
        return Update.model_validate({"update_id": n, **event}, context={"bot": bot})

    def message(n: int, chat: dict[str, Any], text: str) -> dict[str, Any]:
        user = {"id": USER, "is_bot": False, "first_name": "Пётр"}
        return {"message_id": n, "date": 1700000000, "chat": chat, "from": user, "text": text}

    private = {"id": USER, "type": "private"}
    forum = {"id": group, "type": "supergroup", "title": "Операторы"}
    other = {"id": -7, "type": "group", "title": "Чужая группа"}
    press = {"id": "q1", "from": {"id": USER, "is_bot": False, "first_name": "Пётр"},
             "chat_instance": "1", "data": "affirm"}  # fmt: skip
    await dispatcher.feed_update(bot, update(1, message=message(1, private, "где оплатить?")))
    await dispatcher.feed_update(bot, update(2, message=message(2, forum, "от оператора")))
    await dispatcher.feed_update(bot, update(3, message=message(3, other, "не нам")))
    pressed_there = {**press, "id": "q2", "message": message(4, other, "кнопка")}
    await dispatcher.feed_update(bot, update(4, callback_query=pressed_there))
    with contextlib.suppress(Exception):  # answering the press needs a server; not this test's
        await dispatcher.feed_update(bot, update(5, callback_query=press))
    assert [(i.text, i.payload) for i in recorder.inbounds] == [
        ("где оплатить?", None),
        (None, "affirm"),
    ]
    assert operators == ["от оператора"]
    assert threads == []


# ------------------------------------------------------------------ webhook


@pytest.fixture
async def app_url(bot: Bot, recorder: Any) -> AsyncIterator[str]:
    """Our side: an aiohttp app with POST /webhook/telegram on a random port."""
    app = web.Application()
    handler = webhook_handler(build_dispatcher(recorder), bot, SECRET)
    app.router.add_post("/webhook/telegram", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/webhook/telegram"
    await runner.cleanup()


PostFn = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def post(app_url: str) -> AsyncIterator[PostFn]:
    async with aiohttp.ClientSession() as http:

        async def send(body: Any, secret: str | None = SECRET, raw: bytes | None = None) -> Any:
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
            data = raw if raw is not None else None
            kwargs: dict[str, Any] = {"data": data} if raw is not None else {"json": body}
            async with http.post(app_url, headers=headers, **kwargs) as resp:
                return resp.status, await resp.json()

        yield send


def text_update(update_id: int, text: str = "привет") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1700000000,
            "chat": {"id": USER, "type": "private", "first_name": "Иван"},
            "from": {"id": USER, "is_bot": False, "first_name": "Иван"},
            "text": text,
        },
    }


async def test_webhook_secret_checked(post: PostFn, recorder: Any) -> None:
    status, body = await post(text_update(1), secret=None)
    assert status == 401 and body["ok"] is False
    status, _ = await post(text_update(2), secret="wrong")
    assert status == 401
    assert recorder.inbounds == []
    status, body = await post(text_update(3))
    assert (status, body) == (200, {"ok": True})
    assert [i.update_id for i in recorder.inbounds] == ["3"]


async def test_webhook_rejects_garbage(post: PostFn, recorder: Any) -> None:
    status, _ = await post(None, raw=b"{not json")
    assert status == 400
    status, _ = await post(["a", "list"])
    assert status == 400
    status, _ = await post({"message": {"text": "no update_id"}})
    assert status == 400
    status, _ = await post({"update_id": "x", "message": "nope"})
    assert status == 400
    assert recorder.inbounds == []


async def test_webhook_500_when_handling_fails(post: PostFn, recorder: Any) -> None:
    recorder.fail = RuntimeError("database is down")
    status, _ = await post(text_update(10))
    assert status == 500
    recorder.fail = None
    status, _ = await post(text_update(10))  # Telegram's retry
    assert status == 200
    assert [i.update_id for i in recorder.inbounds] == ["10"]


async def test_emulator_webhook_to_our_handler_end_to_end(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, app_url: str
) -> None:
    recorder.fail = RuntimeError("first attempt fails")
    await set_webhook(bot, app_url, SECRET, dispatcher=build_dispatcher(recorder))
    update = emulator.send_text(USER, "интернет не работает")
    await until(lambda: len(emulator.webhook_attempts) >= 1, "a first attempt")
    recorder.fail = None
    emulator.send_sticker(USER)
    await until(lambda: len(recorder.inbounds) == 2, "both updates")
    assert [i.text for i in recorder.inbounds] == ["интернет не работает", None]
    assert recorder.inbounds[0].update_id == str(update["update_id"])
    statuses = [a["status"] for a in emulator.webhook_attempts]
    assert statuses[0] == 500 and statuses[-2:] == [200, 200]
    info = await bot.get_webhook_info()
    assert info.allowed_updates is not None and "callback_query" in info.allowed_updates
