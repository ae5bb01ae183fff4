"""Outage incidents in the database: reading them, and the small writes the desk composes
(open one per area, subscribe people to its end, the live event for consoles)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.actions import ActionError
from services.backend import to_json
from storage.models import (
    Base,
    Incident,
    IncidentStatus,
    IncidentSubscriber,
    OutageReport,
    Subscriber,
)
from storage.repo import dialect_insert

DEFAULT_RESOLUTION = "Всё починили — связь снова работает 🙌"
DETECTED_DESCRIPTION = {
    "internet_down": "Нет интернета у нескольких абонентов, уже разбираемся",
    "tv_down": "Не работает ТВ у нескольких абонентов, уже разбираемся",
}
SOURCE_DETECTED, SOURCE_DECLARED = "detected", "declared"
MAX_TEXT = 1000


class IncidentError(ActionError):
    """An incident action refused; `status` is the HTTP status the console answers with and
    `reason` what a flow can branch on (`error.reason`): no_incident, no_area, closed, bad_eta."""

    def __init__(self, message: str, status: int = 400, reason: str = "refused") -> None:
        super().__init__(message, reason)
        self.status = status


# --- reading ----------------------------------------------------------------------------------


def incident_json(incident: Incident) -> dict[str, Any]:
    """An incident as flows and notices see it (`outage.*` in content) and the console's API."""
    return {
        "incident": incident.id,
        "area": incident.area,
        "area_title": incident.area_title,
        "status": incident.status,
        "source": incident.source,
        "description": incident.description,
        "eta": to_json(incident.eta) if incident.eta else None,
        "reports": incident.reports,
        "opened_at": to_json(incident.opened_at),
        "closed_at": to_json(incident.closed_at) if incident.closed_at else None,
        "resolution": incident.resolution,
        "notified": incident.notified,
    }


# Hot-path statements (every outage check), built once: building SQL expressions costs more
# than running them on SQLite (bench/incidents.py).
_OPEN_FOR = select(Incident).where(
    Incident.area == bindparam("area"), Incident.status == IncidentStatus.OPEN
)
SEEN_REPORT = (  # this subscriber's report for the area in the window, not of an incident closed since
    select(OutageReport.id)
    .where(
        OutageReport.subscriber_id == bindparam("subscriber_id"),
        OutageReport.area == bindparam("area"),
        OutageReport.at > bindparam("since"),
        or_(OutageReport.incident_id.is_(None), OutageReport.incident_id == bindparam("current")),
    )
    .limit(1)
)
RECENT_REPORTS = select(OutageReport.subscriber_id, OutageReport.problem).where(
    OutageReport.area == bindparam("area"),
    OutageReport.at > bindparam("since"),
    OutageReport.incident_id.is_(None),  # a closed incident's reports don't open the next one
)
_REPORTS = Base.metadata.tables["outage_reports"]
INSERT_REPORT = _REPORTS.insert()
COUNT_ONE_MORE = (  # atomic: several processes count into one incident
    update(Base.metadata.tables["incidents"])
    .where(Incident.__table__.c.id == bindparam("incident_id"))
    .values(reports=Incident.__table__.c.reports + 1)
)
_SUBSCRIBE = {
    name: dialect.insert(IncidentSubscriber).on_conflict_do_nothing()
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_WILL_TELL = (
    select(IncidentSubscriber.notify, Subscriber.notifications_off_at)
    .join(Subscriber, Subscriber.id == IncidentSubscriber.subscriber_id)
    .where(
        IncidentSubscriber.incident_id == bindparam("incident_id"),
        IncidentSubscriber.subscriber_id == bindparam("subscriber_id"),
    )
)


async def open_for(session: AsyncSession, area: str) -> Incident | None:
    found: Incident | None = await session.scalar(_OPEN_FOR, {"area": area})
    return found


async def list_incidents(
    session: AsyncSession, *, status: str = IncidentStatus.OPEN, limit: int = 100
) -> list[Incident]:
    """Open incidents, newest first; or the most recently closed ones."""
    order = Incident.opened_at if status == IncidentStatus.OPEN else Incident.closed_at
    rows = await session.scalars(
        select(Incident)
        .where(Incident.status == status)
        .order_by(order.desc(), Incident.id.desc())
        .limit(limit)
    )
    return list(rows)


async def audience(session: AsyncSession, ids: list[int]) -> dict[int, tuple[int, int]]:
    """incident id -> (subscribers to tell when it closes, subscribers who said not to)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(IncidentSubscriber.incident_id, IncidentSubscriber.notify, func.count())
        .where(IncidentSubscriber.incident_id.in_(ids))
        .group_by(IncidentSubscriber.incident_id, IncidentSubscriber.notify)
    )
    out = {i: (0, 0) for i in ids}
    for incident_id, wants, count in rows:
        told, muted = out[incident_id]
        out[incident_id] = (told + count, muted) if wants else (told, muted + count)
    return out


# --- writing ----------------------------------------------------------------------------------


def incident_event(incident: Incident, action: str) -> dict[str, Any]:
    """A live event for consoles (handoff/console/live.py forwards `incident` to supervisors)."""
    return {
        "type": "incident",
        "incident": {
            "id": incident.id,
            "action": action,  # opened | updated | closed
            "area_title": incident.area_title,
            "source": incident.source,
            "reports": incident.reports,
        },
    }


async def open_incident(session: AsyncSession, values: dict[str, Any]) -> tuple[Incident, bool]:
    """Open an incident unless one is open in that area already: (the open one, opened now?).
    Two processes racing here meet at the partial unique index: the second insert does nothing
    (on PostgreSQL it waits for the first transaction), and the existing row is returned."""
    for _attempt in range(3):
        inserted = await session.scalar(
            dialect_insert(session, Incident)
            .values(status=IncidentStatus.OPEN, **values)
            .on_conflict_do_nothing()
            .returning(Incident.id)
        )
        if inserted is not None:
            incident = await session.get(Incident, inserted)
            assert incident is not None
            return incident, True
        existing = await open_for(session, values["area"])
        if existing is not None:
            return existing, False
    raise IncidentError(f"could not open an incident for {values['area']!r}", 409)


async def subscribe(
    session: AsyncSession, incident_id: int, subscriber_ids: list[int], now: datetime
) -> None:
    """Subscribe them to the closing notice; who is subscribed already keeps their choice."""
    rows = [
        {"incident_id": incident_id, "subscriber_id": s, "notify": True, "joined_at": now}
        for s in subscriber_ids
    ]
    if rows:
        await session.execute(_SUBSCRIBE[session.get_bind().dialect.name], rows)


async def will_tell(session: AsyncSession, incident_id: int, subscriber_id: int) -> bool:
    """Will this subscriber get the closing notice (subscribed, not muted, not opted out)?"""
    params = {"incident_id": incident_id, "subscriber_id": subscriber_id}
    row = (await session.execute(_WILL_TELL, params)).first()
    return row is not None and bool(row[0]) and row[1] is None


def detected_description(problems: list[str]) -> str:
    tv = sum(p == "tv_down" for p in problems)
    return DETECTED_DESCRIPTION["tv_down" if tv * 2 > len(problems) else "internet_down"]
