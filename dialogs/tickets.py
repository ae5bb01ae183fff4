"""Tickets after the chat: resolving one tells the subscriber the result ("жалоба как подарок").

The CRM (or an operator, or `supportbot tickets resolve`) resolves a ticket with a result text;
the subscriber gets the content's `ticket_resolved` response in the channel they wrote from,
through the outbox (rate limits, retries, exactly-once delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.backends import to_json
from dialogs.content import Content
from dialogs.engine import render
from storage import repo
from storage.db import Database
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    Direction,
    Ticket,
    utcnow,
)


class TicketError(ValueError):
    """Why a ticket can't be resolved; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Resolved:
    number: str
    channel: str
    chat_id: str


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "kind": ticket.kind,
        "status": ticket.status,
        "details": ticket.details,
        "due_at": to_json(ticket.due_at),
        "created_at": to_json(ticket.created_at),
        "resolved_at": to_json(ticket.resolved_at) if ticket.resolved_at else None,
        "result": ticket.result,
    }


async def list_tickets(session: AsyncSession, *, status: str | None = None) -> list[Ticket]:
    query = select(Ticket).order_by(Ticket.id)
    if status is not None:
        query = query.where(Ticket.status == status)
    return list((await session.scalars(query)).all())


async def resolve_ticket(
    db: Database, content: Content, number: str, result: str, *, at: datetime | None = None
) -> Resolved:
    """Mark the ticket resolved and queue the notification; raises TicketError if it can't."""
    if not result.strip():
        raise TicketError("the result text must not be empty: the subscriber reads it")
    async with db.session() as session, session.begin():
        ticket = await session.scalar(
            select(Ticket).where(Ticket.number == number).with_for_update()
        )
        if ticket is None:
            raise TicketError(f"no ticket {number!r}", 404)
        if ticket.status == "resolved":
            raise TicketError(f"ticket {number} is already resolved", 409)
        account = await _reply_account(session, ticket)
        ticket.status, ticket.result, ticket.resolved_at = "resolved", result, at or utcnow()
        scope = {"ticket": ticket_json(ticket), "first_name": account.first_name or "друг"}
        reply = render(content.responses["ticket_resolved"], scope, account.channel)
        if ticket.conversation_id is not None:
            (message_id,) = await repo.add_messages(
                session,
                [
                    {
                        "conversation_id": ticket.conversation_id,
                        "channel": account.channel,
                        "direction": Direction.OUT,
                        "author": Author.BOT,
                        "text": reply.text,
                        "buttons": [[b.title for b in row] for row in reply.buttons],
                    }
                ],
            )
        else:
            message_id = None
        await repo.enqueue(
            session,
            [
                {
                    "channel": account.channel,
                    "chat_id": account.chat_id,
                    "channel_account_id": account.id,
                    "message_id": message_id,
                    "body": reply.to_json(),
                }
            ],
        )
        return Resolved(number, account.channel, account.chat_id)


async def _reply_account(session: AsyncSession, ticket: Ticket) -> ChannelAccount:
    """The channel the subscriber opened the ticket from (else their latest reachable one)."""
    if ticket.conversation_id is not None:
        account = await session.scalar(
            select(ChannelAccount)
            .join(Conversation, Conversation.channel_account_id == ChannelAccount.id)
            .where(Conversation.id == ticket.conversation_id)
        )
        if account is not None and account.unreachable_at is None:
            return account
    account = await session.scalar(
        select(ChannelAccount)
        .where(
            ChannelAccount.subscriber_id == ticket.subscriber_id,
            ChannelAccount.unreachable_at.is_(None),
        )
        .order_by(ChannelAccount.id.desc())
    )
    if account is None:
        raise TicketError(f"ticket {ticket.number}: the subscriber has no reachable channel", 409)
    return account


__all__ = ["Resolved", "TicketError", "list_tickets", "resolve_ticket", "ticket_json"]
