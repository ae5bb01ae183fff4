"""TelegramSender delivers Outbound through the real aiogram Bot and maps failures for the worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiogram import Bot

from bots.telegram import TelegramSender
from bots.text import split_text
from delivery.errors import Blocked, PartialSend, PermanentError, RetryAfter, TransientError
from dialogs.messages import Button, Outbound
from emulators.telegram import TelegramEmulator

USER = 9001
CHAT = str(USER)
BUTTONS = ((Button("Да", payload="affirm"), Button("Нет", payload="deny")),
           (Button("Сайт", url="https://example.com/tariffs"),))  # fmt: skip


def long_text() -> str:
    paragraph = "Абонентская плата списывается ежедневно. " * 24  # ~1000 chars
    return "\n\n".join(paragraph.strip() for _ in range(10))  # ~10 000 chars


@pytest.fixture
def sender(emulator: TelegramEmulator, bot: Bot) -> TelegramSender:
    emulator.send_text(USER, "привет")  # the chat exists once the subscriber wrote
    return TelegramSender(bot)


def test_split_text_prefers_boundaries() -> None:
    text = long_text()
    parts = split_text(text)
    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(".") for p in parts)  # cut at paragraph ends, not mid-word
    assert " ".join(" ".join(p.split()) for p in parts) == " ".join(text.split())
    words = ("слово " * 1000).strip()  # no paragraphs: cut at spaces
    assert all(set(p.split()) == {"слово"} for p in split_text(words))
    assert [len(p) for p in split_text("x" * 5000)] == [4096, 904]  # unavoidable
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in split_text("😀" * 3000))


async def test_long_text_three_messages_buttons_on_last(
    emulator: TelegramEmulator, sender: TelegramSender
) -> None:
    ids = await sender.send(CHAT, Outbound(text=long_text(), buttons=BUTTONS), key=1)
    sent = emulator.sent(USER)
    assert ids == [str(s["message_id"]) for s in sent] and len(ids) == 3
    assert [s["reply_markup"] is None for s in sent] == [True, True, False]
    rows = sent[-1]["reply_markup"]["inline_keyboard"]
    assert [b.get("callback_data") for b in rows[0]] == ["affirm", "deny"]
    assert rows[1][0]["url"] == "https://example.com/tariffs"


async def test_photo_with_caption_and_sticker(
    emulator: TelegramEmulator, sender: TelegramSender, tmp_path: Path
) -> None:
    image = tmp_path / "terminal-map.jpg"
    image.write_bytes(b"\xff\xd8map\xff\xd9")
    await sender.send(
        CHAT, Outbound(text="Терминалы рядом", image=str(image), buttons=BUTTONS), key=2
    )
    (photo,) = emulator.sent(USER)
    assert (photo["method"], photo["caption"], photo["photo"]) == (
        "sendPhoto",
        "Терминалы рядом",
        "terminal-map.jpg",
    )
    assert photo["reply_markup"] is not None

    await sender.send(CHAT, Outbound(text="a" * 2000, image="https://example.com/x.png"), key=3)
    photo2, text2 = emulator.sent(USER)[1:]
    assert photo2["caption"] is None and photo2["photo"] == "https://example.com/x.png"
    assert text2["text"] == "a" * 2000

    sticker = emulator.send_sticker(USER)["message"]["sticker"]["file_id"]
    ids = await sender.send(CHAT, Outbound(sticker=sticker), key=4)
    last = emulator.sent(USER)[-1]
    assert (last["method"], last["sticker"], str(last["message_id"])) == (
        "sendSticker",
        sticker,
        ids[0],
    )


async def test_errors_are_mapped(emulator: TelegramEmulator, sender: TelegramSender) -> None:
    emulator.fail("sendMessage", error_code=429, retry_after=5, times=1)
    with pytest.raises(RetryAfter) as retry:
        await sender.send(CHAT, Outbound(text="hi"), key=5)
    assert retry.value.seconds == 5

    emulator.block(USER)
    with pytest.raises(Blocked):
        await sender.send(CHAT, Outbound(text="hi"), key=6)
    emulator.unblock(USER)

    with pytest.raises(PermanentError, match="chat not found"):
        await sender.send("123", Outbound(text="hi"), key=7)
    too_long_data = ((Button("x", payload="p" * 65),),)
    with pytest.raises(PermanentError, match="BUTTON_DATA_INVALID"):
        await sender.send(CHAT, Outbound(text="hi", buttons=too_long_data), key=8)
    with pytest.raises(PermanentError, match="image file not found"):
        await sender.send(CHAT, Outbound(image="/nonexistent/x.jpg"), key=9)

    emulator.fail("sendMessage", error_code=500, times=1)
    with pytest.raises(TransientError):
        await sender.send(CHAT, Outbound(text="hi"), key=10)
    assert emulator.sent(USER) == []


async def test_network_error_is_transient(bot: Bot) -> None:
    from bots.telegram import bot_for

    offline = bot_for("123456:TEST-TOKEN", "http://127.0.0.1:9")
    try:
        with pytest.raises(TransientError):
            await TelegramSender(offline).send(CHAT, Outbound(text="hi"), key=11)
    finally:
        await offline.session.close()


async def test_partial_send_resumes_without_duplicates(
    emulator: TelegramEmulator, sender: TelegramSender
) -> None:
    message = Outbound(text=long_text(), buttons=BUTTONS)
    # part 1 goes out, then Telegram says 429 for the second part
    emulator.fail("sendMessage", error_code=429, retry_after=2, times=1, after=1)
    with pytest.raises(PartialSend) as partial:
        await sender.send(CHAT, message, key=12)
    assert partial.value.done == 1 and isinstance(partial.value.cause, RetryAfter)
    assert partial.value.sent_ids == [str(emulator.sent(USER)[0]["message_id"])]

    rest = await sender.send(CHAT, message, key=12, skip_parts=partial.value.done)
    sent = emulator.sent(USER)
    assert len(sent) == 3 and len(rest) == 2  # no part twice
    assert partial.value.sent_ids + rest == [str(s["message_id"]) for s in sent]
    assert " ".join(" ".join(s["text"].split()) for s in sent) == " ".join(long_text().split())
    assert sent[-1]["reply_markup"] is not None and sent[0]["reply_markup"] is None
