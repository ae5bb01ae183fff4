"""Operators answer handed-off chats from forum topics of a Telegram supergroup.

The real aiogram bot polls the Telegram emulator, which also hosts the operators' forum group; a
second subscriber writes through the VK emulator. The group is wired the way the composition root
does it: the dispatcher routes the group's messages to `TelegramGroup.handle`, and the group
listens to the app's live events.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, update

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from handoff.auth import add_operator
from handoff.config import HandoffSettings
from handoff.telegram_group import group as group_module
from storage.models import ChannelAccount, Conversation, ConversationState, DemoSms
from supportbot.app import App
from tests.e2e.conftest import telegram_settings, vk_settings

T = TypeVar("T")
TG_USER = 1001
VK_USER = 2001
OPERATOR = 5001  # Оля's Telegram id, linked to her operator account
STRANGER = 5002  # a group member with no operator account


async def eventually(check: Callable[[], T], what: str, timeout: float = 10.0) -> T:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def texts(sent: list[dict[str, Any]]) -> list[str]:
    return [s["text"] or s["caption"] or "" for s in sent]


def topic_posts(emu: TelegramEmulator, group_id: int, thread: int) -> list[str]:
    return texts([s for s in emu.sent(group_id) if s["message_thread_id"] == thread])


def topic(emu: TelegramEmulator, group_id: int, marker: str) -> dict[str, Any]:
    """The group's topic whose name has `marker`, or {} while there is none."""
    return next((t for t in emu.topics(group_id) if marker in t["name"]), {})


def has(found: list[str], fragment: str) -> bool:
    return any(fragment in text for text in found)


async def start(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator, group_id: int
) -> App:
    app: App = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        vk=vk_settings(vk, "longpoll"),
        handoff=HandoffSettings(hours={}, telegram_group_id=group_id),
    )
    await vk.wait_listening()
    async with app.db.session() as session, session.begin():
        await add_operator(
            session,
            login="olya",
            name="Оля",
            password="operator-password",
            groups=["consult"],
            telegram_user_id=str(OPERATOR),
        )
    return app


