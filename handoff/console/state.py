"""What every console handler needs (database, desk, bus, settings, templates), kept on the
aiohttp sub-application, plus the request helpers the handlers share."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from dialogs.content import Content
from dialogs.responses import ContentSource
from handoff.config import HandoffSettings
from handoff.console.security import LoginLimiter, Me, TrustedProxies, maybe_me, me
from handoff.desk import Desk
from handoff.events import Bus
from storage.db import Database


class ConsoleSettings(Protocol):
    """The part of supportbot's Settings the console reads."""

    @property
    def handoff(self) -> HandoffSettings: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def skill_groups(self) -> list[str]: ...


class ApiError(Exception):
    """A request the console refuses; answered as JSON `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Console:
    db: Database
    desk: Desk
    bus: Bus
    content: ContentSource | None
    settings: ConsoleSettings
    prefix: str
    templates: jinja2.Environment
    uploads: Path
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    proxies: TrustedProxies = field(default_factory=lambda: TrustedProxies([]))
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    # Open sockets and whose they are: `live.sweep` closes those whose session ended.
    owners: dict[web.WebSocketResponse, Me] = field(default_factory=dict)
    recheck: asyncio.Event = field(default_factory=asyncio.Event)
    # (operator id, chat id) -> when this process last wrote their `chat_opened` entry.
    opened: dict[tuple[int, int], float] = field(default_factory=dict)
    # login -> (when read, addresses it logged in from): `auditing.known_addresses`.
    known: dict[str, tuple[float, set[str]]] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.handoff.timezone)

    @property
    def secure(self) -> bool:
        return self.settings.handoff.secure_cookies

    @property
    def groups(self) -> list[str]:
        return list(self.settings.skill_groups)

    @property
    def current_content(self) -> Content | None:
        return self.content.current if self.content is not None else None

    def render(
        self, request: web.Request, name: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        who = maybe_me(request)
        page = self.templates.get_template(name).render(
            base=self.prefix, me=who, csrf=who.csrf if who is not None else "", **context
        )
        return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


CONSOLE = web.AppKey("console", Console)


def console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def agent(request: web.Request) -> Me:
    """The operator of a request to a chat API: editors see no chats."""
    who = me(request)
    if who.editor:
        raise ApiError("editors have no access to chats", 403)
    return who


def supervisor(request: web.Request) -> Me:
    who = agent(request)
    if not who.supervisor:
        raise ApiError("supervisors only", 403)
    return who


def chat_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def json_body(request: web.Request) -> dict[str, Any]:
    """A JSON object body (or a urlencoded form, for plain HTML forms)."""
    if request.content_type == "application/x-www-form-urlencoded":
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    if not request.body_exists:  # (the `edge` middleware has already read it)
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object")
    return body
