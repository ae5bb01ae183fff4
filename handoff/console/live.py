"""Live updates for open console pages: `/console/ws` forwards the bus events that concern the
logged-in operator (chats of their groups, their own chats, their status; everything for
supervisors). An event only says "look again": the page re-fetches what changed.

The socket is authenticated by the session cookie (the guard middleware) and refused when the
browser says it was opened from another origin. A socket lives no longer than its session:
logging out, an admin disabling, removing or resetting the password of the account end its
sessions and publish a `session_ended` event, on which every console process re-checks its open
sockets at once and closes those whose session is gone (close code 4401: the page goes to the
login form). The same check runs every `RECHECK_SECONDS` anyway (one query per process, however
many sockets), which covers expiry and changes made where no event reaches this process (the
CLI without Redis). A changed role or groups (`session_changed`) closes the operator's sockets
with 4000: the page reconnects and gets events by the new ones.

Only ids travel over the socket (`FORWARDED`): the page re-reads the chat through the API, where
the role's masking (`handoff.console.privacy`) applies. Nothing is replayed here: when the socket
(re)connects the page re-reads what it shows and its operator's unread chats
(`handoff.console.unread`, kept on the server), so whatever happened while it was down shows up
and alerts then; an operator's `read` events reach only their own pages (and supervisors')."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, web
from sqlalchemy import select

from handoff import auth
from handoff.console.security import Me, me, same_origin
from handoff.console.state import CONSOLE, ApiError, Console, console
from handoff.events import Event
from storage.models import Conversation

log = logging.getLogger(__name__)
RECHECK_SECONDS = 5.0
# `incident` (a dict: id, action, area_title, source, reports) reaches supervisors only.
FORWARDED = ("type", "conversation_id", "operator_id", "status", "incident")
SESSION_GONE = 4401
RECONNECT = 4000
CONTROL = ("session_ended", "session_changed")  # for the sockets themselves, never forwarded


async def relevant(state: Console, who: Me, event: Event) -> bool:
    if who.supervisor:
        return True
    if event.get("operator_id") == who.id:
        return True
    if event.get("type") in ("operator", "read"):
        return False  # someone else's status or reading: only supervisors watch that
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
            kind = event.get("type")
            if kind in CONTROL:
                if kind == "session_ended":
                    state.recheck.set()
                elif event.get("operator_id") == who.id:
                    await ws.close(code=RECONNECT, message=b"role or groups changed")
                    return
                continue
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


async def recheck(state: Console) -> int:
    """Close the open sockets whose session is gone; how many were closed."""
    if not state.owners:
        return 0
    async with state.db.session() as session:
        alive = await auth.live_tokens(session, {who.token for who in state.owners.values()})
    closed = 0
    for ws, who in list(state.owners.items()):
        if who.token not in alive:
            state.owners.pop(ws, None)
            with contextlib.suppress(Exception):
                await ws.close(code=SESSION_GONE, message=b"session ended")
            closed += 1
    return closed


async def _sweep(state: Console) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.recheck.wait(), RECHECK_SECONDS)
        state.recheck.clear()
        try:
            await recheck(state)
        except Exception:  # a database hiccup: try again on the next round
            log.warning("console: could not re-check open sockets' sessions", exc_info=True)


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """The console app's cleanup context: one re-checking task per process."""
    task = asyncio.create_task(_sweep(app[CONSOLE]), name="console-ws-sessions")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
    state.owners[ws] = who
    tasks = [asyncio.create_task(_forward(state, who, ws), name="console-ws-forward")]
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
        state.owners.pop(ws, None)
    return ws


async def close_all(app: web.Application) -> None:
    """On shutdown: close open sockets so the server need not wait for the browsers."""
    for ws in list(app[CONSOLE].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
