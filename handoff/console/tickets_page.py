"""Tickets in the console ("Заявки"): the requests flows opened through the backend (technician
visits, complaints, ...), for operators and supervisors.

`GET /tickets`: the list, filters status (open by default), kind and "overdue only"; an open
ticket past its `due_at` is highlighted. `GET /tickets/{number}`: one ticket with its details and
the conversation it came from. `POST /tickets/{number}/resolve` (form: `result`, `csrf`):
resolves it through `services.tickets.resolve_ticket` (the path the backend's resolve API and
the CLI use), so the subscriber is told the result; recorded in the audit log
(`ticket_resolved`, with the number).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import func, select

from handoff.console.paging import paged
from handoff.console.readable import SLOT_LABELS
from handoff.console.security import client_ip, me
from handoff.console.state import console
from handoff.console.views import CHANNELS, person
from services import audit
from services.tickets import KIND_TITLES, TicketError, resolve_ticket
from storage.models import ChannelAccount, Conversation, Subscriber, Ticket, TicketStatus, utcnow

PAGE_SIZE = 50
NOT_FOR_EDITORS = "Заявки — для операторов и супервизоров."
STATUSES = {
    TicketStatus.OPEN: "открыта",
    TicketStatus.RESOLVED: "решена",
    TicketStatus.CANCELLED: "отменена абонентом",
}
DETAIL_LABELS = {
    "window": "окно визита",
    "address": "адрес",
    "text": "текст",
    "reason": "причина",
    "phone": "телефон",
    "comment": "комментарий",
    "comments": "комментарии",
    "topic": "тема",
}


def _when(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%d.%m.%Y %H:%M") if at is not None else ""


def _detail_label(key: str) -> str:
    """A ticket detail's name for people: ours, else the slot's label the bot collected it as."""
    return DETAIL_LABELS.get(key) or SLOT_LABELS.get(key, key).lower()


def _detail(value: Any) -> str:
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, list):
        return "; ".join(_detail(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{_detail_label(str(k))}: {_detail(v)}" for k, v in value.items())
    return str(value)


def row(t: Ticket, tz: tzinfo, now: datetime) -> dict[str, Any]:
    return {
        "number": t.number,
        "kind": t.kind,
        "kind_label": KIND_TITLES.get(t.kind, t.kind),
        "status": t.status,
        "status_label": STATUSES.get(TicketStatus(t.status), t.status)
        if t.status in tuple(TicketStatus)
        else t.status,
        "created": _when(t.created_at, tz),
        "due": _when(t.due_at, tz),
        "overdue": t.status == TicketStatus.OPEN and t.due_at < now,
        "resolved": _when(t.resolved_at, tz),
        "result": t.result or "",
        "conversation_id": t.conversation_id,
        "subscriber_id": t.subscriber_id,
        "link": quote(t.number, safe=""),
    }


async def _names(session: Any, tickets: list[Ticket]) -> dict[int, str]:
    """Subscriber id -> the name to show (their first channel account's, else display name)."""
    ids = {t.subscriber_id for t in tickets}
    if not ids:
        return {}
    subscribers = {
        s.id: s for s in await session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))
    }
    accounts: dict[int, ChannelAccount] = {}
    for a in await session.scalars(
        select(ChannelAccount)
        .where(ChannelAccount.subscriber_id.in_(ids))
        .order_by(ChannelAccount.id)
    ):
        accounts.setdefault(a.subscriber_id, a)
    return {i: person(accounts.get(i), subscribers.get(i)) for i in ids}  # fmt: skip


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if me(request).editor:
        return state.render(request, "error.html", status=403, message=NOT_FOR_EDITORS)
    tz, now = state.tz, utcnow()
    status = request.query.get("status", "open")
    kind = request.query.get("kind", "")
    overdue = request.query.get("overdue") == "1"
    raw_page = request.query.get("page", "1")
    page_no = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10**6 else 1
    if status not in ("", *TicketStatus):
        return state.render(
            request, "error.html", status=400, message=f"Нет статуса заявки «{status[:40]}»."
        )
    params = {"status": status, "kind": kind, "overdue": "1" if overdue else ""}
    params = {k: v for k, v in params.items() if v} | ({} if status else {"status": ""})

    def at(n: int) -> dict[str, str]:
        return params | ({"page": str(n)} if n > 1 else {})

    query = select(Ticket)
    if status:
        query = query.where(Ticket.status == status)
    if kind:
        query = query.where(Ticket.kind == kind)
    if overdue:
        query = query.where(Ticket.status == TicketStatus.OPEN, Ticket.due_at < now)
    async with state.db.session() as session:
        kinds = sorted(
            set(await session.scalars(select(Ticket.kind).distinct())) | set(KIND_TITLES)
        )
        late = int(
            await session.scalar(
                select(func.count()).where(Ticket.status == TicketStatus.OPEN, Ticket.due_at < now)
            )
            or 0
        )
        tickets, pager = await paged(
            session, query, (Ticket.due_at, Ticket.id), page=page_no, size=PAGE_SIZE, params=at
        )
        names = await _names(session, tickets)
    rows = [row(t, tz, now) | {"name": names.get(t.subscriber_id, "")} for t in tickets]
    return state.render(
        request,
        "tickets.html",
        rows=rows,
        form={"status": status, "kind": kind, "overdue": overdue},
        statuses=[(str(s), label) for s, label in STATUSES.items()],
        kinds=[(k, KIND_TITLES.get(k, k)) for k in kinds],
        late=late,
        pager=pager,
    )


