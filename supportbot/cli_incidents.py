"""`supportbot incidents list|declare|close`: outage incidents from the command line.

Closing queues the content's `incident_closed` message for every subscriber concerned; a running
app's outbox workers pick it up (they poll), at the platforms' rate limits. With
`SUPPORTBOT_HANDOFF__REDIS_URL` set, open consoles hear of the change at once.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.backend import load_backend
from supportbot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from storage.db import Database


def add_incident_commands(sub: Any) -> None:
    inc = sub.add_parser("incidents", help="outage incidents: list, declare, close")
    i_sub = inc.add_subparsers(title="incidents commands", metavar="INCIDENTS_COMMAND")
    ls = i_sub.add_parser("list", help="print open incidents (and recently closed with --all)")
    ls.add_argument("--all", action="store_true", help="also the 20 most recently closed")
    ls.set_defaults(func=_list)
    dec = i_sub.add_parser("declare", help="declare an outage in an area (a street)")
    dec.add_argument("area", help="as people write it: «Октябрьский бульвар»")
    dec.add_argument(
        "description", help="what subscribers are told: «Обрыв кабеля, бригада на месте»"
    )
    dec.add_argument(
        "--eta-hours",
        type=float,
        default=None,
        help="expected fix in hours (default: SUPPORTBOT_INCIDENTS__DEFAULT_ETA)",
    )
    dec.set_defaults(func=_declare)
    close = i_sub.add_parser("close", help="close an incident and tell its subscribers")
    close.add_argument("id", type=int)
    close.add_argument("resolution", nargs="?", default=None, help="what subscribers are told")
    close.set_defaults(func=_close)


def _desk(settings: Settings) -> Any:
    from services.outages import Incidents, Rules

    try:
        backend = load_backend(settings.backend)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return Incidents(Rules(**settings.incidents.model_dump()), backend)


async def _database(settings: Settings) -> Database:
    """The database, migrated (like `supportbot run` does at start)."""
    from storage import migrate
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
    except OSError as exc:
        await db.dispose()
        raise ConfigError(f"SUPPORTBOT_DATABASE_URL: cannot connect: {exc}") from exc
    return db


async def _publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Tell open consoles (only possible across processes through Redis)."""
    if not settings.handoff.redis_url or not events:
        return
    from handoff.events import make_bus, redis_prefix

    prefix = redis_prefix(settings.database_url, settings.handoff.redis_prefix)
    bus = make_bus(settings.handoff.redis_url, prefix)
    await bus.start()
    try:
        for event in events:
            bus.publish(event)
    finally:
        await bus.close()


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    from services.outages import audience, list_incidents
    from storage.models import IncidentStatus

    db = await _database(settings)
    try:
        async with db.session() as s:
            found = await list_incidents(s)
            if args.all:
                found += await list_incidents(s, status=IncidentStatus.CLOSED, limit=20)
            counts = await audience(s, [i.id for i in found])
    finally:
        await db.dispose()
    for i in found:
        told, muted = counts.get(i.id, (0, 0))
        eta = f"{i.eta:%Y-%m-%d %H:%M}Z" if i.eta else "-"
        print(
            f"{i.id}\t{i.status}\t{i.source}\t{i.area_title} [{i.area}]\treports {i.reports}\t"
            f"to tell {told} (muted {muted})\teta {eta}\t{i.description}"
        )
    if not found:
        print("no incidents" if args.all else "no open incidents")
    return 0


async def _declare(settings: Settings, args: argparse.Namespace) -> int:
    from services.outages import IncidentError
    from storage.models import utcnow

    now = utcnow()
    eta = now + timedelta(hours=args.eta_hours) if args.eta_hours is not None else None
    db = await _database(settings)
    events: list[dict[str, Any]] = []
    db.on_commit(publish=events.append)  # handed to the consoles below, through Redis
    try:
        async with db.transaction() as s:
            made = await _desk(settings).declare(
                s,
                area=args.area,
                description=args.description,
                eta=eta,
                operator_id=None,
                now=now,
            )
    except IncidentError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    await _publish(settings, events)
    print(
        f"incident {made.id} open: {made.area_title} [{made.area}], eta {made.eta:%Y-%m-%d %H:%M}Z"
    )
    return 0


async def _close(settings: Settings, args: argparse.Namespace) -> int:
    from services.outages import IncidentError
    from storage.models import utcnow
    from supportbot.content_setup import configured_content

    content = configured_content(settings)
    db = await _database(settings)
    events: list[dict[str, Any]] = []
    db.on_commit(publish=events.append)  # handed to the consoles below, through Redis
    try:
        async with db.transaction() as s:
            done = await _desk(settings).close(
                s,
                args.id,
                content.responses["incident_closed"],
                resolution=args.resolution,
                operator_id=None,
                now=utcnow(),
            )
    except IncidentError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    await _publish(settings, events)
    told = done.told
    print(
        f"incident {args.id} closed; queued {told.queued} messages "
        f"({told.opted_out} opted out, {told.unreachable} unreachable)"
    )
    return 0
