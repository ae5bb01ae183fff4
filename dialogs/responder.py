"""What decides the bot's replies: the `Responder` interface and the `Turn` it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.messages import Inbound, Outbound
from nlu.knowledge import Hit
from nlu.types import Parse
from storage.models import ChannelAccount, Conversation


@dataclass(frozen=True, slots=True)
class Searched:
    """The knowledge base's best articles for the message, searched before the turn (by the
    helper process, nlu/offload.py): used while `index` is still the one the turn reads."""

    index: object
    text: str
    hits: list[Hit]


@dataclass(slots=True)
class Turn:
    """One subscriber message in context. The responder may read and update `conversation.slots`
    and use `session` (same transaction as the pipeline) for lookups."""

    inbound: Inbound
    conversation: Conversation
    account: ChannelAccount
    new_conversation: bool
    session: AsyncSession
    parse: Parse | None = None  # what the NLU engine understood of a text (None for buttons/media)
    # What the text turned out to be, when not a request for its intent: "form:<slot>" (an answer
    # to the form's question), "cancel", or "miss" (the bot did not understand it: a fallback).
    # Stored with the message (`nlu.handled_as`) for operators, editors and analytics.
    handled_as: str | None = None
    searched: Searched | None = None


class Responder(Protocol):
    async def respond(self, turn: Turn) -> list[Outbound]: ...


class Escalator(Protocol):
    """Hands a chat to live operators (implemented by handoff.queue.HandoffQueue): queues it for
    `group` in the caller's transaction and returns what to tell the subscriber (position and
    expected wait, or when operators are back)."""

    async def escalate(
        self,
        session: AsyncSession,
        conv: Conversation,
        account: ChannelAccount,
        *,
        group: str,
        reason: str,
        note: str | None = None,
    ) -> list[Outbound]: ...
