"""Failures for supervisors ("Сбои"): what the bot could not do for good, so nobody's message
disappears silently.

Two lists: dead letters (subscriber updates that hit a bug or data the database refused: the
subscriber got an apology, the update is kept here; delivery/ and dialogs/pipeline.py decide
what is permanent) and failed outgoing messages (the platform refused them, or sending gave up
after its retries). A supervisor sends a failed message again or marks a dead letter as dealt
with. Routes (supervisors only, plain HTML forms): `GET /failures`,
`POST /failures/outbox/{id}/retry`, `POST /failures/dead/{id}/resolve`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select, update

from handoff.console.security import me
from handoff.console.state import console
from storage.db import note_wake
from storage.models import DeadLetter, OutboxItem, OutboxStatus, utcnow

FOR_SUPERVISORS = "Сбои — для супервизоров."
SHOWN = 100  # newest rows of each list


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app."""
    r.add_get("/failures", page, name="failures")
    r.add_post(r"/failures/outbox/{id:\d+}/retry", retry, name="failures-retry")
    r.add_post(r"/failures/dead/{id:\d+}/resolve", resolve, name="failures-resolve")


def _text(body: dict[str, Any]) -> str:
    text = body.get("text") or body.get("caption") or ""
    return text if text else ("[картинка]" if body.get("image") else "[стикер или кнопки]")


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        return state.render(request, "error.html", status=403, message=FOR_SUPERVISORS)
    tz = state.tz
    async with state.db.session() as session:
        letters = (
            await session.scalars(
                select(DeadLetter)
                .where(DeadLetter.resolved_at.is_(None))
                .order_by(DeadLetter.id.desc())
                .limit(SHOWN)
            )
        ).all()
        failed = (
            await session.scalars(
                select(OutboxItem)
                .where(OutboxItem.status == OutboxStatus.FAILED)
                .order_by(OutboxItem.id.desc())
                .limit(SHOWN)
            )
        ).all()
        totals = {
            "dead": await session.scalar(
                select(func.count()).where(DeadLetter.resolved_at.is_(None))
            ),
            "failed": await session.scalar(
                select(func.count()).where(OutboxItem.status == OutboxStatus.FAILED)
            ),
        }
    return state.render(
        request,
        "failures.html",
        totals=totals,
        letters=[
            {
                "id": d.id,
                "time": d.created_at.astimezone(tz).strftime("%d.%m %H:%M"),
                "channel": d.channel,
                "chat": d.chat_id,
                "conversation_id": d.conversation_id,
                "text": (d.text or "")[:300],
                "error": d.error.splitlines()[-1][:300] if d.error else "",
            }
            for d in letters
        ],
        failed=[
            {
                "id": o.id,
                "time": o.created_at.astimezone(tz).strftime("%d.%m %H:%M"),
                "channel": o.channel,
                "chat": o.chat_id,
                "text": _text(o.body)[:300],
                "error": (o.last_error or "")[:300],
                "attempts": o.attempts,
            }
            for o in failed
        ],
    )


def _back(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": f"{console(request).prefix}/failures"})


async def retry(request: web.Request) -> web.StreamResponse:
    """Send a failed message again: pending, from the part where it stopped."""
    state = console(request)
    if not me(request).supervisor:
        return state.render(request, "error.html", status=403, message=FOR_SUPERVISORS)
    row_id = int(request.match_info["id"])
    async with state.db.transaction() as session:
        channel = await session.scalar(
            update(OutboxItem)
            .where(OutboxItem.id == row_id, OutboxItem.status == OutboxStatus.FAILED)
            .values(status=OutboxStatus.PENDING, attempts=0, not_before=utcnow())
            .returning(OutboxItem.channel)
        )
        if channel is not None:
            note_wake(session, channel)
    return _back(request)


async def resolve(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        return state.render(request, "error.html", status=403, message=FOR_SUPERVISORS)
    async with state.db.transaction() as session:
        await session.execute(
            update(DeadLetter)
            .where(DeadLetter.id == int(request.match_info["id"]))
            .values(resolved_at=utcnow())
        )
    return _back(request)
