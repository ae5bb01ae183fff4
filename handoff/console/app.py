"""Builds the operator console: an aiohttp sub-application mounted at /console, with its routes,
the guard middleware (session, roles by route class, CSRF, errors as JSON) and the hardening
headers (a strict Content-Security-Policy: no inline script or style, so subscriber text can
never run as code even if it slipped past escaping)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web

from dialogs.responses import ContentSource
from handoff.console import (
    admin_page,
    analytics_page,
    api,
    audit_page,
    failures_page,
    incidents_page,
    live,
    pages,
    privacy_page,
    readable,
    search_page,
    studio_page,
    tickets_page,
    training,
)
from handoff.console.canned import CannedError
from handoff.console.security import (
    HARDENING,
    SAFE_METHODS,
    SESSION_COOKIE,
    LoginLimiter,
    TrustedProxies,
    clear_cookie,
    csrf_given,
    current_operator,
    remember,
    remember_client,
    route_kind,
    tokens_match,
)
from handoff.console.state import CONSOLE, ApiError, Console, ConsoleSettings
from handoff.console.uploads import UploadError
from handoff.console.views import ROLE_LABELS
from handoff.desk import Desk, DeskError
from handoff.events import Bus
from storage.db import Database

HERE = Path(__file__).resolve().parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSALS = (ApiError, DeskError, CannedError, UploadError)
# Seconds a request body (a form, JSON) may take to arrive. The headers are bounded by the
# server's keep-alive timeout (supportbot/app.py: HTTP_IDLE_TIMEOUT), the body only by this.
BODY_TIMEOUT = 15.0


def _error(message: str, status: int) -> web.Response:
    """A refusal as JSON; the page's toast shows `error` (in Russian, `readable.refusal`)."""
    return web.json_response({"error": readable.refusal(message)}, status=status)


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before anything else: who the client is (`remember_client`: X-Forwarded-For only from
    trusted proxies), and the body read within `BODY_TIMEOUT`, so a client trickling a body
    (slowloris) is cut off instead of holding its connection and handler forever. Multipart
    bodies (image uploads, which need a session) are streamed by their handler and left alone."""
    state = request.app[CONSOLE]
    remember_client(request, state.proxies)
    if request.body_exists and not request.content_type.startswith("multipart/"):
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                await request.read()  # kept by aiohttp: post() and json() read it from memory
        except TimeoutError:
            response = _error(f"the request body took over {BODY_TIMEOUT:g} s", 408)
            await response.prepare(request)
            await response.write_eof()
            # closed now: aiohttp would otherwise linger up to 10 s reading the rest of the body
            request.protocol.force_close()
            return response
    return await handler(request)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but the public ones needs a live session; POSTs need its CSRF token."""
    state = request.app[CONSOLE]
    if request.path == state.prefix:  # "/console" itself: the sub-app's routes all end in "/..."
        return web.Response(status=302, headers={"Location": f"{state.prefix}/"})
    kind = route_kind(request)
    if kind == "public":
        return await handler(request)
    who = await current_operator(state.db, request)
    if who is None:
        if kind == "page":
            response: web.StreamResponse = web.Response(
                status=302, headers={"Location": f"{state.prefix}/login"}
            )
        else:
            response = _error("log in first", 401)
        if request.cookies.get(SESSION_COOKIE):  # expired or logged out: drop the cookie
            clear_cookie(response, SESSION_COOKIE, path=state.prefix)
        return response
    remember(request, who)
    if request.method not in SAFE_METHODS and not tokens_match(who.csrf, await csrf_given(request)):
        return _error("missing or wrong CSRF token", 403)
    try:
        return await handler(request)
    except REFUSALS as exc:
        return _error(str(exc), exc.status)


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HARDENING.items():
        response.headers.setdefault(name, value)
    if "/static/" not in request.path:
        response.headers.setdefault("Cache-Control", "no-store")


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["role"] = lambda code: ROLE_LABELS.get(code, code)
    return env


