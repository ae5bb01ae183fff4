"""services.notify on SQLite and PostgreSQL: one message per person in their preferred channel,
stored and queued in bulk; opt-outs, unreachable, merged and chat-less subscribers are skipped."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, func, select, update

from dialogs.content import ButtonSpec, Response, Variant
from services.notify import NotifyResult, notify, preferred_accounts
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    Message,
    OutboxItem,
    Subscriber,
)
from tests.audience import Person, conversation_of, seed

NEWS = Response(
    "incident_closed",
    (
        Variant(
            text="{first_name}, связь по адресу {area} восстановлена ({channel})",
            buttons=((ButtonSpec("Спасибо", "intent:thanks"),),),
        ),
    ),
)
SCOPE = {"area": "ул. Ленина, 5"}


async def run(db: Database, ids: list[int], **kwargs: Any) -> NotifyResult:
    async with db.session() as s, s.begin():
        return await notify(s, ids, NEWS, SCOPE, **kwargs)


async def queued(db: Database) -> list[tuple[str, str, str | None, int | None, str | None]]:
    """(channel, chat, text, conversation, message channel) per outbox row, in order."""
    async with db.session() as s:
        rows = await s.execute(
            select(
                OutboxItem.channel,
                OutboxItem.chat_id,
                Message.text,
                Message.conversation_id,
                Message.channel,
            )
            .join(Message, Message.id == OutboxItem.message_id)
            .order_by(OutboxItem.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_one_message_per_person_in_the_channel_they_wrote_from_last(db: Database) -> None:
    ids = await seed(
        db,
        [
            Person((("telegram", 11), ("vk", 21)), first_name="Оля"),  # wrote in VK last
            Person((("vk", 22), ("telegram", 12)), first_name="Петя"),  # wrote in Telegram last
            Person((("telegram", 13),)),
            Person((("vk", 23),)),
        ],
    )
    result = await run(db, [*ids, ids[0]])  # a repeated id is one person
    assert result == NotifyResult(
        queued=4, opted_out=0, unreachable=0, channels=frozenset({"telegram", "vk"})
    )
    rows = await queued(db)
    assert [(ch, chat) for ch, chat, *_ in rows] == [
        ("vk", "21"),
        ("telegram", "12"),
        ("telegram", "13"),
        ("vk", "23"),
    ]
    assert rows[0][2] == "Оля, связь по адресу ул. Ленина, 5 восстановлена (vk)"
    assert rows[1][2] == "Петя, связь по адресу ул. Ленина, 5 восстановлена (telegram)"
    # Stored in that account's conversation, marked with the channel it goes to.
    assert rows[0][3:] == (await conversation_of(db, "vk", 21), "vk")
    assert rows[1][3:] == (await conversation_of(db, "telegram", 12), "telegram")
    async with db.session() as s:
        item = await s.scalar(select(OutboxItem).order_by(OutboxItem.id).limit(1))
        message = await s.get(Message, item.message_id if item else 0)
    assert item is not None and message is not None
    assert item.body["buttons"] == [[{"title": "Спасибо", "payload": "intent:thanks"}]]
    assert (message.direction, message.author, message.buttons) == ("out", "bot", [["Спасибо"]])
    accounts = await _preferred(db, ids)
    assert accounts == {ids[0]: ("vk", "21"), ids[1]: ("telegram", "12"),
                        ids[2]: ("telegram", "13"), ids[3]: ("vk", "23")}  # fmt: skip


async def test_opted_out_are_skipped_unless_the_message_is_owed_to_them(db: Database) -> None:
    ids = await seed(db, [Person((("telegram", 31),), opted_out=True), Person((("vk", 32),))])
    result = await run(db, ids)
    assert (result.queued, result.opted_out, result.unreachable) == (1, 1, 0)
    assert [(ch, chat) for ch, chat, *_ in await queued(db)] == [("vk", "32")]
    owed = await run(db, ids[:1], proactive=False)  # a ticket result: they asked for it
    assert (owed.queued, owed.opted_out) == (1, 0)
    assert [(ch, chat) for ch, chat, *_ in await queued(db)][-1] == ("telegram", "31")


async def test_unreachable_accounts_fall_back_or_count_as_unreachable(db: Database) -> None:
    ids = await seed(
        db,
        [
            Person((("telegram", 41),), unreachable=("telegram",)),
            Person((("telegram", 42), ("vk", 52)), unreachable=("vk",)),  # VK latest but blocked
        ],
    )
    result = await run(db, ids)
    assert (result.queued, result.unreachable, result.channels) == (1, 1, frozenset({"telegram"}))
    assert [(ch, chat) for ch, chat, *_ in await queued(db)] == [("telegram", "42")]
    assert set(await _preferred(db, ids)) == {ids[1]}


async def test_merged_and_chatless_subscribers_get_nothing_and_no_chat_is_made(
    db: Database,
) -> None:
    ids = await seed(db, [Person((("vk", 61),)), Person((("vk", 62),))])
    async with db.session() as s, s.begin():
        await s.execute(
            update(Subscriber).where(Subscriber.id == ids[0]).values(merged_into=ids[1])
        )
        lonely = Subscriber(display_name="Без чата", data={})
        s.add(lonely)
        await s.flush()
        s.add(ChannelAccount(subscriber_id=lonely.id, channel="telegram",
                             external_user_id="63", chat_id="63"))  # fmt: skip
    result = await run(db, [ids[0], ids[1], lonely.id, 999_999])
    assert (result.queued, result.opted_out, result.unreachable) == (1, 0, 3)
    assert [(ch, chat) for ch, chat, *_ in await queued(db)] == [("vk", "62")]
    async with db.session() as s:
        assert await s.scalar(select(func.count(Conversation.id))) == 2


async def test_a_given_conversation_holds_the_message(db: Database) -> None:
    ids = await seed(db, [Person((("telegram", 71), ("vk", 81)))])
    ticket_chat = await conversation_of(db, "telegram", 71)
    await run(db, ids, proactive=False, conversation_ids={ids[0]: ticket_chat})
    # The ticket was opened in Telegram, but they write in VK now: told there, stored with it.
    assert [(ch, chat, conv, mch) for ch, chat, _, conv, mch in await queued(db)] == [
        ("vk", "81", ticket_chat, "vk")
    ]


async def test_a_chat_that_moved_channels_counts_for_the_channel_each_message_came_from(
    db: Database,
) -> None:
    """Продолжим здесь: the Telegram chat moved to VK, then they wrote in Telegram again (the
    message is marked telegram in the moved chat). Old rows with no channel count for the
    conversation's own channel."""
    ids = await seed(db, [Person((("telegram", 91), ("vk", 92)))])
    tg_chat, vk_chat = (
        await conversation_of(db, "telegram", 91),
        await conversation_of(db, "vk", 92),
    )
    async with db.session() as s, s.begin():
        vk_account = await s.scalar(
            select(ChannelAccount.id).where(ChannelAccount.external_user_id == "92")
        )
        await s.execute(
            update(Conversation)
            .where(Conversation.id == tg_chat)
            .values(channel_account_id=vk_account, channel="vk")
        )
        s.add(Message(conversation_id=tg_chat, direction="in", author="subscriber",
                      text="я снова тут", channel="telegram"))  # fmt: skip
    await run(db, ids)
    assert [(ch, chat, conv) for ch, chat, _, conv, _ in await queued(db)] == [
        ("telegram", "91", tg_chat)
    ]
    async with db.session() as s, s.begin():  # a later message from before `channel` existed
        s.add(Message(conversation_id=vk_chat, direction="in", author="subscriber", text="ау"))
    await run(db, ids)
    assert [(ch, chat, conv) for ch, chat, _, conv, _ in await queued(db)][-1] == (
        "vk",
        "92",
        vk_chat,
    )
    async with db.session() as s, s.begin():  # now they write in VK in the moved chat
        s.add(Message(conversation_id=tg_chat, direction="in", author="subscriber",
                      text="продолжим", channel="vk"))  # fmt: skip
    await run(db, ids)
    assert [(ch, chat, conv) for ch, chat, _, conv, _ in await queued(db)][-1] == (
        "vk",
        "92",
        tg_chat,  # the chat holding their latest message, not VK's own idle one
    )


