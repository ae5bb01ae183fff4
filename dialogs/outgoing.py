"""The one writer of outgoing messages: every reply, operator message, system notice and
proactive notification is stored as a `messages` row plus its `outbox` row, here.

Callers own the transaction (`Database.transaction()`); `write` inserts in bulk (a few
statements per 500 messages). Once the transaction commits, the channel's sender in this
process gets the replies it can send at once, and is woken to claim the others (storage/db.py,
storage/repo.py `enqueue`). The outbox worker (delivery/) sends the
rows in order per chat, within the platform's limits. Nothing else writes `outbox` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.messages import Outbound
from storage import repo
from storage.db import note_wake
from storage.models import Author, ChannelAccount, Conversation, Direction

CHUNK = 500  # messages per INSERT


class Recipient(NamedTuple):
    """Where a message goes: the conversation it is stored in and the chat it is sent to."""

    conversation_id: int
    channel: str
    chat_id: str
    account_id: int | None = None

    @classmethod
    def of(cls, conversation: Conversation | int, account: ChannelAccount) -> Recipient:
        conv_id = conversation if isinstance(conversation, int) else conversation.id
        return cls(conv_id, account.channel, account.chat_id, account.id)


class Outgoing(NamedTuple):
    to: Recipient
    reply: Outbound


async def write(
    session: AsyncSession,
    outgoing: Sequence[Outgoing],
    *,
    author: str = Author.BOT,
    operator_id: int | None = None,
    incoming: Mapping[str, Any] | None = None,
) -> list[int]:
    """Store and queue `outgoing` in order; returns their message ids. `incoming` (a subscriber
    message's columns, from the pipeline) is inserted first in the same statement."""
    ids: list[int] = []
    waiting: set[str] = set()  # channels with rows for their sender to claim
    for start in range(0, max(len(outgoing), 1), CHUNK):
        chunk = outgoing[start : start + CHUNK]
        rows = [_message_row(o, author, operator_id) for o in chunk]
        lead = [dict(incoming)] if incoming is not None and start == 0 else []
        if not rows and not lead:
            break
        message_ids = (await repo.add_messages(session, [*lead, *rows]))[len(lead) :]
        if chunk:
            waiting |= await repo.enqueue(
                session,
                [
                    {
                        "channel": o.to.channel,
                        "chat_id": o.to.chat_id,
                        "channel_account_id": o.to.account_id,
                        "message_id": message_id,
                        "body": o.reply.to_json(),
                    }
                    for o, message_id in zip(chunk, message_ids, strict=True)
                ],
            )
        ids += message_ids
    for channel in waiting:
        note_wake(session, channel)
    return ids


async def reply(
    session: AsyncSession,
    conversation: Conversation | int,
    account: ChannelAccount,
    replies: Sequence[Outbound],
    *,
    author: str = Author.BOT,
    operator_id: int | None = None,
) -> list[int]:
    """`write` for messages to one subscriber's account."""
    to = Recipient.of(conversation, account)
    return await write(
        session, [Outgoing(to, r) for r in replies], author=author, operator_id=operator_id
    )


def _message_row(o: Outgoing, author: str, operator_id: int | None) -> dict[str, Any]:
    reply = o.reply
    attachments = []
    if reply.image:
        attachments.append({"kind": "photo", "ref": reply.image})
    if reply.sticker:
        attachments.append({"kind": "sticker", "ref": reply.sticker})
    return {
        "conversation_id": o.to.conversation_id,
        "channel": o.to.channel,
        "direction": Direction.OUT,
        "author": author,
        "operator_id": operator_id,
        "text": reply.text,
        "buttons": [[b.title for b in row] for row in reply.buttons],
        "attachments": attachments,
    }