async def test_operators_answer_telegram_and_vk_chats_from_forum_topics(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    gid = telegram.create_group("Операторы", forum=True)["id"]
    app = await start(start_app, telegram, vk, gid)
    assert app.telegram_group is not None  # App wires the group from settings
    # A Telegram subscriber talks to the bot, then asks for a human.
    telegram.send_text(TG_USER, "где оплатить?")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "Оплатить"), "bot answer")
    telegram.send_text(TG_USER, "позовите оператора")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "Передаю чат"), "handoff")
    tg_topic = await eventually(lambda: topic(telegram, gid, "(Telegram)"), "Telegram topic")
    tg_thread = tg_topic["message_thread_id"]
    assert tg_topic["name"].endswith("Иван (Telegram) · consult")
    summary = "\n".join(await eventually(lambda: topic_posts(telegram, gid, tg_thread), "summary"))
    assert "Причина: asked for a human" in summary
    for line in ("где оплатить?", "Оплатить связь", "позовите оператора", "Передаю чат"):
        assert line in summary, f"{line!r} missing from the topic summary:\n{summary}"

    # A VK subscriber asks for a human too: a topic of their own.
    vk.send_text(VK_USER, "позовите оператора")
    await eventually(lambda: has(texts(vk.sent(VK_USER)), "Передаю чат"), "VK handoff")
    vk_topic = await eventually(lambda: topic(telegram, gid, "(VK)"), "VK topic")
    vk_thread = vk_topic["message_thread_id"]
    assert vk_thread != tg_thread
    vk_summary = await eventually(lambda: topic_posts(telegram, gid, vk_thread), "VK summary")
    assert has(vk_summary, "позовите оператора")

    # Оля answers in the Telegram topic: that takes the chat, the subscriber gets both.
    telegram.send_text(
        OPERATOR,
        "Здравствуйте! Я Оля, сейчас проверю ваш платёж.",
        first_name="Оля",
        chat_id=gid,
        message_thread_id=tg_thread,
    )
    await eventually(
        lambda: has(texts(telegram.sent(TG_USER)), "проверю ваш платёж"),
        "the operator's reply in Telegram",
    )
    assert has(texts(telegram.sent(TG_USER)), "К чату подключился специалист Оля")
    await eventually(
        lambda: has(topic_posts(telegram, gid, tg_thread), "✅ Чат у оператора Оля"),
        "the take shown in the topic",
    )

    # The subscriber's follow-up shows up in the topic; the bot stays out of it.
    replies_before = len(telegram.sent(TG_USER))
    telegram.send_text(TG_USER, "спасибо, жду")
    await eventually(
        lambda: "👤 спасибо, жду" in topic_posts(telegram, gid, tg_thread),
        "the follow-up in the topic",
    )
    assert len(telegram.sent(TG_USER)) == replies_before

    # Оля answers the VK chat too; it reaches the subscriber in VK.
    telegram.send_text(
        OPERATOR,
        "Добрый день! Уже смотрю.",
        first_name="Оля",
        chat_id=gid,
        message_thread_id=vk_thread,
    )
    await eventually(
        lambda: has(texts(vk.sent(VK_USER)), "Уже смотрю"), "the operator's reply in VK"
    )

    # A group member with no operator account is told so; the subscriber gets nothing.
    telegram.send_text(
        STRANGER, "я тоже отвечу", first_name="Петя", chat_id=gid, message_thread_id=vk_thread
    )
    await eventually(
        lambda: has(topic_posts(telegram, gid, vk_thread), "не привязан к оператору"),
        "the unlinked member told",
    )
    await asyncio.sleep(0.5)
    assert not has(texts(vk.sent(VK_USER)), "я тоже отвечу")
    async with app.db.session() as session:
        accounts = await session.scalar(select(func.count()).select_from(ChannelAccount))
    assert accounts == 2, "group members must not become subscribers"

    # A command the desk refuses is answered with the reason, and changes nothing.
    telegram.send_text(
        OPERATOR, "/close maybe", first_name="Оля", chat_id=gid, message_thread_id=tg_thread
    )
    await eventually(
        lambda: has(topic_posts(telegram, gid, tg_thread), "⚠️ /close: resolution must be"),
        "the refusal in the topic",
    )
    assert not topic(telegram, gid, "(Telegram)").get("closed")

    # /close: the subscriber is asked for a rating and the topic closes.
    telegram.send_text(
        OPERATOR, "/close", first_name="Оля", chat_id=gid, message_thread_id=tg_thread
    )
    ask = await eventually(
        lambda: [s for s in telegram.sent(TG_USER) if "Оцени" in (s["text"] or "")],
        "the CSAT question",
    )
    buttons = [b["text"] for row in ask[0]["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons[:5] == ["1", "2", "3", "4", "5"]
    await eventually(lambda: topic(telegram, gid, "(Telegram)")["closed"], "topic closed")
    assert has(topic_posts(telegram, gid, tg_thread), "🔒 Чат закрыт (Оля): solved")

    # /bot in the VK topic: the subscriber is back with the bot, which answers again.
    telegram.send_text(OPERATOR, "/bot", first_name="Оля", chat_id=gid, message_thread_id=vk_thread)
    await eventually(lambda: has(texts(vk.sent(VK_USER)), "вернул меня"), "back to the bot in VK")
    await eventually(lambda: topic(telegram, gid, "(VK)")["closed"], "VK topic closed")
    vk.send_text(VK_USER, "где оплатить?")
    await eventually(lambda: has(texts(vk.sent(VK_USER)), "Оплатить"), "the bot answers")

    # Asking for a human again reopens the same topic with a fresh summary.
    vk.send_text(VK_USER, "позовите оператора")
    await eventually(lambda: not topic(telegram, gid, "(VK)")["closed"], "VK topic reopened")
    fresh = await eventually(
        lambda: [p for p in topic_posts(telegram, gid, vk_thread) if p.startswith("🆕")][1:],
        "a fresh summary",
    )
    assert "где оплатить?" in fresh[0] and "Оплатить связь" in fresh[0]
    assert len(telegram.topics(gid)) == 2


async def test_a_failed_topic_never_blocks_the_handoff_and_429_is_waited_out(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    gid = telegram.create_group("Операторы", forum=True)["id"]
    app = await start(start_app, telegram, vk, gid)
    assert app.telegram_group is not None  # App wires the group from settings
    telegram.fail(
        "createForumTopic",
        error_code=400,
        description="Bad Request: not enough rights to create a topic",
    )
    telegram.send_text(TG_USER, "какой у меня баланс")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "номер телефона"), "prompt")
    telegram.send_text(TG_USER, "8 911 000-00-01")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "летит SMS"), "the code is sent")
    telegram.send_text(TG_USER, await sms_code(app, "+79110000001"))  # verified by the code
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "На счёте"), "balance")
    telegram.send_text(TG_USER, "позовите оператора")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "в очереди"), "queue position")
    await asyncio.sleep(0.5)
    assert telegram.topics(gid) == []  # no topic, yet the subscriber was handed off

    # The rights are fixed; the group is busy for a second (429) when the next event comes.
    telegram.clear_faults()
    telegram.fail("sendMessage", error_code=429, retry_after=1, times=1, chat_id=gid)
    telegram.send_text(TG_USER, "алло, есть кто?")
    found = await eventually(lambda: topic(telegram, gid, "(Telegram)"), "topic on retry")
    posts = await eventually(
        lambda: topic_posts(telegram, gid, found["message_thread_id"]), "summary"
    )
    [summary] = posts
    for line in ("алло, есть кто?", "позовите оператора", "На счёте 350,50", "balance ("):
        assert line in summary, f"{line!r} missing from the topic summary:\n{summary}"
    # The form's data is there; the phone only masked (the group lives in Telegram's cloud).
    assert "Телефон: +7 ••• •••-00-01" in summary and "customer:" in summary
    assert "911 000" not in summary and "9110000001" not in summary
    refused = [c for c in telegram.calls if c["method"] == "sendMessage" and c["status"] == 429]
    assert refused, "the group post must have met a 429 first"
    await asyncio.sleep(0.5)
    thread = found["message_thread_id"]
    assert len(topic_posts(telegram, gid, thread)) == 1  # posted once, not twice

    # Оля takes it from the topic, then transfers it to the tech line from the web console:
    # the topic stays the chat's and says where it went.
    telegram.send_text(
        OPERATOR, "Сейчас разберёмся", first_name="Оля", chat_id=gid, message_thread_id=thread
    )
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "Сейчас разберёмся"), "reply")
    async with app.db.session() as session:
        conv_id, op_id = (
            await session.execute(select(Conversation.id, Conversation.operator_id))
        ).one()
    assert app.desk is not None and op_id is not None
    await app.desk.transfer(op_id, conv_id, group="tech", note="роутер")
    await eventually(
        lambda: has(topic_posts(telegram, gid, thread), "🔀 Чат снова в очереди «tech»"),
        "the transfer in the topic",
    )
    assert len(telegram.topics(gid)) == 1


