"""Tickets: opened by a flow's `ticket:` step, resolved later with the subscriber told the result
("жалоба как подарок").

The `ticket` action asks the backend (CRM) to open the ticket and keeps our own row of it (for
the console, the CRM's resolve API and the subscriber's later questions).

The CRM (or an operator, or `supportbot tickets resolve`) resolves a ticket with a result text;
the subscriber gets the content's `ticket_resolved` response in the channel they wrote from most
recently (services.notify: one message even with linked Telegram and VK accounts), through the
outbox (rate limits, retries, exactly-once delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.actions import Action, ActionContext
from dialogs.content import Content
from services.backend import Backend, Customer, to_json
from services.backend.actions import context
from services.notify import notify
from storage.db import Database
from storage.models import Subscriber, Ticket, utcnow


class TicketError(ValueError):
    """Why a ticket can't be resolved; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Resolved:
    number: str
    channel: str  # the channel the subscriber is told in


def ticket_action(backend: Backend) -> Action:
    """The `ticket: <kind>` step: `args` are the kind and the details (slot values) it lists."""

    async def open_ticket(call: ActionContext) -> dict[str, Any]:
        data = call.slots.get("customer")
        customer = Customer(**data) if isinstance(data, dict) else None
        kind, details = str(call.args["kind"]), dict(call.args.get("details") or {})
        receipt = await backend.create_ticket(context(call), kind, customer, details)
        call.session.add(
            Ticket(
                number=receipt.number,
                kind=receipt.kind,
                subscriber_id=call.subscriber_id,
                conversation_id=call.conversation_id,
                details=to_json(receipt.details),
                due_at=receipt.due_at,
            )
        )
        result: dict[str, Any] = to_json(receipt)
        return result

    return Action("ticket", open_ticket, into="ticket", step="ticket", doc="open a ticket")


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
        ticket.status, ticket.result, ticket.resolved_at = "resolved", result, at or utcnow()
        subscriber_id = await _current_subscriber(session, ticket.subscriber_id)
        told = await notify(
            session,
            [subscriber_id],
            content.responses["ticket_resolved"],
            {"ticket": ticket_json(ticket)},
            proactive=False,  # they asked for this answer: opting out of news does not stop it
            conversation_ids=(
                {subscriber_id: ticket.conversation_id} if ticket.conversation_id else None
            ),
        )
        if not told.queued:  # raising rolls the resolution back: it can be retried later
            raise TicketError(
                f"ticket {ticket.number}: the subscriber has no reachable channel", 409
            )
        (channel,) = told.channels
        return Resolved(number, channel)


async def _current_subscriber(session: AsyncSession, subscriber_id: int) -> int:
    """Follow `merged_into`: a ticket of someone who since linked their accounts reaches them."""
    seen = {subscriber_id}
    while True:
        merged_into = await session.scalar(
            select(Subscriber.merged_into).where(Subscriber.id == subscriber_id)
        )
        if merged_into is None or merged_into in seen:
            return subscriber_id
        subscriber_id = merged_into
        seen.add(merged_into)


__all__ = [
    "Resolved",
    "TicketError",
    "list_tickets",
    "resolve_ticket",
    "ticket_action",
    "ticket_json",
]
