"""Incidents for supervisors: open outages (detected or declared), declare and close them; closing tells the affected subscribers.

Routes (supervisors only): `GET /incidents` (the page), `GET /api/incidents` (open ones and the
latest closed), `POST /api/incidents` (declare: area, description, eta), `POST
/api/incidents/{id}` (new eta / description), `POST /api/incidents/{id}/close` (resolution: the
text subscribers get in the content's `incident_closed`). The core is services/outages/; this
module parses requests, commits, then wakes the outbox senders and publishes the live event.
An ETA without a timezone is in the line's timezone (`SUPPORTBOT_HANDOFF__TIMEZONE`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.console.security import me
from handoff.console.state import ApiError, Console, console, json_body, supervisor
from services.outages import (
    IncidentError,
    Incidents,
    audience,
    incident_json,
    list_incidents,
)
from storage.models import Incident, IncidentStatus, Operator, utcnow

# The app's incident desk (rules, backend), set on the root aiohttp app by supportbot/app.py;
# a console mounted without it uses the default rules and the street-level area rule.
INCIDENTS = web.AppKey("incidents", Incidents)
SOURCE_LABELS = {"detected": "обнаружена автоматически", "declared": "объявлена вручную"}
RECENT_CLOSED = 20


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
    r.add_get("/incidents", page, name="incidents")
    r.add_get("/api/incidents", list_api, name="api:incidents")
    r.add_post("/api/incidents", declare, name="api:incidents-declare")
    r.add_post(r"/api/incidents/{id:\d+}", change, name="api:incidents-update")
    r.add_post(r"/api/incidents/{id:\d+}/close", close, name="api:incidents-close")


def desk(request: web.Request) -> Incidents:
    found = request.config_dict.get(INCIDENTS)
    return found if found is not None else Incidents()


def _local(value: datetime | None, tz: ZoneInfo, fmt: str = "%d.%m %H:%M") -> str | None:
    return value.astimezone(tz).strftime(fmt) if value is not None else None


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Operator.id, Operator.name).where(Operator.id.in_(ids)))
    return {i: n for i, n in rows}


async def incidents_view(
    session: AsyncSession, tz: ZoneInfo, rules_eta: timedelta
) -> dict[str, Any]:
    """What the page and `GET /api/incidents` show."""
    opened = await list_incidents(session)
    closed = await list_incidents(session, status=IncidentStatus.CLOSED, limit=RECENT_CLOSED)
    counts = await audience(session, [i.id for i in opened + closed])
    people = {i.opened_by for i in opened + closed if i.opened_by} | {
        i.closed_by for i in closed if i.closed_by
    }
    names = await _names(session, people)

    def one(i: Incident) -> dict[str, Any]:
        told, muted = counts.get(i.id, (0, 0))
        return {
            **incident_json(i),
            "id": i.id,
            "source_label": SOURCE_LABELS.get(i.source, i.source),
            "subscribers": told,
            "muted": muted,
            "eta_local": _local(i.eta, tz),
            "eta_input": _local(i.eta, tz, "%Y-%m-%dT%H:%M"),
            "opened_local": _local(i.opened_at, tz),
            "closed_local": _local(i.closed_at, tz),
            "opened_by_name": names.get(i.opened_by) if i.opened_by else None,
            "closed_by_name": names.get(i.closed_by) if i.closed_by else None,
        }

    return {
        "open": [one(i) for i in opened],
        "closed": [one(i) for i in closed],
        "default_eta_hours": round(rules_eta.total_seconds() / 3600, 1),
    }


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        return state.render(
            request, "error.html", status=403, message="Эта страница — для супервизоров."
        )
    async with state.db.session() as session:
        data = await incidents_view(session, state.tz, desk(request).rules.default_eta)
    return state.render(request, "incidents.html", data=data)


async def list_api(request: web.Request) -> web.Response:
    state = console(request)
    supervisor(request)
    async with state.db.session() as session:
        data = await incidents_view(session, state.tz, desk(request).rules.default_eta)
    return web.json_response(data)


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(f"{key} must be text")
    return value


def _eta(body: dict[str, Any], tz: ZoneInfo) -> datetime | None:
    """`eta`: ISO date and time ("2026-11-22T18:30", zone optional: the line's), or empty."""
    raw = _text(body, "eta")
    if not raw or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise ApiError("eta must be a date and time like 2026-11-22T18:30") from exc
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


async def _one(
    state: Console, session: AsyncSession, incident: Incident, request: web.Request
) -> dict[str, Any]:
    data = await incidents_view(session, state.tz, desk(request).rules.default_eta)
    found = next((i for i in data["open"] + data["closed"] if i["id"] == incident.id), None)
    return found or {**incident_json(incident), "id": incident.id}


async def declare(request: web.Request) -> web.Response:
    state = console(request)
    who = supervisor(request)
    body = await json_body(request)
    try:
        async with state.db.session() as session:
            async with session.begin():
                incident = await desk(request).declare(
                    session,
                    area=_text(body, "area") or "",
                    description=_text(body, "description") or "",
                    eta=_eta(body, state.tz),
                    operator_id=who.id,
                    now=utcnow(),
                )
            state.db.after_commit(session)  # senders wake, consoles hear
            return web.json_response(await _one(state, session, incident, request), status=201)
    except IncidentError as exc:
        raise ApiError(str(exc), exc.status) from exc


async def change(request: web.Request) -> web.Response:
    state = console(request)
    supervisor(request)
    body = await json_body(request)
    try:
        async with state.db.session() as session:
            async with session.begin():
                incident = await desk(request).update(
                    session,
                    int(request.match_info["id"]),
                    description=_text(body, "description") or None,
                    eta=_eta(body, state.tz),
                    now=utcnow(),
                )
            state.db.after_commit(session)  # senders wake, consoles hear
            return web.json_response(await _one(state, session, incident, request))
    except IncidentError as exc:
        raise ApiError(str(exc), exc.status) from exc


async def close(request: web.Request) -> web.Response:
    state = console(request)
    who = supervisor(request)
    body = await json_body(request)
    content = state.current_content
    if content is None:
        raise ApiError("the bot's content is not loaded: nothing to send", 503)
    try:
        async with state.db.session() as session:
            async with session.begin():
                done = await desk(request).close(
                    session,
                    int(request.match_info["id"]),
                    content.responses["incident_closed"],
                    resolution=_text(body, "resolution"),
                    operator_id=who.id,
                    now=utcnow(),
                )
            state.db.after_commit(session)  # senders wake, consoles hear
            data = await _one(state, session, done.incident, request)
    except IncidentError as exc:
        raise ApiError(str(exc), exc.status) from exc
    told = done.told
    return web.json_response(
        {
            **data,
            "queued": told.queued,
            "opted_out": told.opted_out,
            "unreachable": told.unreachable,
        }
    )