async def test_the_summary_shows_the_subscribers_open_ticket(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    gid = telegram.create_group("Операторы", forum=True)["id"]
    app = await start(start_app, telegram, vk, gid)
    assert app.telegram_group is not None  # App wires the group from settings
    telegram.send_text(TG_USER, "хочу пожаловаться")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "Опиши"), "the question")
    telegram.send_text(TG_USER, "мастер не пришёл в назначенное время")
    registered = await eventually(
        lambda: [s for s in telegram.sent(TG_USER) if "Жалобу зарегистрировал" in s["text"]],
        "the complaint registered",
    )
    number = registered[0]["text"].split("№", 1)[1].split()[0]
    data = registered[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    telegram.press_button(TG_USER, registered[0]["message_id"], data)
    found = await eventually(lambda: topic(telegram, gid, "· complaints"), "the topic")
    [summary] = await eventually(
        lambda: topic_posts(telegram, gid, found["message_thread_id"]), "summary"
    )
    assert f"№{number} · complaint" in summary
    assert "мастер не пришёл в назначенное время" in summary


async def sms_code(app: Any, phone: str) -> str:
    """The code in the latest SMS the demo backend sent to `phone`."""
    async with app.db.session() as s:
        text = await s.scalar(
            select(DemoSms.text).where(DemoSms.phone == phone).order_by(DemoSms.id.desc()).limit(1)
        )
    found = re.search(r"\b\d{6}\b", text or "")
    assert found is not None, f"no SMS code was sent to {phone}"
    return found.group()


async def test_a_chat_queued_unseen_gets_its_topic_from_the_sweep(
    start_app: Callable[..., Any],
    telegram: TelegramEmulator,
    vk: VKEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chat queued where this process never heard of it (another process without Redis, a
    takeover gap, Redis away) still gets its topic, from the periodic look for topicless chats."""
    monkeypatch.setattr(group_module, "SWEEP_EVERY", 0.3)
    gid = telegram.create_group("Операторы", forum=True)["id"]
    app = await start(start_app, telegram, vk, gid)
    telegram.send_text(TG_USER, "где оплатить?")
    await eventually(lambda: has(texts(telegram.sent(TG_USER)), "Оплатить"), "bot answer")
    async with app.db.session() as session, session.begin():  # queued with no event published
        await session.execute(
            update(Conversation).values(
                state=ConversationState.QUEUED,
                skill_group="consult",
                queued_at=datetime.now(UTC).replace(tzinfo=None),
                handoff_reason="asked for a human",
            )
        )
    found = await eventually(lambda: topic(telegram, gid, "(Telegram)"), "topic from the sweep")
    summary = await eventually(
        lambda: topic_posts(telegram, gid, found["message_thread_id"]), "summary"
    )
    assert has(summary, "где оплатить?")
    await asyncio.sleep(1)  # several more sweeps: the chat has its topic, nothing is repeated
    assert len(telegram.topics(gid)) == 1
    assert len(topic_posts(telegram, gid, found["message_thread_id"])) == 1
