"""The sandbox web app: an aiohttp sub-application to mount with
`web_app.add_subapp("/sandbox", sandbox_app(...))` before the server starts.

Routes (relative to the mount point):

    GET  /                          the page (static/index.html; JS and CSS in static/)
    GET  /static/{file}             sandbox.js, sandbox.css
    GET  /api/state                 both panes: subscriber, bubbles with authors and causes
    POST /api/{channel}/send        {"text": "..."}   the subscriber writes
    POST /api/{channel}/start       {}                the platform's Start (/start, «Начать»)
    POST /api/{channel}/press       {"press": {...}}  a button of a bot message is pressed
    POST /api/{channel}/photo       {}                a test photo
    POST /api/{channel}/sticker     {}                a test sticker
    POST /api/{channel}/contact     {"phone": "+7...", "own": true}
                                                      share a contact (Telegram only): the
                                                      subscriber's own number, or (own: false)
                                                      somebody else's from the phone book
    POST /api/{channel}/reply       {"text": "..."}   tap a reply keyboard's text button
                                                      (Telegram only)
    POST /api/{channel}/new         {}                a new subscriber (fresh user id)
    GET  /media/{channel}/{user}/{ref}                a picture the bot sent
    GET  /sms[?phone=+7...&limit=N] the demo's SMS, newest first:
                                    [{"phone": ..., "text": ..., "at": ISO 8601}]

`channel` is `telegram` or `vk`. No login (the local demo only); POSTs must be JSON from this
origin, so another web site open in the same browser cannot drive the sandbox. Every response
carries the console's hardening headers (a strict Content-Security-Policy: no inline script;
the page inserts all text with textContent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from dialogs.limits import MAX_TEXT
from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from handoff.console.security import HARDENING, same_origin
from nlu.phones import normalise_phone
from storage.db import Database
from storage.models import ChannelAccount
from supportbot.sandbox.notes import notes_for
from supportbot.sandbox.panes import Pane, PressError, TelegramPane, VKPane
from supportbot.sandbox.sms import SMS_LIMIT, SMS_SHOWN, newest_sms

# Served from next to this file: works in a checkout and an editable install. A wheel needs
# pyproject's package-data to list `supportbot = ["sandbox/static/*"]`.
STATIC = Path(__file__).resolve().parent / "static"
FIRST_USER_ID = {"telegram": 1001, "vk": 2001}
AUTHOR_LABELS = {"bot": "🤖 бот", "operator": "👩‍💻 оператор", "system": "⚙️ система"}
IMAGE_TYPES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Sandbox:
    db: Database
    panes: dict[str, Pane]
    info: dict[str, Any]
    prefix: str
    users: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def user(self, channel: str) -> int:
        """The pane's current subscriber; the first time, one the database has never seen (the
        demo database outlives the emulators, and an old chat may be queued or half-way)."""
        async with self.lock:
            if channel not in self.users:
                await self._fresh(channel)
            return self.users[channel]

    async def new_user(self, channel: str) -> int:
        async with self.lock:
            await self._fresh(channel)
            return self.users[channel]

    async def _fresh(self, channel: str) -> None:
        pane = self.panes[channel]
        async with self.db.session() as session:
            known = await session.scalars(
                select(ChannelAccount.external_user_id).where(ChannelAccount.channel == channel)
            )
            taken = {int(u) for u in known if u.isdigit()}
        taken |= pane.known_users()
        if channel in self.users:
            taken.add(self.users[channel])
        user_id = max(taken | {FIRST_USER_ID[channel] - 1}) + 1
        pane.register(user_id)
        self.users[channel] = user_id


SANDBOX = web.AppKey("sandbox", Sandbox)


def sandbox_app(
    *,
    db: Database,
    telegram: TelegramEmulator,
    vk: VKEmulator,
    console: str = "/console/",
    console_login: tuple[str, str] | None = None,
    prefix: str = "/sandbox",
) -> web.Application:
    """The sandbox, to mount at `prefix`. `console` and `console_login` (login, password) are
    shown on the page for the operator part of the tour."""
    app = web.Application(middlewares=[_guard])
    login, password = console_login or (None, None)
    app[SANDBOX] = Sandbox(
        db=db,
        panes={"telegram": TelegramPane(telegram), "vk": VKPane(vk)},
        info={"console": console, "login": login, "password": password},
        prefix=prefix.rstrip("/"),
    )
    app.on_response_prepare.append(_harden)
    r = app.router
    r.add_get("/", _page)
    r.add_static("/static", STATIC)
    r.add_get("/api/state", _state)
    r.add_post("/api/{channel}/{action}", _act)
    r.add_get(r"/media/{channel}/{user:\d+}/{ref}", _media)
    r.add_get("/sms", _sms)
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = request.app[SANDBOX]
    if request.path == sandbox.prefix:
        raise web.HTTPFound(f"{sandbox.prefix}/")
    if request.method == "POST":
        if request.content_type != "application/json":  # a cross-site form can't send JSON
            return _error("send JSON (Content-Type: application/json)", 415)
        if not same_origin(request):
            return _error("cross-origin requests are refused", 403)
    return await handler(request)


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HARDENING.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault(
        "Cache-Control", "no-cache" if "/static/" in request.path else "no-store"
    )


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"}
    )


async def _state(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    panes = {}
    for channel, pane in sandbox.panes.items():
        user_id = await sandbox.user(channel)
        panes[channel] = await _pane(sandbox, pane, user_id)
    sms = await newest_sms(sandbox.db, limit=SMS_SHOWN)
    return web.json_response({"info": sandbox.info, "panes": panes, "sms": sms})


async def _pane(sandbox: Sandbox, pane: Pane, user_id: int) -> dict[str, Any]:
    bubbles = pane.transcript(user_id, f"{sandbox.prefix}/media/{pane.channel}")
    notes = await notes_for(sandbox.db, pane.channel, user_id)
    for bubble in bubbles:
        if bubble["side"] != "bot":
            bubble.update(author="subscriber", author_label=None, cause=None)
            continue
        note = notes.get(bubble["platform_id"] or "")
        author = note.author if note is not None else "bot"
        label = AUTHOR_LABELS.get(author, author)
        if note is not None and note.operator and author == "operator":
            label = f"{label} {note.operator}"
        bubble.update(author=author, author_label=label, cause=note.cause if note else None)
    return {
        "channel": pane.channel,
        "title": pane.title,
        "user_id": user_id,
        "name": pane.name(user_id),
        "start": pane.start_text,
        "messages": bubbles,
        "reply_keyboard": pane.reply_keyboard(user_id),
    }


async def _act(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    pane = sandbox.panes.get(request.match_info["channel"])
    if pane is None:
        return _error("unknown channel: telegram or vk", 404)
    action = request.match_info["action"]
    try:
        body = await request.json()
    except ValueError:
        return _error("the body must be JSON")
    if not isinstance(body, dict):
        return _error("the body must be a JSON object")
    if action == "new":
        return web.json_response({"user_id": await sandbox.new_user(pane.channel)})
    user_id = await sandbox.user(pane.channel)
    if action == "send":
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error("write something first")
        if len(text) > MAX_TEXT:
            return _error(f"a message is at most {MAX_TEXT} characters")
        pane.send_text(user_id, text)
    elif action == "start":
        pane.start(user_id)
    elif action == "press":
        press = body.get("press")
        if not isinstance(press, dict):
            return _error("press must be an object")
        try:
            pane.press(user_id, press)
        except PressError as exc:
            return _error(f"this button can't be pressed: {exc}", 409)
    elif action == "photo":
        pane.send_photo(user_id)
    elif action == "sticker":
        pane.send_sticker(user_id)
    elif action == "contact":
        phone, own = body.get("phone"), body.get("own", True)
        if not isinstance(phone, str) or normalise_phone(phone) is None:
            return _error("enter a Russian phone number, e.g. +7 911 000-00-01")
        if not isinstance(own, bool):
            return _error("own must be true or false")
        try:
            pane.send_contact(user_id, phone, own=own)
        except PressError as exc:
            return _error(str(exc), 409)
    elif action == "reply":
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return _error("text must be the button's label")
        try:
            pane.press_reply(user_id, text)
        except PressError as exc:
            return _error(f"this button can't be pressed: {exc}", 409)
    else:
        return _error(f"unknown action {action!r}", 404)
    return web.json_response({"ok": True, "user_id": user_id})


async def _sms(request: web.Request) -> web.Response:
    """GET /sms: the demo's SMS, newest first; `?phone=` in any spelling, `?limit=` 1..200."""
    phone = request.query.get("phone")
    if phone is not None:
        phone = normalise_phone(phone)
        if phone is None:
            return _error("phone must be a Russian phone number, e.g. +79110000001")
    raw_limit = request.query.get("limit", str(SMS_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= SMS_LIMIT:
        return _error(f"limit must be a number from 1 to {SMS_LIMIT}")
    sms = await newest_sms(request.app[SANDBOX].db, phone=phone, limit=int(raw_limit))
    return web.json_response(sms)


async def _media(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    pane = sandbox.panes.get(request.match_info["channel"])
    data = (
        pane.media(int(request.match_info["user"]), request.match_info["ref"])
        if pane is not None
        else None
    )
    if data is None:
        raise web.HTTPNotFound()
    kind = next((t for magic, t in IMAGE_TYPES if data.startswith(magic)), None)
    if kind is None:  # the emulators' stand-in bytes: not a picture a browser can show
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type=kind)
