"""Many subscribers at once, written straight into the database (a few bulk INSERTs), for the
notification tests and bench/broadcast.py.

Each `Person` gets a subscriber, one channel account per entry of `accounts` (chat id = user id,
as for private chats in Telegram and VK), a conversation per account and one message written
from each account, in the order listed: the last account listed is the one they wrote from most
recently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select

from storage.db import Database
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    ConversationState,
    Direction,
    Message,
    Subscriber,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class Person:
    accounts: tuple[tuple[str, int], ...]  # (channel, user id); the last one wrote most recently
    opted_out: bool = False
    unreachable: tuple[str, ...] = ()  # channels whose account blocked the bot
    first_name: str = "Иван"


async def seed(db: Database, people: Sequence[Person]) -> list[int]:
    """Create `people`; returns their subscriber ids in the same order."""
    now = utcnow()
    async with db.session() as s, s.begin():
        subscribers = await _insert_rows(
            s,
            Subscriber,
            [
                {
                    "display_name": p.first_name,
                    "data": {},
                    "created_at": now,
                    "notifications_off_at": now if p.opted_out else None,
                }
                for p in people
            ],
        )
        owners = [
            (sub_id, p, channel, user_id)
            for sub_id, p in zip(subscribers, people, strict=True)
            for channel, user_id in p.accounts
        ]
        accounts = await _insert_rows(
            s,
            ChannelAccount,
            [
                {
                    "subscriber_id": sub_id,
                    "channel": channel,
                    "external_user_id": str(user_id),
                    "chat_id": str(user_id),
                    "first_name": p.first_name,
                    "unreachable_at": now if channel in p.unreachable else None,
                    "created_at": now,
                }
                for sub_id, p, channel, user_id in owners
            ],
        )
        conversations = await _insert_rows(
            s,
            Conversation,
            [
                {
                    "subscriber_id": sub_id,
                    "channel_account_id": account_id,
                    "channel": channel,
                    "state": ConversationState.BOT,
                    "slots": {},
                    "declined_by": [],
                    "priority": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for (sub_id, _, channel, _), account_id in zip(owners, accounts, strict=True)
            ],
        )
        # One message per account: the order of the rows is the order they wrote in, so a person's
        # last listed account holds their latest inbound message.
        order = sorted(range(len(owners)), key=lambda i: owners[i][1].accounts.index(owners[i][2:]))
        await _insert_rows(
            s,
            Message,
            [
                {
                    "conversation_id": conversations[i],
                    "direction": Direction.IN,
                    "author": Author.SUBSCRIBER,
                    "text": "интернет не работает",
                    "channel": owners[i][2],
                    "attachments": [],
                    "buttons": [],
                    "edited": False,
                    "created_at": now,
                }
                for i in order
            ],
        )
    return subscribers


async def conversation_of(db: Database, channel: str, user_id: int) -> int:
    """The latest conversation of the account `user_id` in `channel`."""
    async with db.session() as s:
        conv_id = await s.scalar(
            select(func.max(Conversation.id))
            .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
            .where(
                ChannelAccount.channel == channel, ChannelAccount.external_user_id == str(user_id)
            )
        )
    assert conv_id is not None, f"no conversation of {channel} user {user_id}"
    return int(conv_id)


async def _insert_rows(session: Any, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """One multi-row INSERT (batched by SQLAlchemy) returning the new ids in row order."""
    if not rows:
        return []
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list((await session.scalars(stmt, rows)).all())