async def _one(request: web.Request, *, error: str | None = None, status: int = 200,
               result: str = "") -> web.StreamResponse:  # fmt: skip
    state = console(request)
    if me(request).editor:
        return state.render(request, "error.html", status=403, message=NOT_FOR_EDITORS)
    number = request.match_info["number"]
    async with state.db.session() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        if ticket is None:
            return state.render(
                request, "error.html", status=404, message=f"Нет заявки «{number[:40]}»."
            )
        names = await _names(session, [ticket])
        conv = (
            await session.get(Conversation, ticket.conversation_id)
            if ticket.conversation_id
            else None
        )
    data = row(ticket, state.tz, utcnow()) | {"name": names.get(ticket.subscriber_id, "")}
    details = [
        {"label": _detail_label(k), "value": _detail(v)}
        for k, v in (ticket.details or {}).items()
        if v not in (None, "", [], {})
    ]
    return state.render(
        request,
        "ticket.html",
        status=status,
        t=data,
        details=details,
        channel=CHANNELS.get(conv.channel, conv.channel) if conv is not None else "",
        error=error,
        result=result,
    )


async def one(request: web.Request) -> web.StreamResponse:
    return await _one(request)


# What the subscriber-facing resolve path refuses, for operators.
REFUSALS = {
    404: "Такой заявки нет.",
    409: "Заявка уже закрыта (решена или отменена абонентом), либо абоненту сейчас некуда написать.",
}


async def resolve(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if who.editor:
        return state.render(request, "error.html", status=403, message=NOT_FOR_EDITORS)
    number = request.match_info["number"]
    form = await request.post()
    result = str(form.get("result") or "").strip()
    if not result:
        return await _one(
            request, error="Напишите итог: абонент получит его в сообщении.", status=400
        )
    if len(result) > 2000:
        return await _one(
            request, error="Итог длиннее 2000 символов.", status=400, result=result[:2000]
        )
    content = state.current_content
    if content is None:
        return await _one(request, error="Контент бота не загружен: сообщить абоненту нечем.",
                          status=503, result=result)  # fmt: skip
    try:
        done = await resolve_ticket(state.db, content, number, result)
    except TicketError as exc:
        message = REFUSALS.get(exc.status, "Заявку не удалось закрыть.")
        return await _one(request, error=message, status=exc.status, result=result)
    async with state.db.transaction() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        audit.record(
            session,
            "ticket_resolved",
            actor="operator",
            operator_id=who.id,
            subscriber_id=ticket.subscriber_id if ticket else None,
            conversation_id=ticket.conversation_id if ticket else None,
            ip=client_ip(request),
            details={"number": number, "channel": done.channel},
        )
    return web.Response(
        status=303, headers={"Location": f"{state.prefix}/tickets/{quote(number, safe='')}"}
    )


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app."""
    r.add_get("/tickets", page, name="tickets")
    r.add_get("/tickets/{number}", one, name="ticket")
    r.add_post("/tickets/{number}/resolve", resolve, name="ticket-resolve")
