"""One person in Telegram and VK: linking by a one-time code sent to the other channel, the
refusals (wrong, expired, too many tries, too many requests), one timeline for the operator,
a chat continued in the other channel, and unlinking. Real aiogram and vkbottle bots over HTTP
against both emulators, one app and database (the console fixture of this folder)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from storage.models import ChannelAccount, Conversation, DemoSms, LinkCode, Subscriber, utcnow
from tests.browser.conftest import Console, wait_text

TG_USER, VK_USER = 610_001, 610_002
PHONE = "89110000001"  # a demo billing subscriber (Анна)


async def _tg(console: Console, text: str, expect: str) -> dict[str, Any]:
    before = len(console.telegram.sent(TG_USER))
    console.telegram.send_text(TG_USER, text)
    return await wait_text(lambda: console.telegram.sent(TG_USER)[before:], expect)


async def _vk(console: Console, text: str, expect: str, user: int = VK_USER) -> dict[str, Any]:
    before = len(console.vk.sent(user))
    console.vk.send_text(user, text)
    return await wait_text(lambda: console.vk.sent(user)[before:], expect)


async def _sms_code(console: Console, phone: str) -> str:
    """The code in the latest SMS the demo backend sent to `phone` (verification)."""
    async with console.app.db.session() as s:
        text = await s.scalar(
            select(DemoSms.text).where(DemoSms.phone == phone).order_by(DemoSms.id.desc()).limit(1)
        )
    found = re.search(r"\b(\d{6})\b", text or "")
    assert found is not None, f"no SMS code to {phone}"
    return found.group(1)


async def _identified_in_both(console: Console) -> None:
    """Verified (SMS code) as the same customer in both channels."""
    await _tg(console, "какой у меня баланс?", "номер телефона")
    await _tg(console, PHONE, "летит SMS")
    await _tg(console, await _sms_code(console, "+79110000001"), "это ты")
    await _vk(console, "какой у меня баланс?", "номер телефона")
    await _vk(console, PHONE, "летит SMS")
    await _vk(console, await _sms_code(console, "+79110000001"), "это ты")


async def _code_sent_to_telegram(console: Console) -> str:
    before = len(console.telegram.sent(TG_USER))
    await _vk(console, "связать аккаунты", "Отправил код в Telegram")
    message = await wait_text(lambda: console.telegram.sent(TG_USER)[before:], "Код для связи")
    found = re.search(r"\b(\d{6})\b", message["text"])
    assert found is not None, message["text"]
    return found.group(1)


async def _subscribers(console: Console) -> dict[str, int]:
    async with console.app.db.session() as s:
        rows = await s.execute(select(ChannelAccount.channel, ChannelAccount.subscriber_id))
        return {channel: sub for channel, sub in rows}


async def test_link_by_code_then_one_timeline_and_continue_here(
    console: Console, clients: Any
) -> None:
    await _identified_in_both(console)
    separate = await _subscribers(console)
    assert separate["telegram"] != separate["vk"]

    code = await _code_sent_to_telegram(console)
    wrong = "000000" if code != "000000" else "111111"
    await _vk(console, wrong, "Код не подходит")
    assert (await _subscribers(console))["vk"] == separate["vk"], "a wrong code linked them"
    await _vk(console, code, "аккаунты связаны")
    linked = await _subscribers(console)
    assert linked["telegram"] == linked["vk"] == min(separate.values())
    async with console.app.db.session() as s:
        gone = await s.get(Subscriber, max(separate.values()))
        assert gone is not None and gone.merged_into == linked["vk"]
    await _vk(console, "связать", "уже связаны")

    # Telegram: the subscriber asks for a human; the operator sees both channels in one timeline.
    await _tg(console, "позовите оператора", "специалист")
    conv = await console.conversation("queued")
    await console.operator("olga", role="supervisor")
    client = clients()
    await client.log_in("olga")
    status, chat = await client.get(f"/api/chats/{conv.id}")
    assert status == 200
    channels = {m["channel"] for m in chat["messages"]}
    assert channels == {"telegram", "vk"}, channels
    assert any(m["earlier"] and m["channel"] == "vk" for m in chat["messages"])
    assert {c["channel"] for c in chat["channels"]} == {"telegram", "vk"}

    # "Продолжим здесь": the same person writes in VK; the queued chat moves there, nothing lost.
    await _vk(console, "я тут, пишу из вк", "Продолжим здесь")
    async with console.app.db.session() as s:
        moved = await s.get(Conversation, conv.id)
        assert moved is not None
        assert (moved.channel, moved.state) == ("vk", "queued")
    status, chat = await client.get(f"/api/chats/{conv.id}")
    assert chat["conversation"]["channel"] == "vk"
    assert chat["messages"][-2]["text"] == "я тут, пишу из вк"
    assert chat["messages"][-2]["channel"] == "vk"
    # The operator's reply goes to VK now.
    await client.post(f"/api/chats/{conv.id}/take")
    await client.post(f"/api/chats/{conv.id}/reply", {"text": "Здравствуйте! Я Ольга."})
    await wait_text(lambda: console.vk.sent(VK_USER), "Я Ольга")


async def test_link_refusals_and_unlink(console: Console) -> None:
    await _identified_in_both(console)

    # Five wrong codes burn the code.
    await _code_sent_to_telegram(console)
    for _ in range(4):
        await _vk(console, "123 456", "Код не подходит")
    await _vk(console, "654321", "Слишком много неверных попыток")

    # An expired code is refused even when it is right.
    code = await _code_sent_to_telegram(console)
    async with console.app.db.session() as s, s.begin():
        await s.execute(update(LinkCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    await _vk(console, code, "Код устарел")
    # Three code requests an hour per account; the fourth is refused.
    await _code_sent_to_telegram(console)
    await _vk(console, "связать", "Слишком много запросов")
    apart = await _subscribers(console)
    assert apart["vk"] != apart["telegram"]

    # Telegram links instead (its own limit), then unlinks.
    before = len(console.vk.sent(VK_USER))
    await _tg(console, "/link", "Отправил код в ВКонтакте")
    message = await wait_text(lambda: console.vk.sent(VK_USER)[before:], "Код для связи")
    found = re.search(r"\b(\d{6})\b", message["text"])
    assert found is not None
    await _tg(console, found.group(1), "аккаунты связаны")
    linked = await _subscribers(console)
    assert linked["telegram"] == linked["vk"]

    await _tg(console, "отвязать аккаунт", "Отвязать этот аккаунт")
    await _tg(console, "да", "больше не связан с ВКонтакте")
    apart = await _subscribers(console)
    assert apart["telegram"] != apart["vk"]
    await _vk(console, "отвязать", "Отвязать этот аккаунт")
    await _vk(console, "да", "и так ни с чем не связан")


async def test_no_code_without_the_same_number_elsewhere(console: Console) -> None:
    """A claim alone links nothing: a VK user who never wrote in Telegram gets no code."""
    await _vk(console, "баланс", "номер телефона", user=VK_USER + 7)
    await _vk(console, "89110000002", "летит SMS", user=VK_USER + 7)
    await _vk(console, await _sms_code(console, "+79110000002"), "это ты", user=VK_USER + 7)
    await _vk(console, "связать", "Не нашёл тебя в другом канале", user=VK_USER + 7)

    async with console.app.db.session() as s:
        assert (await s.scalars(select(LinkCode))).all() == []
