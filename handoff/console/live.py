"""Live updates for open console pages: `/console/ws` forwards the bus events that concern the
logged-in operator (chats of their groups, their own chats, their status; everything for
supervisors). An event only says "look again": the page re-fetches what changed.

The socket is authenticated by the session cookie (the guard middleware) and refused when the
browser says it was opened from another origin; the session is re-checked every minute, so a
logout or expiry closes open sockets too (close code 4401)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSCloseCode, web
from sqlalchemy import select

from handoff.console.security import Me, me, operator_for_token, same_origin
from handoff.console.state import CONSOLE, ApiError, Console, console
from handoff.events import Event
from storage.models import Conversation

log = logging.getLogger(__name__)
RECHECK_SECONDS = 60.0
# `incident` (a dict: id, action, area_title, source, reports) reaches supervisors only.
FORWARDED = ("type", "conversation_id", "operator_id", "status", "incident")
SESSION_GONE = 4401


async def relevant(state: Console, who: Me, event: Event) -> bool:
    if who.supervisor:
        return True
    if event.get("operator_id") == who.id:
        return True
    if event.get("type") == "operator":
        return False  # someone else's status: only supervisors watch that
    conv_id = event.get("conversation_id")
    if not isinstance(conv_id, int):
        return False
    async with state.db.session() as session:
        row = (
            await session.execute(
                select(Conversation.skill_group, Conversation.operator_id).where(
                    Conversation.id == conv_id
                )
            )
        ).first()
    if row is None:
        return False
    group, operator_id = row
    return operator_id == who.id or group in who.groups


async def _forward(state: Console, who: Me, ws: web.WebSocketResponse) -> None:
    try:
        async for event in state.bus.subscribe():
            try:
                if not await relevant(state, who, event):
                    continue
            except Exception:  # a database hiccup: tell the page to look anyway
                log.warning("console: could not check an event's relevance", exc_info=True)
            slim: dict[str, Any] = {k: event[k] for k in FORWARDED if k in event}
            await ws.send_json(slim)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the socket broke: close it, the page reconnects and re-reads
        log.info("console: live socket ended (%s)", exc)
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.INTERNAL_ERROR)


async def _watch_session(state: Console, who: Me, ws: web.WebSocketResponse) -> None:
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        if await operator_for_token(state.db, who.token) is None:
            await ws.close(code=SESSION_GONE, message=b"session ended")
            return


async def socket(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if who.editor:
        raise ApiError("editors have no access to chats", 403)
    if not same_origin(request):
        raise ApiError("cross-origin WebSocket refused", 403)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    state.sockets.add(ws)
    tasks = [
        asyncio.create_task(_forward(state, who, ws), name="console-ws-forward"),
        asyncio.create_task(_watch_session(state, who, ws), name="console-ws-session"),
    ]
    try:
        await ws.send_json({"type": "hello"})
        async for _message in ws:  # the page sends nothing we need; this waits for the close
            pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        state.sockets.discard(ws)
    return ws


async def close_all(app: web.Application) -> None:
    """On shutdown: close open sockets so the server need not wait for the browsers."""
    for ws in list(app[CONSOLE].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
