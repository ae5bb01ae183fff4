"""The incident desk: detection from contacts, the `outage` flow action and its companions,
and supervisors' declare / update / close. See services/outages/__init__.py for the rules."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from dialogs.actions import Action, ActionContext
from dialogs.content import Response
from nlu.address import MAX_TITLE, Area, area_key, parse_area
from services.backend import Backend, BackendContext, BackendError, to_json
from services.notify import NotifyResult, notify
from services.outages.store import (
    COUNT_ONE_MORE,
    DEFAULT_RESOLUTION,
    INSERT_REPORT,
    MAX_TEXT,
    RECENT_REPORTS,
    SEEN_REPORT,
    SOURCE_DECLARED,
    SOURCE_DETECTED,
    IncidentError,
    detected_description,
    incident_event,
    incident_json,
    open_for,
    open_incident,
    subscribe,
    will_tell,
)
from storage.db import note_event
from storage.models import (
    Incident,
    IncidentStatus,
    IncidentSubscriber,
    OutageReport,
    Subscriber,
)


@dataclass(frozen=True, slots=True)
class Rules:
    """When contacts become an incident (`SUPPORTBOT_INCIDENTS__*`)."""

    threshold: int = 5  # distinct subscribers reporting one area ...
    window: timedelta = timedelta(minutes=15)  # ... within this long
    default_eta: timedelta = timedelta(hours=4)  # a detected incident's expected fix time


# --- areas ------------------------------------------------------------------------------------


async def _backend_area(backend: object | None, address: str) -> str | None:
    """The backend's own key for a typed address, if it offers `area_of(address)` (sync or
    async); None when it doesn't."""
    method = getattr(backend, "area_of", None)
    if method is None or not callable(method):
        return None
    found = method(address)
    if inspect.isawaitable(found):
        found = await found
    return str(found) if found else None


async def area_for(
    backend: object | None, address: str | None, customer: Mapping[str, Any] | None = None
) -> Area | None:
    """The area of a contact: the identified customer's `area` (unless they gave another
    address), else the typed address's (the backend's `area_of`, else `parse_area`)."""
    home = str(customer.get("address") or "") if customer else ""
    if customer and customer.get("area"):
        if not address or area_key(address) == area_key(home) or address == home:
            parsed = parse_area(home) if home else None
            key = str(customer["area"])
            return Area(key[:100], parsed.title if parsed else key.capitalize())
    if not address:
        return None
    parsed = parse_area(address)
    own = await _backend_area(backend, address)
    if own:
        return Area(own[:100], parsed.title if parsed else own.capitalize())
    return parsed


@dataclass(frozen=True, slots=True)
class Closed:
    incident: Incident
    told: NotifyResult  # wake the senders of `told.channels` after the commit


