"""The console's JSON API, used by the page JS (and by tests): read the queue and a chat, act on a
chat through the desk, set my status, search and add canned replies, the supervisor's figures.

Errors are JSON `{"error": "..."}` with the HTTP status (desk errors keep theirs). The server
enforces roles here; the page only hides buttons. Handlers never hold a database session while
calling the desk: on SQLite there is a single connection, and the desk opens its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from handoff.console import auditing, canned, notes, unread
from handoff.console.security import client_ip
from handoff.console.state import (
    ApiError,
    agent,
    chat_id,
    console,
    json_body,
    supervisor,
)
from handoff.console.stats import supervisor_view
from handoff.console.uploads import (
    CONTENT_TYPES,
    MAX_IMAGE_BYTES,
    NAME,
    forget,
    load,
    read_limited,
    save_image,
    sniff,
)
from handoff.console.views import Forbidden, NotFound, actions, can_view, chat_view, queue_view
from services import audit
from storage.models import Conversation, Operator, OperatorRole, OperatorStatus

MAX_TEXT_FIELD = 64 * 1024
MAX_NOTE = 500


async def queue(request: web.Request) -> web.Response:
    state = console(request)
    who = agent(request)
    async with state.db.session() as session:
        return web.json_response(await queue_view(session, who, state.tz))


async def chat(request: web.Request) -> web.Response:
    state = console(request)
    who = agent(request)
    try:
        async with state.db.session() as session:
            data = await chat_view(
                session,
                who,
                chat_id(request),
                tz=state.tz,
                content=state.current_content,
                groups=state.groups,
                uploads=state.uploads,
                base=state.prefix,
            )
    except NotFound as exc:
        raise ApiError(str(exc), 404) from exc
    except Forbidden as exc:
        raise ApiError(str(exc), 403) from exc
    await auditing.chat_opened(state, request, who, data, via="api")
    if request.query.get("read") == "1":  # the page shows it to its operator: read
        await unread.mark_read(state.db, who.id, chat_id(request))
    return web.json_response(data)


async def unread_counts(request: web.Request) -> web.Response:
    """My unread chats (`handoff.console.unread`), the same in every tab and browser."""
    state = console(request)
    who = agent(request)
    async with state.db.session() as session:
        return web.json_response(unread.as_json(await unread.for_operator(session, who.id)))


async def _allowed(request: web.Request, action: str) -> int:
    """The chat id, if the operator may do `action` on it now (else 404/403/409)."""
    state = console(request)
    who = agent(request)
    conv_id = chat_id(request)
    async with state.db.session() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise ApiError(f"no chat {conv_id}", 404)
        if not can_view(who, conv):
            raise ApiError("this chat is not yours", 403)
        if not actions(who, conv)[action]:
            raise ApiError(f"can't {action} a chat that is {conv.state}", 409)
    return conv_id


async def take(request: web.Request) -> web.Response:
    conv_id = await _allowed(request, "take")
    await console(request).desk.take(agent(request).id, conv_id)
    return web.json_response({"ok": True})


async def _reply_parts(request: web.Request) -> tuple[str, bytes | None, str | None]:
    """(text, image bytes, the image's file name) from a JSON body or a multipart form with
    `text` and `image`."""
    if not request.content_type.startswith("multipart/"):
        body = await json_body(request)
        return str(body.get("text") or ""), None, None
    text, image, filename = "", None, None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError("nested multipart bodies are not accepted")
        if part.name == "text":
            raw = await read_limited(part, MAX_TEXT_FIELD)
            text = raw.decode("utf-8", errors="replace")
        elif part.name == "image":
            data = await read_limited(part, MAX_IMAGE_BYTES)
            image = data or None  # a file input left empty sends an empty part
            filename = part.filename
        else:
            await part.release()
    return text, image, filename


async def reply(request: web.Request) -> web.Response:
    state = console(request)
    who = agent(request)
    conv_id = await _allowed(request, "reply")
    text, image, filename = await _reply_parts(request)
    if not text.strip() and image is None:
        raise ApiError("write a reply or attach an image")
    if image is not None and sniff(image) is None:
        raise ApiError("only PNG, JPEG or GIF images can be attached")
    path = None
    if image is not None:
        path = await save_image(image, state.uploads, state.db, filename=filename)
    try:
        message_id = await state.desk.reply(
            who.id, conv_id, text, image=str(path) if path is not None else None
        )
    except Exception:
        if path is not None:
            await forget(state.db, path)
        raise
    return web.json_response({"message_id": message_id})


async def transfer(request: web.Request) -> web.Response:
    state = console(request)
    who = agent(request)
    conv_id = await _allowed(request, "transfer")
    body = await json_body(request)
    group = str(body.get("group") or "").strip() or None
    raw_target = body.get("operator_id")
    note = str(body.get("note") or "").strip()[:MAX_NOTE]
    target: int | None = None
    if raw_target not in (None, ""):
        try:
            target = int(str(raw_target))
        except ValueError as exc:
            raise ApiError("operator_id must be a number") from exc
    if (group is None) == (target is None):
        raise ApiError("choose a group or an operator to transfer to")
    if group is not None and group not in state.groups:
        raise ApiError(f"unknown group {group!r}")
    if target is not None:
        if target == who.id:
            raise ApiError("the chat is already yours")
        async with state.db.session() as session:
            op = await session.get(Operator, target)
            if op is None or op.role == OperatorRole.EDITOR or op.disabled_at is not None:
                raise ApiError(f"no operator {target}", 404)
    await state.desk.transfer(who.id, conv_id, group=group, to_operator=target, note=note)
    return web.json_response({"ok": True})


async def return_to_bot(request: web.Request) -> web.Response:
    conv_id = await _allowed(request, "return")
    await console(request).desk.return_to_bot(agent(request).id, conv_id)
    return web.json_response({"ok": True})


async def verify(request: web.Request) -> web.Response:
    """Ask the subscriber to verify who they are (the bot talks it through in the chat)."""
    conv_id = await _allowed(request, "verify")
    await console(request).desk.request_verification(agent(request).id, conv_id)
    return web.json_response({"ok": True})


async def close(request: web.Request) -> web.Response:
    conv_id = await _allowed(request, "close")
    body = await json_body(request)
    await console(request).desk.close(agent(request).id, conv_id, str(body.get("resolution") or ""))
    return web.json_response({"ok": True})


async def note_add(request: web.Request) -> web.Response:
    """An internal note on a chat anyone who may open it can add; the subscriber never gets it."""
    state = console(request)
    who = agent(request)
    conv_id = chat_id(request)
    body = await json_body(request)
    text = str(body.get("text") or "").strip()
    if not text:
        raise ApiError("Напишите текст заметки")
    if len(text) > notes.MAX_NOTE:
        raise ApiError(f"Заметка длиннее {notes.MAX_NOTE} символов")
    async with state.db.transaction() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise ApiError(f"Чата {conv_id} нет", 404)
        if not can_view(who, conv):
            raise ApiError("Это не ваш чат", 403)
        notes.add(session, conv, who.id, text)
        audit.record(
            session,
            "note_added",
            actor="operator",
            operator_id=who.id,
            subscriber_id=conv.subscriber_id,
            conversation_id=conv.id,
            ip=client_ip(request),
            details={"length": len(text)},
        )
    return web.json_response({"ok": True}, status=201)


async def status(request: web.Request) -> web.Response:
    """Set my status. Going offline with chats is refused (409, `chats`: how many) unless the
    body says `release: true`: then they go back to the queue for colleagues (the page asks
    first). A break ("away") keeps them: new chats stop, the operator finishes these."""
    state = console(request)
    who = agent(request)
    body = await json_body(request)
    new = str(body.get("status") or "")
    release = body.get("release") is True
    if new == OperatorStatus.OFFLINE and not release:
        held = await state.desk.open_chats(who.id)
        if held:
            return web.json_response(
                {"error": f"У вас чатов: {held}. Уйти из сети и вернуть их в очередь?",
                 "chats": held},
                status=409,
            )  # fmt: skip
    released = await state.desk.set_status(who.id, new, release=release)
    return web.json_response({"status": new, "released": released})


async def canned_search(request: web.Request) -> web.Response:
    state = console(request)
    who = agent(request)
    async with state.db.session() as session:
        found = await canned.search(session, who, request.query.get("q", ""))
    return web.json_response({"canned": found})


async def canned_add(request: web.Request) -> web.Response:
    state = console(request)
    who = supervisor(request)
    body = await json_body(request)
    try:
        async with state.db.transaction() as session:
            reply = await canned.add(session, body, state.groups)
            added = canned.as_json(reply)
            audit.record(
                session,
                "canned_added",
                actor="operator",
                operator_id=who.id,
                ip=client_ip(request),
                details={"canned_id": reply.id, "shortcut": reply.shortcut},
            )
    except canned.CannedError as exc:
        raise ApiError(str(exc), exc.status) from exc
    return web.json_response(added, status=201)


async def supervisor_figures(request: web.Request) -> web.Response:
    state = console(request)
    supervisor(request)
    async with state.db.session() as session:
        data = await supervisor_view(
            session,
            groups=state.groups,
            timezone=state.settings.handoff.timezone,
            first_response_target=state.settings.handoff.first_response_target,
        )
    return web.json_response(data)


async def upload(request: web.Request) -> web.StreamResponse:
    """An image an operator attached (only console users see them), from the database, so any
    app process serves it; a file an older version left on this machine's disk otherwise."""
    state = console(request)
    agent(request)
    name = request.match_info["name"]
    if not NAME.match(name):
        raise ApiError("no such image", 404)
    stored = await load(state.db, name)
    if stored is not None:
        return web.Response(body=stored.data, content_type=stored.content_type)
    path: Path = state.uploads / name
    headers: dict[str, Any] = {"Content-Type": CONTENT_TYPES["." + name.rsplit(".", 1)[1]]}
    return web.FileResponse(path, headers=headers)
