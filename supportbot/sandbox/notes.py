"""What the database knows about the messages a pane shows: who wrote each delivered message (the
bot, an operator, the system) and what it answered (the NLU parse or the button behind it).

The link from a platform message to its database row is exact: the outbox worker records the
platform message ids of every delivered item (`OutboxItem.platform_message_ids`, one per part of
a split message). The link from a bot reply to the subscriber message it answers is the turn:
the pipeline stores the incoming message and the replies it caused in one `repo.add_messages`
call, so they share the conversation and `created_at` (dialogs/pipeline.py `_store_turn`). A bot
message outside a turn (a ticket resolved later) has no such subscriber message, and no cause.

Nothing here is cached: every poll reads the live database, so a reply that is still being
delivered gets its note on the next poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    Direction,
    Message,
    Operator,
    OutboxItem,
)


@dataclass(frozen=True, slots=True)
class Note:
    author: str  # "bot" | "operator" | "system"
    operator: str | None  # the operator's name
    cause: dict[str, Any] | None  # see `cause_of`


def cause_of(
    payload: str | None, nlu: dict[str, Any] | None, attachments: Any
) -> dict[str, Any] | None:
    """What a subscriber message meant to the bot: a button's payload, an answer to a form's
    question (then the NLU's guess didn't matter), else the NLU parse (intent and confidence),
    else the kind of attachment (a photo, a sticker)."""
    if payload:
        return {"kind": "button", "payload": payload}
    if nlu and str(nlu.get("handled_as", "")).startswith("form:"):
        return {"kind": "form", "slot": str(nlu["handled_as"]).removeprefix("form:")}
    if nlu and nlu.get("handled_as") == "cancel":
        return {"kind": "form", "slot": "отмена"}
    if nlu and nlu.get("intent"):
        confidence = float(nlu.get("confidence") or 0.0)
        return {
            "kind": "intent",
            "intent": str(nlu["intent"]),
            "confidence": round(confidence, 3),
            "percent": f"{round(confidence * 100)}%",
        }
    kinds = [str(a.get("kind")) for a in attachments or [] if isinstance(a, dict)]
    if kinds:
        return {"kind": "attachment", "attachment": kinds[0]}
    return None


async def notes_for(db: Database, channel: str, user_id: int) -> dict[str, Note]:
    """Platform message id (as text) -> its note, for one subscriber account of a channel."""
    async with db.session() as session:
        account_id = await session.scalar(
            select(ChannelAccount.id).where(
                ChannelAccount.channel == channel,
                ChannelAccount.external_user_id == str(user_id),
            )
        )
        if account_id is None:
            return {}
        messages = (
            await session.execute(
                select(
                    Message.id,
                    Message.conversation_id,
                    Message.direction,
                    Message.author,
                    Message.operator_id,
                    Message.payload,
                    Message.attachments,
                    Message.nlu,
                    Message.created_at,
                )
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.channel_account_id == account_id)
                .order_by(Message.id)
            )
        ).all()
        delivered = (
            await session.execute(
                select(OutboxItem.message_id, OutboxItem.platform_message_ids).where(
                    OutboxItem.channel_account_id == account_id,
                    OutboxItem.message_id.is_not(None),
                )
            )
        ).all()
        operator_ids = {m.operator_id for m in messages if m.operator_id is not None}
        names: dict[int, str] = {}
        if operator_ids:
            rows = await session.execute(
                select(Operator.id, Operator.name).where(Operator.id.in_(operator_ids))
            )
            names = {op_id: name for op_id, name in rows.all()}

    turns: dict[tuple[int, datetime], dict[str, Any] | None] = {}
    by_id: dict[int, Note] = {}
    for m in messages:
        if m.direction == Direction.IN:
            turns[(m.conversation_id, m.created_at)] = cause_of(m.payload, m.nlu, m.attachments)
            continue
        cause = turns.get((m.conversation_id, m.created_at)) if m.author == Author.BOT else None
        operator = names.get(m.operator_id) if m.operator_id is not None else None
        by_id[m.id] = Note(author=str(m.author), operator=operator, cause=cause)

    out: dict[str, Note] = {}
    for message_id, platform_ids in delivered:
        note = by_id.get(message_id)
        if note is not None:
            for platform_id in platform_ids or []:
                out[str(platform_id)] = note
    return out