async def test_thousands_are_stored_and_queued_in_a_few_statements(db: Database) -> None:
    ids = await seed(db, [Person((("telegram", 100_000 + i),)) for i in range(1_200)])
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    started = time.perf_counter()
    try:
        result = await run(db, ids)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    elapsed = time.perf_counter() - started
    assert result.queued == 1_200
    # 3 chunks of 500: a few SELECTs each (subscribers, accounts, latest messages and their
    # conversations), one INSERT of messages and one of outbox rows (not one per subscriber).
    assert statements.count("INSERT") <= 6, statements
    assert len(statements) <= 24, statements
    assert elapsed < 5, f"{elapsed:.2f}s"
    async with db.session() as s:
        assert await s.scalar(select(func.count(OutboxItem.id))) == 1_200
        mismatched = await s.scalar(  # each queued row points at its own person's message
            select(func.count(OutboxItem.id))
            .join(Message, Message.id == OutboxItem.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
            .where(ChannelAccount.chat_id != OutboxItem.chat_id)
        )
        assert mismatched == 0
        assert await s.scalar(select(func.count(Message.id)).where(Message.direction == "out")) == (
            1_200
        )


async def _preferred(db: Database, ids: list[int]) -> dict[int, tuple[str, str]]:
    async with db.session() as s:
        found = await preferred_accounts(s, ids)
        return {sub: (a.channel, a.chat_id) for sub, a in found.items()}