class Incidents:
    """The incident desk: detection rules plus the backend (for outages it knows and its area
    keys). One per app; the dialog engine, the console and the CLI use it."""

    def __init__(self, rules: Rules | None = None, backend: Backend | None = None) -> None:
        self.rules = rules or Rules()
        self.backend = backend

    async def area(
        self, address: str | None, customer: Mapping[str, Any] | None = None
    ) -> Area | None:
        return await area_for(self.backend, address, customer)

    # -- the `outage` flow action ---------------------------------------------------------

    async def check(
        self,
        ctx: BackendContext,
        *,
        address: str,
        customer: Mapping[str, Any] | None,
        problem: str,
        now: datetime,
    ) -> dict[str, Any] | None:
        """The outage at a subscriber's address, recording their contact: our open incident for
        the area (and they are subscribed to its closing notice), else the backend's outage, else
        None. A contact that makes the area cross the threshold opens an incident and gets it."""
        area = await self.area(address, customer)
        s = ctx.session
        incident = await open_for(s, area.key) if area else None
        fresh = (
            await self._report(s, ctx, area, problem, incident, now) if area is not None else False
        )
        if incident is None:
            outage = await self.backend.outage_at(ctx, address) if self.backend else None
            if outage is not None or area is None or not fresh:
                return to_json(outage)
            incident = await self._detect(s, area, now)
            if incident is None:
                return None
        await subscribe(s, incident.id, [ctx.subscriber_id], now)
        return {
            **incident_json(incident),
            "notify": await will_tell(s, incident.id, ctx.subscriber_id),
        }

    async def _report(
        self,
        s: AsyncSession,
        ctx: BackendContext,
        area: Area,
        problem: str,
        incident: Incident | None,
        now: datetime,
    ) -> bool:
        """Record the contact unless this subscriber reported this area within the window."""
        seen = await s.scalar(
            SEEN_REPORT,
            {
                "subscriber_id": ctx.subscriber_id,
                "area": area.key,
                "since": now - self.rules.window,
                "current": incident.id if incident else None,
            },
        )
        if seen is not None:
            return False
        await s.execute(
            INSERT_REPORT,
            {
                "subscriber_id": ctx.subscriber_id,
                "conversation_id": ctx.conversation_id,
                "area": area.key,
                "area_title": area.title,
                "problem": problem[:32],
                "incident_id": incident.id if incident else None,
                "at": now,
            },
        )
        if incident is not None:
            await s.execute(COUNT_ONE_MORE, {"incident_id": incident.id})
            set_committed_value(incident, "reports", incident.reports + 1)
        return True

    async def _detect(self, s: AsyncSession, area: Area, now: datetime) -> Incident | None:
        """Open an incident if enough distinct subscribers reported the area within the window."""
        since = now - self.rules.window
        rows = (await s.execute(RECENT_REPORTS, {"area": area.key, "since": since})).all()
        reporters = sorted({r[0] for r in rows})
        if len(reporters) < self.rules.threshold:
            return None
        incident, opened = await open_incident(
            s,
            {
                "area": area.key,
                "area_title": area.title,
                "source": SOURCE_DETECTED,
                "description": detected_description([r[1] for r in rows]),
                "eta": now + self.rules.default_eta,
                "opened_at": now,
                "reports": 0,
            },
        )
        linked = await s.execute(
            update(OutageReport)
            .where(
                OutageReport.area == area.key,
                OutageReport.at > since,
                OutageReport.incident_id.is_(None),
            )
            .values(incident_id=incident.id)
            .execution_options(synchronize_session=False)
        )
        await s.execute(
            update(Incident)
            .where(Incident.id == incident.id)
            .values(reports=Incident.reports + linked.rowcount)  # type: ignore[attr-defined]
            .execution_options(synchronize_session=False)
        )
        await subscribe(s, incident.id, reporters, now)
        await s.refresh(incident)
        if opened:
            note_event(s, incident_event(incident, "opened"))  # published after the commit
        return incident

    # -- supervisors ----------------------------------------------------------------------

    async def declare(
        self,
        session: AsyncSession,
        *,
        area: str,
        description: str,
        eta: datetime | None,
        operator_id: int | None,
        now: datetime,
    ) -> Incident:
        """A supervisor declares an outage in an area (a street as people write it). Raises
        IncidentError (409) if one is open there already."""
        where = await self.area(area.strip()[:MAX_TITLE])
        text = description.strip()
        if where is None:
            raise IncidentError(
                "the area must name a street or district, e.g. «Октябрьский бульвар»",
                400,
                "no_area",
            )
        if not text or len(text) > MAX_TEXT:
            raise IncidentError(
                f"the description must have 1 to {MAX_TEXT} characters", 400, "bad_text"
            )
        if eta is not None and eta <= now:
            raise IncidentError("the expected fix time (eta) must be in the future", 400, "bad_eta")
        incident, opened = await open_incident(
            session,
            {
                "area": where.key,
                "area_title": where.title,
                "source": SOURCE_DECLARED,
                "description": text,
                "eta": eta or now + self.rules.default_eta,
                "opened_at": now,
                "opened_by": operator_id,
                "reports": 0,
            },
        )
        if not opened:
            raise IncidentError(
                f"incident {incident.id} is already open in «{incident.area_title}»", 409, "open"
            )
        # Who reported this area within the window hears when it is fixed, too.
        since = now - self.rules.window
        recent = (
            OutageReport.area == where.key,
            OutageReport.at > since,
            OutageReport.incident_id.is_(None),
        )
        reporters = list(
            (await session.scalars(select(OutageReport.subscriber_id).where(*recent))).all()
        )
        await subscribe(session, incident.id, sorted(set(reporters)), now)
        linked = await session.execute(
            update(OutageReport)
            .where(*recent)
            .values(incident_id=incident.id)
            .execution_options(synchronize_session=False)
        )
        incident.reports = linked.rowcount  # type: ignore[attr-defined]
        await session.flush()
        note_event(session, incident_event(incident, "opened"))
        return incident

    async def update(
        self,
        session: AsyncSession,
        incident_id: int,
        *,
        description: str | None = None,
        eta: datetime | None = None,
        now: datetime,
    ) -> Incident:
        incident = await self._locked_open(session, incident_id)
        if description is not None:
            text = description.strip()
            if not text or len(text) > MAX_TEXT:
                raise IncidentError(
                    f"the description must have 1 to {MAX_TEXT} characters", 400, "bad_text"
                )
            incident.description = text
        if eta is not None:
            if eta <= now:
                raise IncidentError(
                    "the expected fix time (eta) must be in the future", 400, "bad_eta"
                )
            incident.eta = eta
        await session.flush()
        note_event(session, incident_event(incident, "updated"))
        return incident

    async def close(
        self,
        session: AsyncSession,
        incident_id: int,
        response: Response,
        *,
        resolution: str | None,
        operator_id: int | None,
        now: datetime,
    ) -> Closed:
        """Close it and queue `response` (content's `incident_closed`) for everyone subscribed
        who didn't say not to. Once: a second close is refused (409)."""
        text = (resolution or "").strip() or DEFAULT_RESOLUTION
        if len(text) > MAX_TEXT:
            raise IncidentError(f"the resolution is at most {MAX_TEXT} characters", 400, "bad_text")
        incident = await self._locked_open(session, incident_id)
        incident.status, incident.closed_at = IncidentStatus.CLOSED, now
        incident.closed_by, incident.resolution = operator_id, text
        told_ids = list(
            (
                await session.scalars(
                    select(IncidentSubscriber.subscriber_id).where(
                        IncidentSubscriber.incident_id == incident.id,
                        IncidentSubscriber.notify.is_(True),
                    )
                )
            ).all()
        )
        await session.flush()
        told = await notify(session, told_ids, response, {"outage": incident_json(incident)})
        await session.execute(
            update(IncidentSubscriber)
            .where(
                IncidentSubscriber.incident_id == incident.id,
                IncidentSubscriber.notify.is_(True),
            )
            .values(notified_at=now)
        )
        incident.notified = told.queued
        await session.flush()
        note_event(session, incident_event(incident, "closed"))
        return Closed(incident, told)

    async def _locked_open(self, session: AsyncSession, incident_id: int) -> Incident:
        incident = await session.scalar(
            select(Incident).where(Incident.id == incident_id).with_for_update()
        )
        if incident is None:
            raise IncidentError(f"no incident {incident_id}", 404, "no_incident")
        if incident.status != IncidentStatus.OPEN:
            raise IncidentError(f"incident {incident_id} is already closed", 409, "closed")
        return incident

    # -- the subscribers' own actions ------------------------------------------------------

    def actions(self) -> list[Action]:
        """The flow actions of outages and notifications, for the action registry."""

        async def outage(call: ActionContext) -> Any:
            customer = call.slots.get("customer")
            home = customer.get("address") if isinstance(customer, dict) else None
            address = call.slots.get("address") or home
            if not address:
                raise BackendError("no address to check for outages", "no_address")
            ctx = BackendContext(
                call.session, call.channel, call.subscriber_id, call.conversation_id
            )
            return await self.check(
                ctx,
                address=str(address),
                customer=customer if isinstance(customer, dict) else None,
                problem=call.topic,
                now=call.now,
            )

        async def mute(call: ActionContext) -> Any:
            return await self._mute(call.session, call.subscriber_id, call.slots)

        async def notifications_off(call: ActionContext) -> Any:
            return await self.notifications(call.session, call.subscriber_id, False, call.now)

        async def notifications_on(call: ActionContext) -> Any:
            return await self.notifications(call.session, call.subscriber_id, True, call.now)

        return [
            Action(
                "outage",
                outage,
                needs=("address",),
                doc="our open incident at the address (before any troubleshooting), else the "
                "backend's outage; the contact is counted for detection",
            ),
            Action("incident_mute", mute, doc="no closing notice for the outage told about"),
            Action("notifications_off", notifications_off, doc="no proactive messages at all"),
            Action("notifications_on", notifications_on, doc="proactive messages again"),
        ]

    async def notifications(
        self, session: AsyncSession, subscriber_id: int, on: bool, now: datetime
    ) -> dict[str, Any]:
        """Switch all proactive messages off or back on for a subscriber."""
        await session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id)
            .values(notifications_off_at=None if on else now)
            .execution_options(synchronize_session=False)
        )
        if on:  # back on: the outages they are waiting for count again
            await session.execute(
                update(IncidentSubscriber)
                .where(
                    IncidentSubscriber.subscriber_id == subscriber_id,
                    IncidentSubscriber.incident_id.in_(
                        select(Incident.id).where(Incident.status == IncidentStatus.OPEN)
                    ),
                )
                .values(notify=True)
                .execution_options(synchronize_session=False)
            )
        return {"off": not on}

    async def _mute(
        self, session: AsyncSession, subscriber_id: int, slots: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Not told when the outage they were told about is fixed (the latest one in this chat,
        else every open one they are subscribed to)."""
        told_about = slots.get("outage")
        target = told_about.get("incident") if isinstance(told_about, dict) else None
        query = (
            select(Incident)
            .join(IncidentSubscriber, IncidentSubscriber.incident_id == Incident.id)
            .where(
                IncidentSubscriber.subscriber_id == subscriber_id,
                Incident.status == IncidentStatus.OPEN,
            )
        )
        if isinstance(target, int):
            query = query.where(Incident.id == target)
        found = list((await session.scalars(query)).all())
        if not found:
            raise IncidentError("no open incident to mute", 404, "no_incident")
        await session.execute(
            update(IncidentSubscriber)
            .where(
                IncidentSubscriber.subscriber_id == subscriber_id,
                IncidentSubscriber.incident_id.in_([i.id for i in found]),
            )
            .values(notify=False)
            .execution_options(synchronize_session=False)
        )
        return {**incident_json(found[0]), "notify": False}
