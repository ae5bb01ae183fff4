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
from services.backend import Backend, BackendError, Customer, TicketState, to_json
from services.backend.actions import context
from services.notify import notify
from storage.db import Database
from storage.models import Subscriber, Ticket, TicketStatus, utcnow


class TicketError(ValueError):
    """Why a ticket can't be resolved; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Resolved:
    number: str
    channel: str  # the channel the subscriber is told in


# The kind of request a contact's topic is about: "где мой мастер?" is asked in technician_visit,
# "что с моей жалобой?" in complaint; a broken internet may already have a visit booked.
TOPIC_KINDS = {
    "technician_visit": "technician_visit",
    "internet_down": "technician_visit",
    "tv_down": "technician_visit",
    "complaint": "complaint",
    "block_number": "block_number",
    "connect_home": "connect_home",
}
KIND_TITLES = {
    "technician_visit": "выезд мастера",
    "complaint": "жалоба",
    "block_number": "блокировка номера",
    "connect_home": "подключение интернета",
}
SHOWN = 5  # open requests looked up at the CRM per question


def ticket_actions(backend: Backend) -> list[Action]:
    """Opening a ticket (the `ticket:` step) and managing the subscriber's open ones."""

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
        result: dict[str, Any] = {**to_json(receipt), "title": KIND_TITLES.get(kind, kind)}
        return result

    async def my_tickets(call: ActionContext) -> dict[str, Any]:
        """The subscriber's open requests, as the CRM sees them now: `items`, `current` (the
        latest of the kind this contact is about, else the latest), `visit`, `complaint`."""
        rows = (
            await call.session.scalars(
                select(Ticket)
                .where(
                    Ticket.subscriber_id == call.subscriber_id,
                    Ticket.status == TicketStatus.OPEN,
                )
                .order_by(Ticket.id.desc())
                .limit(SHOWN)
            )
        ).all()
        items = []
        for row in rows:
            state = await backend.ticket_state(context(call), row.number)
            if state.status != TicketStatus.OPEN:  # done or cancelled at the CRM meanwhile
                continue
            items.append(_state_json(state))
        wanted = TOPIC_KINDS.get(call.topic)
        of_kind = [i for i in items if i["kind"] == wanted]

        def latest(kind: str) -> dict[str, Any] | None:
            return next((i for i in items if i["kind"] == kind), None)

        return {
            "count": len(items),
            "items": items,
            "current": (of_kind or items)[0] if items else None,
            "visit": latest("technician_visit"),
            "complaint": latest("complaint"),
        }

    async def visit_reschedule(call: ActionContext) -> dict[str, Any]:
        number = _target(call, "visit")
        window = call.slots.get("window")
        if not isinstance(window, dict):
            raise BackendError("visit_reschedule without a chosen `window`", "no_window")
        state = await backend.reschedule_visit(context(call), number, window)
        row = await _own_row(call, number)
        row.details = {**row.details, "window": to_json(window)}
        row.due_at = state.due_at
        return _state_json(state)

    async def ticket_cancel(call: ActionContext) -> dict[str, Any]:
        number = _target(call, "current")
        state = await backend.cancel_ticket(context(call), number, "по просьбе абонента")
        row = await _own_row(call, number)
        row.status, row.resolved_at = TicketStatus.CANCELLED, call.now
        row.result = "Отменена по просьбе абонента"
        return _state_json(state)

    async def ticket_comment(call: ActionContext) -> dict[str, Any]:
        number = _target(call, "current")
        text = str(call.slots.get("ticket_comment") or "").strip()
        if not text:
            raise BackendError("ticket_comment without a `ticket_comment` text", "no_text")
        state = await backend.comment_ticket(context(call), number, text)
        row = await _own_row(call, number)
        comments = [*row.details.get("comments", []), {"at": call.now.isoformat(), "text": text}]
        row.details = {**row.details, "comments": comments}
        return _state_json(state)

    return [
        Action(
            "ticket",
            open_ticket,
            into="ticket",
            step="ticket",
            doc="open a ticket",
            kind_levels={"block_number": "fresh"},  # it stops someone's number: a step-up
        ),
        Action(
            "my_tickets", my_tickets, doc="the subscriber's open requests, as the CRM sees them"
        ),
        Action(
            "visit_reschedule",
            visit_reschedule,
            needs=("window",),
            doc="move `my_tickets.visit` to `window`",
        ),
        Action("ticket_cancel", ticket_cancel, doc="cancel `my_tickets.current`"),
        Action(
            "ticket_comment",
            ticket_comment,
            needs=("ticket_comment",),
            doc="add `ticket_comment` to `my_tickets.current`",
        ),
    ]


def _target(call: ActionContext, which: str) -> str:
    """The ticket number `my_tickets` found for this question (`visit` or `current`)."""
    found = call.slots.get("my_tickets")
    item = found.get(which) if isinstance(found, dict) else None
    if not isinstance(item, dict) or not item.get("number"):
        raise BackendError(f"no open request ({which}) to act on: call my_tickets first", "none")
    return str(item["number"])


async def _own_row(call: ActionContext, number: str) -> Ticket:
    row = await call.session.scalar(
        select(Ticket)
        .where(Ticket.number == number, Ticket.subscriber_id == call.subscriber_id)
        .with_for_update()
    )
    if row is None:  # checked by my_tickets in this very conversation; gone meanwhile
        raise BackendError(f"ticket {number} is not this subscriber's", "none")
    return row


def _state_json(state: TicketState) -> dict[str, Any]:
    data: dict[str, Any] = to_json(state)
    data["title"] = KIND_TITLES.get(state.kind, state.kind)
    data["window"] = state.details.get("window")
    return data


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
        if ticket.status == TicketStatus.RESOLVED:
            raise TicketError(f"ticket {number} is already resolved", 409)
        if ticket.status == TicketStatus.CANCELLED:
            raise TicketError(f"ticket {number} was cancelled by the subscriber", 409)
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
    "ticket_actions",
    "ticket_json",
]
