"""Internal notes on a chat: operators' words for each other, never sent to the subscriber.

A note is a stored conversation event (`kind="note"`, `data={"note", "operator_id"}`): no message
row, so the outbox never sees it, and the note a transfer carries (`data["note"]` of the
"transferred" or "escalated" event, `handoff.desk.transfer`) is one of them. Retention and a
person's erasure already drop `data["note"]` of every event (`services.privacy`), so notes go
with the rest of the chat's free text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import note_event
from storage.models import Conversation, ConversationEvent

MAX_NOTE = 2000
KIND = "note"
# Events after which the chat is with this operator (who wrote a transfer's note is whoever
# had the chat then).
_OWNER_KEYS = {"assigned": "operator_id", "taken": "operator_id", "transferred": "to_operator"}


def add(session: AsyncSession, conv: Conversation, operator_id: int, text: str) -> None:
    """Store a note on `conv` by the operator (in the caller's transaction) and tell the
    consoles that have the chat open."""
    session.add(
        ConversationEvent(
            conversation_id=conv.id, kind=KIND, data={"note": text, "operator_id": operator_id}
        )
    )
    note_event(session, {"type": "note", "conversation_id": conv.id, "operator_id": operator_id})


async def listing(
    session: AsyncSession,
    conv_id: int,
    *,
    names: dict[int, str],
    when: Callable[[datetime], str | None],
) -> list[dict[str, Any]]:
    """The chat's notes, oldest first: the operators' own and the transfers' ones."""
    events = (
        await session.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.conversation_id == conv_id)
            .order_by(ConversationEvent.at, ConversationEvent.id)
        )
    ).all()
    owner: int | None = None
    out: list[dict[str, Any]] = []
    for e in events:
        data = e.data or {}
        text = data.get("note")
        if isinstance(text, str) and text.strip():
            if e.kind == KIND:
                author, label = data.get("operator_id"), None
            elif e.kind == "transferred":
                author = data.get("from")
                label = f"при передаче оператору {names.get(data.get('to_operator') or 0, '')}"
            else:  # "escalated" by a transfer to a group
                author = owner
                label = f"при передаче в группу {data.get('group') or ''}"
            out.append(
                {
                    "id": e.id,
                    "transfer": e.kind != KIND,
                    "label": label.strip() if label else None,
                    "text": text,
                    "author": names.get(author, "оператор")
                    if isinstance(author, int)
                    else "оператор",
                    "at": e.at.isoformat(),
                    "time": when(e.at),
                }
            )
        key = _OWNER_KEYS.get(e.kind)
        if key is not None and isinstance(data.get(key), int):
            owner = data[key]
    return out
