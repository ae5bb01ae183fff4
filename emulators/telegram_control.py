"""HTTP control API of the Telegram emulator (`/_control/...`): the Python methods, over JSON.

This is how a separate process (the demo, a person with curl) plays subscribers and reads what
the bot did. Each handler is a thin wrapper of a `TelegramEmulator` method; the emulator hands
those methods in (`add_control_routes`), so this module does not know the emulator class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Records = list[dict[str, Any]]
# POST /_control/<name> with a JSON object of keyword arguments -> the method's return value.
ACTIONS = (
    "add_user",
    "send_text",
    "press_button",
    "press_reply_button",
    "send_contact",
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


def _action(name: str, method: Callable[..., Any]) -> Handler:
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


def _queries(
    sent: Callable[[str | None], Records],
    history: Callable[[str], Records],
    calls: Callable[[], Records],
    keyboard: Callable[[str], dict[str, Any] | None],
) -> dict[str, Handler]:
    async def sent_(request: web.Request) -> web.StreamResponse:
        chat_id = request.query.get("chat_id") or None
        return web.json_response({"ok": True, "result": sent(chat_id)})

    async def history_(request: web.Request) -> web.StreamResponse:
        chat_id = request.query.get("chat_id") or None
        if chat_id is None:
            return _error("history needs ?chat_id=")
        return web.json_response({"ok": True, "result": history(chat_id)})

    async def calls_(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "result": calls()})

    async def keyboard_(request: web.Request) -> web.StreamResponse:
        chat_id = request.query.get("chat_id") or None
        if chat_id is None:
            return _error("keyboard needs ?chat_id=")
        return web.json_response({"ok": True, "result": keyboard(chat_id)})

    return {"sent": sent_, "history": history_, "calls": calls_, "keyboard": keyboard_}


def add_control_routes(
    app: web.Application,
    actions: Mapping[str, Callable[..., Any]],
    *,
    sent: Callable[[str | None], Records],
    history: Callable[[str], Records],
    calls: Callable[[], Records],
    keyboard: Callable[[str], dict[str, Any] | None],
) -> None:
    """`POST /_control/<name>` for each of `actions` (name -> method, see ACTIONS) and
    `GET /_control/sent|history|calls|keyboard` answered by the given readers (`keyboard`: the
    reply keyboard a chat shows now, `?chat_id=`)."""
    for name, method in actions.items():
        app.router.add_post(f"/_control/{name}", _action(name, method))
    for name, handler in _queries(sent, history, calls, keyboard).items():
        app.router.add_get(f"/_control/{name}", handler)
