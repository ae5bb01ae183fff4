"""Resolving a ticket tells the subscriber once, through services.notify: in the channel they wrote
from last, stored in the ticket's conversation; on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from dialogs.content import Content, load_content
from nlu.data import load_training_data
from services.tickets import TicketError, resolve_ticket
from storage.db import Database
from storage.models import ChannelAccount, Message, OutboxItem, Subscriber, Ticket, utcnow
from tests.audience import Person, conversation_of, seed
from tests.support import CONTENT, REFERENCE_ACTIONS


@functools.cache
def content() -> Content:
    intents = load_training_data([CONTENT / "nlu"]).intents
    return load_content(CONTENT, intents, actions=REFERENCE_ACTIONS)


async def open_ticket(db: Database, subscriber_id: int, channel: str, user_id: int) -> str:
    """A complaint filed in the subscriber's chat in `channel`."""
    conv_id = await conversation_of(db, channel, user_id)
    number = f"C-{subscriber_id}"
    async with db.session() as s, s.begin():
        s.add(Ticket(number=number, kind="complaint", subscriber_id=subscriber_id,
                     conversation_id=conv_id, details={}, due_at=utcnow() + timedelta(days=1)))  # fmt: skip
    return number


async def told(db: Database) -> list[tuple[str, str, int | None]]:
    """(channel, chat, conversation of the stored message) per queued notice."""
    async with db.session() as s:
        rows = await s.execute(
            select(OutboxItem.channel, OutboxItem.chat_id, Message.conversation_id)
            .join(Message, Message.id == OutboxItem.message_id)
            .order_by(OutboxItem.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_linked_subscriber_hears_back_where_they_write_now(db: Database) -> None:
    (sub,) = await seed(db, [Person((("telegram", 11), ("vk", 21)), opted_out=True)])
    number = await open_ticket(db, sub, "telegram", 11)  # filed in Telegram, VK is newer
    done = await resolve_ticket(db, content(), number, "Вернули 199 ₽.")
    assert done.channel == "vk"
    ((channel, chat, conv_id),) = await told(db)
    async with db.session() as s:
        ticket = await s.scalar(select(Ticket))
        text = await s.scalar(select(Message.text).where(Message.direction == "out"))
    assert ticket is not None and ticket.status == "resolved"
    # The ticket's conversation keeps the answer; opting out of news does not stop it.
    assert (channel, chat, conv_id) == ("vk", "21", ticket.conversation_id)
    assert text is not None and f"№{number}" in text and "Вернули 199 ₽." in text


async def test_an_unreachable_channel_falls_back_and_nobody_reachable_is_409(
    db: Database,
) -> None:
    first, second = await seed(
        db,
        [
            Person((("vk", 31), ("telegram", 41)), unreachable=("telegram",)),
            Person((("telegram", 42),), unreachable=("telegram",)),
        ],
    )
    number = await open_ticket(db, first, "telegram", 41)
    assert (await resolve_ticket(db, content(), number, "Готово")).channel == "vk"
    assert [(ch, chat) for ch, chat, _ in await told(db)] == [("vk", "31")]
    stuck = await open_ticket(db, second, "telegram", 42)
    with pytest.raises(TicketError) as error:
        await resolve_ticket(db, content(), stuck, "Готово")
    assert error.value.status == 409
    async with db.session() as s:  # rolled back: it can be resolved once they are reachable
        assert await s.scalar(select(Ticket.status).where(Ticket.number == stuck)) == "open"


async def test_a_ticket_of_a_since_merged_subscriber_reaches_the_merged_one(
    db: Database,
) -> None:
    old, new = await seed(db, [Person((("telegram", 51),)), Person((("vk", 61),))])
    number = await open_ticket(db, old, "telegram", 51)
    async with db.session() as s, s.begin():  # they linked accounts: Telegram moved to `new`
        await s.execute(update(Subscriber).where(Subscriber.id == old).values(merged_into=new))
        await s.execute(
            update(ChannelAccount)
            .where(ChannelAccount.subscriber_id == old)
            .values(subscriber_id=new)
        )
    assert (await resolve_ticket(db, content(), number, "Готово")).channel == "vk"
