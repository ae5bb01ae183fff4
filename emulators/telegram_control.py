"""HTTP control API of the Telegram emulator (`/_control/...`): the Python methods, over JSON.

This is how a separate process (the demo, a person with curl) plays subscribers and reads what
the bot did. Each handler is a thin wrapper of a `TelegramEmulator` method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from emulators.telegram import TelegramEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# POST /_control/<name> with a JSON object of keyword arguments -> the method's return value.
ACTIONS = (
    "add_user",
    "send_text",
    "press_button",
    "send_photo",
    "send_sticker",
    "edit_text",
    "send_other",
    "inject_update",
    "redeliver",
    "create_group",
    "fail",
    "block",
    "unblock",
    "clear_faults",
    "reset",
)


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _action(emulator: TelegramEmulator, name: str) -> Handler:
    method = getattr(emulator, name)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            args = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error("the body must be a JSON object")
        if not isinstance(args, dict):
            return _error("the body must be a JSON object")
        try:
            result = method(args) if name == "inject_update" else method(**args)
        except (TypeError, ValueError, KeyError) as exc:
            return _error(f"{name}: {exc}")
        return web.json_response({"ok": True, "result": result})

    return handle


def _query(emulator: TelegramEmulator, name: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        chat_id = request.query.get("chat_id") or None
        if name == "sent":
            return web.json_response({"ok": True, "result": emulator.sent(chat_id)})
        if name == "history":
            if chat_id is None:
                return _error("history needs ?chat_id=")
            return web.json_response({"ok": True, "result": emulator.history(chat_id)})
        return web.json_response({"ok": True, "result": emulator.calls})

    return handle


def add_control_routes(app: web.Application, emulator: TelegramEmulator) -> None:
    for name in ACTIONS:
        app.router.add_post(f"/_control/{name}", _action(emulator, name))
    for name in ("sent", "history", "calls"):
        app.router.add_get(f"/_control/{name}", _query(emulator, name))