def duration(value: float | None) -> str:
    """Seconds for people: '45 с', '3 мин 05 с', '2 ч 10 мин'."""
    if value is None:
        return "—"
    s = int(value)
    if s < 60:
        return f"{s} с"
    if s < 3600:
        return f"{s // 60} мин {s % 60:02d} с"
    return f"{s // 3600} ч {s % 3600 // 60:02d} мин"


def console_app(
    *,
    db: Database,
    desk: Desk,
    bus: Bus,
    content: ContentSource | None,
    settings: ConsoleSettings,
    prefix: str = "/console",
    training_setup: training.Training | None = None,
    studio: studio_page.Studio | None = None,
) -> web.Application:
    """The console, to mount with `app.add_subapp(prefix, console_app(...))`.
    `training_setup` wires the NLU improvement loop (its page answers 503 without it)."""
    app = web.Application(middlewares=[edge, guard])
    if training_setup is not None:
        app[training.TRAINING] = training_setup
    if studio is not None:  # the content studio (content versions in the database)
        app[studio_page.STUDIO] = studio
    app[CONSOLE] = Console(
        db=db,
        desk=desk,
        bus=bus,
        content=content,
        settings=settings,
        prefix=prefix.rstrip("/"),
        templates=templates(),
        uploads=(Path(settings.data_dir) / "uploads").resolve(),
        limiter=LoginLimiter(settings.handoff),
        proxies=TrustedProxies(settings.handoff.trusted_proxies),
    )
    app.on_response_prepare.append(_harden)
    app.on_shutdown.append(live.close_all)
    app.cleanup_ctx.append(live.sweeper)
    r = app.router
    r.add_get("/login", pages.login_form, name="public:login")
    r.add_post("/login", pages.login, name="public:login-post")
    r.add_static("/static", HERE / "static", name="public:static")
    r.add_post("/logout", pages.logout, name="logout")
    r.add_get("/", pages.index, name="index")
    r.add_get(r"/chats/{id:\d+}", pages.chat, name="chat")
    r.add_get("/supervisor", pages.supervisor, name="supervisor")
    r.add_get("/ws", live.socket, name="ws")
    r.add_get("/api/queue", api.queue, name="api:queue")
    r.add_get(r"/api/chats/{id:\d+}", api.chat, name="api:chat")
    r.add_post(r"/api/chats/{id:\d+}/take", api.take, name="api:take")
    r.add_post(r"/api/chats/{id:\d+}/reply", api.reply, name="api:reply")
    r.add_post(r"/api/chats/{id:\d+}/transfer", api.transfer, name="api:transfer")
    r.add_post(r"/api/chats/{id:\d+}/return", api.return_to_bot, name="api:back-to-bot")
    r.add_post(r"/api/chats/{id:\d+}/close", api.close, name="api:close")
    r.add_post(r"/api/chats/{id:\d+}/verify", api.verify, name="api:verify")
    r.add_post(r"/api/chats/{id:\d+}/notes", api.note_add, name="api:notes")
    r.add_post("/api/status", api.status, name="api:status")
    r.add_get("/api/unread", api.unread_counts, name="api:unread")
    r.add_get("/api/canned", api.canned_search, name="api:canned")
    r.add_post("/api/canned", api.canned_add, name="api:canned-add")
    r.add_get("/api/supervisor", api.supervisor_figures, name="api:supervisor")
    r.add_get("/api/uploads/{name}", api.upload, name="api:upload")
    analytics_page.add_routes(r)
    incidents_page.add_routes(r)
    training.add_routes(r)
    privacy_page.add_routes(r)
    admin_page.add_routes(r)
    audit_page.add_routes(r)
    failures_page.add_routes(r)
    search_page.add_routes(r)
    tickets_page.add_routes(r)
    studio_page.add_routes(r)
    return app
