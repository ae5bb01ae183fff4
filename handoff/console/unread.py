"""What an operator has not read yet, kept on the server (so a reload, a second tab or another
computer shows the same count, and chats assigned while the console was disconnected still
alert when it reconnects).

A chat of mine (with an operator, mine) counts as unread by one if I have not opened it since it
was assigned to me ("new"), plus one per subscriber message since I last had it open (or since
the assignment, whichever is later). `Conversation.operator_read_at` holds when its operator last
had it open: the chat page marks it (`mark_read`) on load and whenever it re-reads the chat while
visible; taking a chat yourself counts as opening it (`handoff.desk`). Marking publishes a `read`
event, so this operator's other tabs re-read their counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database, note_event
from storage.models import Author, Conversation, ConversationState, Message, utcnow


@dataclass(frozen=True, slots=True)
class Unread:
    conversation_id: int
    count: int
    new: bool  # assigned to me and not opened since
    assigned_at: datetime | None


def _since(conv: Conversation) -> datetime | None:
    marks = [at for at in (conv.assigned_at, conv.operator_read_at) if at is not None]
    return max(marks) if marks else None


def _new(conv: Conversation) -> bool:
    return conv.assigned_at is not None and (
        conv.operator_read_at is None or conv.operator_read_at < conv.assigned_at
    )


async def _counts(session: AsyncSession, convs: list[Conversation]) -> list[Unread]:
    if not convs:
        return []
    windows = [
        and_(Message.conversation_id == c.id, Message.created_at > since)
        if (since := _since(c)) is not None
        else Message.conversation_id == c.id
        for c in convs
    ]
    rows = await session.execute(
        select(Message.conversation_id, func.count(Message.id))
        .where(Message.author == Author.SUBSCRIBER, or_(*windows))
        .group_by(Message.conversation_id)
    )
    written = {int(conv_id): int(n) for conv_id, n in rows.all()}
    out = []
    for c in convs:
        count = written.get(c.id, 0) + (1 if _new(c) else 0)
        if count:
            out.append(Unread(c.id, count, _new(c), c.assigned_at))
    return out


@dataclass(frozen=True, slots=True)
class Mine:
    chats: list[int]  # every chat the operator has now
    unread: list[Unread]  # those with something unread


async def for_operator(session: AsyncSession, operator_id: int) -> Mine:
    """The operator's chats, and those with something unread."""
    convs = list(
        (
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.state == ConversationState.WITH_OPERATOR,
                    Conversation.operator_id == operator_id,
                )
                .order_by(Conversation.id)
            )
        ).all()
    )
    return Mine([c.id for c in convs], await _counts(session, convs))


def as_json(mine: Mine) -> dict[str, Any]:
    """`/api/unread`: counts per chat, their total, the chats assigned but not opened yet (the
    page alerts once per assignment: `at` tells one assignment from the next), and all my chats
    (the page re-reads the counts on events about these or naming me, and no others)."""
    unread = mine.unread
    return {
        "mine": mine.chats,
        "chats": {str(u.conversation_id): u.count for u in unread},
        "total": sum(u.count for u in unread),
        "new": [
            {"id": u.conversation_id, "at": u.assigned_at.isoformat() if u.assigned_at else ""}
            for u in unread
            if u.new
        ],
    }


async def mark_read(db: Database, operator_id: int, conv_id: int) -> bool:
    """The operator has the chat open: nothing of it is unread now. Only its own operator's
    reading counts; nothing is written (and no event sent) when nothing was unread."""
    async with db.transaction() as session:
        conv = await session.get(Conversation, conv_id)
        if (
            conv is None
            or conv.operator_id != operator_id
            or conv.state != ConversationState.WITH_OPERATOR
            or not await _counts(session, [conv])
        ):
            return False
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conv_id, Conversation.operator_id == operator_id)
            .values(operator_read_at=utcnow(), updated_at=Conversation.updated_at)
            .execution_options(synchronize_session=False)
        )
        note_event(
            session, {"type": "read", "conversation_id": conv_id, "operator_id": operator_id}
        )
    return True
