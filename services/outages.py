"""Outage incidents: contacts about no internet / no TV grouped by area, detected, declared, closed.

- **Area**: where a contact comes from. The backend's `Customer.area` when the subscriber is
  identified (and didn't give another address), else the key of the address they typed: the
  backend's optional `area_of(address)` method when it has one (so typed addresses land on the
  same keys as its customers), else `area_key` below, a street-level rule.
- **Reports**: every outage check in a flow (`call: outage`, from internet_down, tv_down,
  technician_visit) records an `OutageReport`, at most one per subscriber per area per window.
- **Detection**: when `Rules.threshold` distinct subscribers reported one area within
  `Rules.window` and no incident is open there (and the backend knows of no outage there), an
  `Incident` opens (source "detected", ETA now + `Rules.default_eta`), every one of those
  reporters is subscribed to its closing notice, and a live event alerts supervisors. The
  partial unique index `uq_incidents_open_area` keeps it to one open incident per area even when
  two app processes cross the threshold at once: the insert is `ON CONFLICT DO NOTHING`, and
  the loser takes the winner's row.
- **While open**, the `outage` action answers with the incident (before any troubleshooting) and
  subscribes the subscriber; `incident_mute` unsubscribes them ("🔕 Не сообщать"), and
  `notifications_off` / `notifications_on` switch all proactive messages off and on.
- **Closing** (a supervisor in the console, or the CLI) sends the content's `incident_closed`
  response to every subscriber still subscribed, once, through `services.notify` and the outbox.

Nothing here commits: callers own the transaction (the pipeline's, the console's, the CLI's).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from dialogs.actions import Action, ActionContext, ActionError
from dialogs.content import Response
from services.backend import Backend, BackendContext, BackendError, to_json
from storage.db import note_event
from storage.models import (
    Base,
    Incident,
    IncidentStatus,
    IncidentSubscriber,
    OutageReport,
    Subscriber,
)
from storage.repo import _insert  # INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL

if TYPE_CHECKING:  # services.notify renders with dialogs.engine, which uses this module
    from services.notify import NotifyResult

DEFAULT_RESOLUTION = "Всё починили — связь снова работает 🙌"
DETECTED_DESCRIPTION = {
    "internet_down": "Нет интернета у нескольких абонентов, уже разбираемся",
    "tv_down": "Не работает ТВ у нескольких абонентов, уже разбираемся",
}
SOURCE_DETECTED, SOURCE_DECLARED = "detected", "declared"
MAX_TITLE, MAX_TEXT = 200, 1000


@dataclass(frozen=True, slots=True)
class Rules:
    """When contacts become an incident (`SUPPORTBOT_INCIDENTS__*`)."""

    threshold: int = 5  # distinct subscribers reporting one area ...
    window: timedelta = timedelta(minutes=15)  # ... within this long
    default_eta: timedelta = timedelta(hours=4)  # a detected incident's expected fix time


@dataclass(frozen=True, slots=True)
class Area:
    key: str  # what contacts are grouped by: "октябрьский"
    title: str  # as people write it: "Октябрьский бульвар"


class IncidentError(ActionError):
    """An incident action refused; `status` is the HTTP status the console answers with and
    `reason` what a flow can branch on (`error.reason`): no_incident, no_area, closed, bad_eta."""

    def __init__(self, message: str, status: int = 400, reason: str = "refused") -> None:
        super().__init__(message, reason)
        self.status = status


# --- areas ------------------------------------------------------------------------------------

_SEGMENTS = re.compile(r"[,;\n]+")
_TOKEN = re.compile(r"[\w]+(?:[-/][\w]+)*\.?")
_ORDINAL = re.compile(r"\d+-?(?:й|я|е|ый|ий|ой|ая|ье|го)")  # "1-я Советская" keeps its "1-я"
STREET_TYPES = frozenset(
    "ул улица пр пр-т пр-кт просп проспект б-р бул бульв бульвар пер переулок ш шоссе наб "
    "набережная пл площадь аллея ал проезд пр-д туп тупик линия мкр мкрн микрорайон кв-л "
    "квартал тракт".split()
)
_HOUSE = frozenset(
    "д дом кв квартира корп корпус к стр строение лит литера под подъезд эт этаж оф офис".split()
)
# Place words (and the reference deployment's towns): a segment of only these is no street.
_PLACE = frozenset(
    "г гор город пос поселок п пгт с село дер деревня обл область р-н район россия рф "
    "пушкин царское спб санкт-петербург петербург питер москва".split()
)
_FILLER = frozenset("на в по у адрес адресу дома около возле".split())


def _words(segment: str) -> tuple[list[str], list[str], bool, bool]:
    """(key words, title words, has a street type, has a house number) of one address segment."""
    key: list[str] = []
    title: list[str] = []
    typed = numbered = False
    for raw in _TOKEN.findall(segment):
        word = raw.rstrip(".")
        low = word.lower().replace("ё", "е")
        if any(c.isdigit() for c in low) and not _ORDINAL.fullmatch(low):
            numbered = True
            continue
        if low in STREET_TYPES:
            typed = True
            title.append(raw)
            continue
        if low in _HOUSE or low in _PLACE or low in _FILLER or len(low) < 2:
            continue
        title.append(word if key else word[:1].upper() + word[1:])  # a name starts capitalised
        key.append(low)
    return key, title, typed, numbered


def parse_area(address: str) -> Area | None:
    """The area of a free-form Russian address: its street, without house, flat or town.

    The rule: split the address at commas; take the part with a street type (ул., б-р,
    проспект, ...), else the part with the house number, else the part before a lone house
    number, else the last part with words. Its key is its words in lower case with ё as е,
    without the street type, numbers (but "1-я") and town names. So "Пушкин, Октябрьский бульвар,
    д. 20, кв. 14", "Октябрьский бульвар 20, кв 5" and "октябрьский б-р, 14" are all
    "октябрьский" (titled "Октябрьский бульвар"), and "ул. Садовая, 12" is "садовая".
    Known limits: inflected forms differ ("на Садовой" is not "садовая"), and two streets that
    differ only in type ("Ленинский пр." and "Ленинский пер.") are one area."""
    parts = [_words(s) for s in _SEGMENTS.split(address)]
    named = [i for i, p in enumerate(parts) if p[0]]
    if not named:
        return None
    pick = next((i for i in named if parts[i][2]), None)
    if pick is None:
        pick = next((i for i in named if parts[i][3]), None)
    if pick is None:
        lone = next((i for i, p in enumerate(parts) if p[3] and not p[0]), None)
        before = [i for i in named if lone is not None and i < lone]
        pick = before[-1] if before else named[-1]
    key, title, _typed, _numbered = parts[pick]
    return Area(" ".join(key)[:100], " ".join(title)[:MAX_TITLE])


def area_key(address: str) -> str | None:
    found = parse_area(address)
    return found.key if found else None


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
_SEEN = (  # this subscriber's report for the area in the window, not of an incident closed since
    select(OutageReport.id)
    .where(
        OutageReport.subscriber_id == bindparam("subscriber_id"),
        OutageReport.area == bindparam("area"),
        OutageReport.at > bindparam("since"),
        or_(OutageReport.incident_id.is_(None), OutageReport.incident_id == bindparam("current")),
    )
    .limit(1)
)
_RECENT = select(OutageReport.subscriber_id, OutageReport.problem).where(
    OutageReport.area == bindparam("area"),
    OutageReport.at > bindparam("since"),
    OutageReport.incident_id.is_(None),  # a closed incident's reports don't open the next one
)
_REPORTS = Base.metadata.tables["outage_reports"]
_REPORT = _REPORTS.insert()
_COUNT_ONE_MORE = (  # atomic: several processes count into one incident
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


def _event(incident: Incident, action: str) -> dict[str, Any]:
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


async def _open(session: AsyncSession, values: dict[str, Any]) -> tuple[Incident, bool]:
    """Open an incident unless one is open in that area already: (the open one, opened now?).
    Two processes racing here meet at the partial unique index: the second insert does nothing
    (on PostgreSQL it waits for the first transaction), and the existing row is returned."""
    for _attempt in range(3):
        inserted = await session.scalar(
            _insert(session, Incident)
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


async def _subscribe(
    session: AsyncSession, incident_id: int, subscriber_ids: list[int], now: datetime
) -> None:
    """Subscribe them to the closing notice; who is subscribed already keeps their choice."""
    rows = [
        {"incident_id": incident_id, "subscriber_id": s, "notify": True, "joined_at": now}
        for s in subscriber_ids
    ]
    if rows:
        await session.execute(_SUBSCRIBE[session.get_bind().dialect.name], rows)


async def _will_tell(session: AsyncSession, incident_id: int, subscriber_id: int) -> bool:
    """Will this subscriber get the closing notice (subscribed, not muted, not opted out)?"""
    params = {"incident_id": incident_id, "subscriber_id": subscriber_id}
    row = (await session.execute(_WILL_TELL, params)).first()
    return row is not None and bool(row[0]) and row[1] is None


def _description(problems: list[str]) -> str:
    tv = sum(p == "tv_down" for p in problems)
    return DETECTED_DESCRIPTION["tv_down" if tv * 2 > len(problems) else "internet_down"]


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
        await _subscribe(s, incident.id, [ctx.subscriber_id], now)
        return {
            **incident_json(incident),
            "notify": await _will_tell(s, incident.id, ctx.subscriber_id),
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
            _SEEN,
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
            _REPORT,
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
            await s.execute(_COUNT_ONE_MORE, {"incident_id": incident.id})
            set_committed_value(incident, "reports", incident.reports + 1)
        return True

    async def _detect(self, s: AsyncSession, area: Area, now: datetime) -> Incident | None:
        """Open an incident if enough distinct subscribers reported the area within the window."""
        since = now - self.rules.window
        rows = (await s.execute(_RECENT, {"area": area.key, "since": since})).all()
        reporters = sorted({r[0] for r in rows})
        if len(reporters) < self.rules.threshold:
            return None
        incident, opened = await _open(
            s,
            {
                "area": area.key,
                "area_title": area.title,
                "source": SOURCE_DETECTED,
                "description": _description([r[1] for r in rows]),
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
        await _subscribe(s, incident.id, reporters, now)
        await s.refresh(incident)
        if opened:
            note_event(s, _event(incident, "opened"))  # published after the commit
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
        incident, opened = await _open(
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
        await _subscribe(session, incident.id, sorted(set(reporters)), now)
        linked = await session.execute(
            update(OutageReport)
            .where(*recent)
            .values(incident_id=incident.id)
            .execution_options(synchronize_session=False)
        )
        incident.reports = linked.rowcount  # type: ignore[attr-defined]
        await session.flush()
        note_event(session, _event(incident, "opened"))
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
        note_event(session, _event(incident, "updated"))
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
        from services.notify import notify  # see the TYPE_CHECKING import above

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
        note_event(session, _event(incident, "closed"))
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


__all__ = [
    "Area",
    "Closed",
    "IncidentError",
    "Incidents",
    "Rules",
    "area_for",
    "area_key",
    "audience",
    "incident_json",
    "list_incidents",
    "open_for",
    "parse_area",
]
