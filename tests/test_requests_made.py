"""Requests already made: a subscriber asks where their visit or complaint stands, moves the
visit, cancels it, adds to a complaint; the CRM (the demo backend) and our own ticket rows
(what the console and the CRM's resolve API see) stay consistent. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from dialogs.actions import ActionContext, ActionError
from dialogs.messages import Outbound
from services.actions import flow_actions
from services.backend.demo import DemoBackend
from services.tickets import TicketError, resolve_ticket
from storage.db import Database
from storage.models import ChannelAccount, DemoTicket, Ticket, utcnow
from tests.audience import Person, conversation_of, seed
from tests.test_tickets import content

backend = DemoBackend()
actions = flow_actions(backend)


def _render(name: str, scope: dict[str, Any], channel: str) -> Outbound:
    return Outbound(text=name)


async def run(db: Database, name: str, slots: dict[str, Any], **args: Any) -> Any:
    """One action in its own turn, as the dialog engine runs it (topic: a technician visit)."""
    conv_id = await conversation_of(db, "telegram", 11)
    async with db.transaction() as s:
        account = await s.scalar(select(ChannelAccount).where(ChannelAccount.chat_id == "11"))
        assert account is not None
        call = ActionContext(
            session=s,
            channel="telegram",
            account=account,
            conversation_id=conv_id,
            slots=slots,
            render=_render,
            now=utcnow(),
            topic=args.pop("topic", "technician_visit"),
            args=args,
        )
        return await actions[name].run(call)


def window(days: int, start: str = "10:00", end: str = "14:00") -> dict[str, str]:
    day = (datetime.now() + timedelta(days=days)).date().isoformat()
    return {"date": day, "from": start, "to": end, "label": f"{day} {start}–{end}"}


@pytest.fixture
async def person(db: Database) -> Database:
    await backend.prepare(db)
    await seed(db, [Person((("telegram", 11),))])
    return db


async def test_a_booked_visit_is_found_moved_and_cancelled_everywhere(person: Database) -> None:
    db = person
    details = {"address": "Садовая 12", "phone": "+79110000001", "window": window(1)}
    visit = await run(db, "ticket", {}, kind="technician_visit", details=details)
    complaint = await run(db, "ticket", {}, kind="complaint", details={"complaint_text": "Ужас"})

    mine = await run(db, "my_tickets", {})
    assert mine["count"] == 2
    assert mine["current"]["number"] == visit["number"]  # the topic is the visit
    assert mine["visit"]["note"].startswith("мастер назначен")
    assert mine["complaint"]["number"] == complaint["number"]
    about_complaint = await run(db, "my_tickets", {}, topic="complaint")
    assert about_complaint["current"]["number"] == complaint["number"]

    later = window(3, "18:00", "21:00")
    moved = await run(db, "visit_reschedule", {"my_tickets": mine, "window": later})
    assert moved["window"] == later
    async with db.session() as s:
        ours = await s.scalar(select(Ticket).where(Ticket.number == visit["number"]))
        theirs = await s.scalar(select(DemoTicket).where(DemoTicket.number == visit["number"]))
    assert ours is not None and theirs is not None
    assert ours.details["window"] == later and theirs.details["window"] == later
    assert ours.due_at == theirs.due_at  # the CRM's promise, in our row too
    assert ours.due_at > utcnow() + timedelta(days=2)

    await run(db, "ticket_cancel", {"my_tickets": mine})
    async with db.session() as s:
        ours = await s.scalar(select(Ticket).where(Ticket.number == visit["number"]))
        theirs = await s.scalar(select(DemoTicket).where(DemoTicket.number == visit["number"]))
    assert ours is not None and ours.status == "cancelled" and ours.resolved_at is not None
    assert theirs is not None and theirs.status == "cancelled"
    # Gone from what the subscriber is told about, and the CRM can't resolve it any more.
    after = await run(db, "my_tickets", {})
    assert [i["number"] for i in after["items"]] == [complaint["number"]]
    with pytest.raises(TicketError, match="cancelled") as refused:
        await resolve_ticket(db, content(), visit["number"], "Мастер приехал")
    assert refused.value.status == 409


async def test_a_comment_reaches_the_complaint_and_stays_with_it(person: Database) -> None:
    db = person
    await run(db, "ticket", {}, kind="complaint", details={"complaint_text": "Списали 300 ₽"})
    mine = await run(db, "my_tickets", {}, topic="complaint")
    await run(db, "ticket_comment", {"my_tickets": mine, "ticket_comment": "И ещё 100 ₽ вчера"})
    async with db.session() as s:
        ours = await s.scalar(select(Ticket))
        theirs = await s.scalar(select(DemoTicket))
    assert ours is not None and theirs is not None
    assert [c["text"] for c in ours.details["comments"]] == ["И ещё 100 ₽ вчера"]
    assert [c["text"] for c in theirs.details["comments"]] == ["И ещё 100 ₽ вчера"]


async def test_nothing_to_manage_is_an_error_the_flow_can_branch_on(person: Database) -> None:
    db = person
    mine = await run(db, "my_tickets", {})
    assert mine == {"count": 0, "items": [], "current": None, "visit": None, "complaint": None}
    with pytest.raises(ActionError) as none:
        await run(db, "ticket_cancel", {"my_tickets": mine})
    assert none.value.reason == "none"
    complaint = await run(db, "ticket", {}, kind="complaint", details={})
    theirs = {"current": complaint, "visit": complaint}
    with pytest.raises(ActionError) as wrong:  # a complaint can't be moved like a visit
        await run(db, "visit_reschedule", {"my_tickets": theirs, "window": window(2)})
    assert wrong.value.reason == "not_a_visit"
