"""«Поделиться номером» in Telegram, end to end over real HTTP: the reply keyboard with a
request_contact button as the sender renders it and as the emulator validates and shows it, and
a shared contact (own, another person's, a phone-book one) as the frontend hands it to the
pipeline. The real aiogram client talks to the emulator throughout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import KeyboardButton, ReplyKeyboardMarkup

from bots.telegram import TelegramSender, build_dispatcher, run_polling
from delivery.errors import PermanentError
from dialogs.messages import Attachment, Button, Outbound, SharedContact
from emulators.telegram import TelegramEmulator

USER = 7301
OTHER = 7302  # another Telegram user, whose contact USER forwards
SHARE = Button("📱 Поделиться номером", request="contact")


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


# ------------------------------------------------------------------ receiving a contact


async def test_own_forwarded_and_phone_book_contacts_reach_the_pipeline(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    own = emulator.send_contact(USER, "+7 911 000-00-01")
    emulator.send_contact(USER, "8 (911) 000-00-02", own=False, contact_user_id=OTHER)
    emulator.send_contact(USER, "+79110000003", own=False, first_name="Мама")
    emulator.send_text(USER, "спасибо")
    await until(lambda: len(recorder.inbounds) == 4, "4 inbounds")

    mine, forwarded, typed, text = recorder.inbounds
    # Telegram sends an own number as digits only ("79110000001"): normalised to +7...
    assert own["message"]["contact"] == {
        "phone_number": "79110000001",
        "first_name": "Иван",
        "user_id": USER,
    }
    assert mine.contact == SharedContact(phone="+79110000001", own=True, user_id=str(USER))
    assert mine.attachments == (Attachment(kind="contact"),)
    assert mine.text is None and mine.payload is None
    assert (mine.user_id, mine.update_id) == (str(USER), str(own["update_id"]))
    # somebody else's contact is never the subscriber's own number
    assert forwarded.contact == SharedContact(phone="+79110000002", own=False, user_id=str(OTHER))
    assert typed.contact == SharedContact(phone="+79110000003", own=False, user_id=None)
    assert forwarded.attachments == typed.attachments == (Attachment(kind="contact"),)
    # an ordinary text carries no contact
    assert text.contact is None and text.text == "спасибо"


async def test_a_foreign_number_and_an_own_contact_in_any_spelling(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    """A foreign number stays as Telegram gave it; a contact id equal to the sender's is own
    whatever the number looks like (Telegram sets that id itself)."""
    emulator.send_contact(USER, "+44 20 7946 0958", own=False)
    emulator.send_contact(USER, "+7-911-000-00-04")
    await until(lambda: len(recorder.inbounds) == 2, "2 inbounds")
    foreign, mine = recorder.inbounds
    assert foreign.contact == SharedContact(phone="+44 20 7946 0958", own=False)
    assert mine.contact == SharedContact(phone="+79110000004", own=True, user_id=str(USER))


# ------------------------------------------------------------------ sending the button


async def test_contact_button_goes_as_a_one_time_reply_keyboard(
    emulator: TelegramEmulator, bot: Bot
) -> None:
    emulator.send_text(USER, "баланс")
    sender = TelegramSender(bot)
    message = Outbound(
        "Чтобы узнать баланс, поделитесь номером или введите его.",
        buttons=(
            (SHARE,),
            (Button("Ввести вручную", payload="step:verify:manual"),),
            (Button("Личный кабинет", url="https://lk.example-telecom.ru/"),),
        ),
    )
    [message_id] = await sender.send(str(USER), message, key=1)
    (sent,) = emulator.sent(USER)
    assert sent["message_id"] == int(message_id)
    # Telegram's wire format: a ReplyKeyboardMarkup; payload buttons by title, links left out
    assert sent["reply_markup"] == {
        "keyboard": [
            [{"text": "📱 Поделиться номером", "request_contact": True}],
            [{"text": "Ввести вручную"}],
        ],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    # the subscriber sees it under the input field, not under the message
    assert emulator.reply_keyboard(USER) == sent["reply_markup"]
    history = emulator.history(USER)
    assert history[-1]["reply_markup"] == sent["reply_markup"]

    # the same buttons again: the cached keyboard is reused, and an inline one still works
    await sender.send(str(USER), message, key=2)
    await sender.send(str(USER), Outbound("Меню", buttons=((Button("Да", payload="y"),),)), key=3)
    inline = emulator.sent(USER)[-1]["reply_markup"]
    assert inline == {"inline_keyboard": [[{"text": "Да", "callback_data": "y"}]]}
    assert emulator.reply_keyboard(USER) is not None  # an inline keyboard leaves it in place


async def test_a_photo_with_the_contact_button_and_no_other_buttons(
    emulator: TelegramEmulator, bot: Bot, tmp_path: Any
) -> None:
    emulator.send_text(USER, "hi")
    image = tmp_path / "card.jpg"
    image.write_bytes(b"\xff\xd8 card \xff\xd9")
    sender = TelegramSender(bot)
    await sender.send(str(USER), Outbound("Ваша карта", ((SHARE,),), image=str(image)), key=4)
    (sent,) = emulator.sent(USER)
    assert sent["method"] == "sendPhoto"
    assert sent["reply_markup"]["keyboard"] == [[{"text": SHARE.title, "request_contact": True}]]


async def test_pressing_reply_buttons_and_the_one_time_keyboard(
    emulator: TelegramEmulator, bot: Bot, recorder: Any, polling: Dispatcher
) -> None:
    emulator.send_text(USER, "баланс", first_name="Анна")
    await until(lambda: len(recorder.inbounds) == 1, "the text")
    sender = TelegramSender(bot)
    buttons = ((SHARE,), (Button("Ввести вручную", payload="manual"),))
    await sender.send(str(USER), Outbound("Номер?", buttons), key=1)

    with pytest.raises(ValueError, match="no reply button 'Нет такой'"):
        emulator.press_reply_button(USER, "Нет такой")
    with pytest.raises(ValueError, match="use send_contact"):
        emulator.press_reply_button(USER, SHARE.title)
    # a text button: Telegram sends its title as the subscriber's text; the keyboard hides
    pressed = emulator.press_reply_button(USER, "Ввести вручную")
    assert pressed["message"]["text"] == "Ввести вручную"
    assert pressed["message"]["from"]["first_name"] == "Анна"
    assert emulator.reply_keyboard(USER) is None
    await until(lambda: len(recorder.inbounds) == 2, "the pressed title")
    assert recorder.inbounds[1].text == "Ввести вручную" and recorder.inbounds[1].payload is None

    # the contact button: the own contact is shared, and the one-time keyboard hides too
    await sender.send(str(USER), Outbound("Номер?", buttons), key=2)
    assert emulator.reply_keyboard(USER) is not None
    emulator.send_contact(USER, "+79110000001")
    assert emulator.reply_keyboard(USER) is None
    await until(lambda: len(recorder.inbounds) == 3, "the contact")
    assert recorder.inbounds[2].contact == SharedContact("+79110000001", True, str(USER))


# ------------------------------------------------------------------ the emulator's checks


async def _send_raw(emulator: TelegramEmulator, markup: Any) -> tuple[int, dict[str, Any]]:
    url = f"{emulator.base_url}/bot{emulator.token}/sendMessage"
    async with aiohttp.ClientSession() as http:
        body = {"chat_id": USER, "text": "x", "reply_markup": markup}
        async with http.post(url, json=body) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        ({"keyboard": "📱"}, 'field "keyboard" of the ReplyKeyboardMarkup must be an Array'),
        ({"keyboard": [{"text": "a"}]}, "must be an Array of Arrays"),
        ({"keyboard": [[42]]}, "can't parse keyboard button: KeyboardButton must be a String"),
        ({"keyboard": [[{"request_contact": True}]]}, 'Can\'t find field "text"'),
        ({"keyboard": [[{"text": 5}]]}, 'Field "text" must be of type String'),
        ({"keyboard": [[{"text": " "}]]}, "keyboard button text must be non-empty"),
        (
            {"keyboard": [[{"text": "a", "request_contact": "yes"}]]},
            'Field "request_contact" must be of type Boolean',
        ),
        (
            {"keyboard": [["a"]], "one_time_keyboard": "true"},
            'field "one_time_keyboard" of the ReplyKeyboardMarkup must be of the type Boolean',
        ),
        (
            {"keyboard": [["a"]], "input_field_placeholder": "x" * 65},
            "input field placeholder is too long",
        ),
        ({"remove_keyboard": 1}, 'field "remove_keyboard" of the ReplyKeyboardRemove'),
        ([["a"]], "object expected as reply markup"),
    ],
)
async def test_malformed_reply_keyboards_are_refused_like_telegram(
    emulator: TelegramEmulator, markup: Any, description: str
) -> None:
    emulator.send_text(USER, "hi")
    status, body = await _send_raw(emulator, markup)
    assert status == 400 and body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith("Bad Request: ")
    assert description in body["description"]
    assert emulator.sent(USER) == [] and emulator.reply_keyboard(USER) is None


async def test_reply_keyboard_options_string_buttons_and_removal(
    emulator: TelegramEmulator, bot: Bot
) -> None:
    emulator.send_text(USER, "hi")
    markup = {
        "keyboard": [["Да", {"text": "Нет"}], [{"text": "📱", "request_contact": True}]],
        "is_persistent": True,
        "resize_keyboard": False,
        "input_field_placeholder": "Ваш номер",
    }
    status, body = await _send_raw(emulator, markup)
    assert status == 200
    assert "reply_markup" not in body["result"]  # a Message carries inline keyboards only
    assert emulator.reply_keyboard(USER) == markup
    emulator.press_reply_button(USER, "Да")  # a bare string button; not one-time: stays
    assert emulator.reply_keyboard(USER) == markup
    # removing it (aiogram's ReplyKeyboardRemove) clears what the chat shows
    status, _ = await _send_raw(emulator, {"remove_keyboard": True})
    assert status == 200 and emulator.reply_keyboard(USER) is None
    # an empty keyboard is no keyboard, as in Telegram
    status, _ = await _send_raw(emulator, {"keyboard": [[]]})
    assert status == 200 and emulator.reply_keyboard(USER) is None
    # edits take inline keyboards only
    sent = await bot.send_message(USER, "текст")
    url = f"{emulator.base_url}/bot{emulator.token}/editMessageReplyMarkup"
    async with aiohttp.ClientSession() as http:
        edit = {"chat_id": USER, "message_id": sent.message_id, "reply_markup": markup}
        async with http.post(url, json=edit) as resp:
            assert resp.status == 400
            assert (await resp.json())["description"] == "Bad Request: inline keyboard expected"


async def test_send_contact_checks_and_control_api(emulator: TelegramEmulator, bot: Bot) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        emulator.send_contact(USER, "нет")
    with pytest.raises(ValueError, match="own user id"):
        emulator.send_contact(USER, "+79110000001", contact_user_id=OTHER)
    with pytest.raises(ValueError, match="sender's user id"):
        emulator.send_contact(USER, "+79110000001", own=False, contact_user_id=USER)
    base = f"{emulator.base_url}/_control"
    async with aiohttp.ClientSession() as http:
        args = {"user_id": USER, "phone_number": "+79110000005", "own": False}
        async with http.post(f"{base}/send_contact", json=args) as resp:
            contact = (await resp.json())["result"]["message"]["contact"]
            assert contact == {"phone_number": "+79110000005", "first_name": "Пётр"}
        async with http.post(f"{base}/send_contact", json={"user_id": USER}) as resp:
            assert resp.status == 400  # phone_number missing: a clear error
        status, _ = await _send_raw(emulator, {"keyboard": [["Ввести вручную"]]})
        assert status == 200
        async with http.get(f"{base}/keyboard", params={"chat_id": str(USER)}) as resp:
            assert (await resp.json())["result"] == {"keyboard": [["Ввести вручную"]]}
        press = {"user_id": USER, "text": "Ввести вручную"}
        async with http.post(f"{base}/press_reply_button", json=press) as resp:
            assert (await resp.json())["result"]["message"]["text"] == "Ввести вручную"
        async with http.get(f"{base}/keyboard") as resp:
            assert resp.status == 400
    updates = await bot.get_updates()
    kinds = [u.message.content_type for u in updates if u.message]
    assert kinds == ["contact", "text"]


async def test_a_blank_contact_button_fails_the_send_permanently(
    emulator: TelegramEmulator, bot: Bot
) -> None:
    """Telegram refuses a blank button title: the outbox keeps the row as failed, as it does
    for a bad inline button."""
    emulator.send_text(USER, "hi")
    blank = Outbound("Номер?", ((Button(" ", request="contact"),),))
    with pytest.raises(PermanentError, match="keyboard button text must be non-empty"):
        await TelegramSender(bot).send(str(USER), blank, key=9)
    with pytest.raises(TelegramBadRequest, match="keyboard button text must be non-empty"):
        await bot.send_message(
            USER, "x", reply_markup=ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="")]])
        )
