"""VK frontend (vkbottle 4.11): VK events in as `Inbound`, `Outbound` out as messages.send calls.

It parses, renders and sends; the conversation pipeline (an `InboundHandler`) decides everything.

- `build_bot(token, group_id, handler)`: a vkbottle `Bot` whose labeler turns `message_new` (text,
  text-button payload, photo, sticker, other attachments) and `message_event` (callback button)
  into one `Inbound` each, awaits `handler.handle`, then stops the button spinner
  (messages.sendMessageEventAnswer). `update_id` is the envelope's `event_id`, the id VK redelivers
  with; without one: `msg:{peer}:{conversation_message_id}` / `cb:{peer}:{object.event_id}`.
- `run_long_poll(bot)` (Bots Long Poll) and `callback_handler(bot, ...)` (Callback API, aiohttp)
  feed events through the same router. Callback answers `ok` only after the handler returned
  (persist first, acknowledge after), 500 when it raised so VK redelivers.
- `VKSender`: the `ChannelSender` for VK. `random_id = key * 16 + part`, so VK itself drops a resent
  part. Button payload P travels as JSON `{"p": P}` on inline callback buttons. Long texts are cut
  by `bots.text.split_text`; keyboards are checked against VK's limits in dialogs/limits.py.
- `make_api(token, api_url=...)`: a vkbottle `API` pointed at any base URL (the local emulator).

What vkbottle 4.11 does by itself on API errors (read from its source), and what we changed:
- `API.request` never retries or sleeps on errors 6/9/10: `VKAPIErrorResponseValidator` raises
  `VKAPIError[code]` (`.code`, `.error_msg`), so our sender sees every error. Exceptions: with
  `ignore_errors=True` it returns None (we keep False); error 14 with a `captcha_handler` set
  re-sends with the answer (we set none, so `CaptchaError` is raised).
- A non-JSON body (HTML 502 page, empty answer) goes to the `request_rescheduler`; the default
  `BlockingRequestRescheduler` retries for ever with growing sleeps (5 s, 10 s, ...), hanging the
  caller. `make_api` installs a fail-fast one raising `VKBadResponse` (-> `TransientError`).
- HTTP status codes are not checked, and the default HTTP client is a process-wide singleton with
  aiohttp's 5-minute timeout; `make_api` gives each API its own client with a 30 s timeout.
- `BotPolling` handles long-poll `failed` 1 (takes the new ts), 2 (new key, same ts), 3 (new key
  and ts), 4; network errors and error 10 -> retry with backoff (0.1 s x n, at most 6 s) keeping the
  ts; other exceptions go to the bot's `ErrorHandler` (logs) plus backoff. The initial
  groups.getLongPollServer is outside that loop: a bad token raises out of `run_long_poll`.
  It also writes `.vkbottle/bot-polling/{group}.json` in the cwd after each batch: disabled here.
- Handler exceptions are swallowed: views pass them to `ErrorHandler.handle`, which logs them
  (`raise_exceptions=False`), and `Bot.run_polling` runs each update in a fire-and-forget task.
  We therefore record handler failures in a context variable: the Callback API answers 500, Long
  Poll retries the event (in order, one at a time, so a chat's messages keep their order).
- Typed events lose the envelope id: `MessageEventMin.__init__` overwrites `event_id` with the
  callback button's `object.event_id`. Hence `raw_event(..., dataclass=dict)` handlers.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from vkbottle import API, Bot, VKAPIError
from vkbottle.api.request_rescheduler import ABCRequestRescheduler
from vkbottle.http import AiohttpClient
from vkbottle.polling import BotPolling
from vkbottle.tools import PhotoMessageUploader
from vkbottle_types.events import GroupEventType

from bots.text import split_text
from delivery.errors import (
    Blocked,
    PartialSend,
    PermanentError,
    RetryAfter,
    SendError,
    TransientError,
)
from delivery.sender import Pace, Progress
from dialogs.limits import VK
from dialogs.messages import Attachment, Button, Channel, Inbound, InboundHandler, Outbound

log = logging.getLogger(__name__)

PARTS_PER_KEY = 16  # random_id = key * 16 + part

_failures: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "vk_handler_failures", default=None
)


class VKBadResponse(Exception):
    """VK (or a proxy in front of it) answered something that is not JSON."""


class _FailFastRescheduler(ABCRequestRescheduler):
    async def reschedule(
        self, ctx_api: Any, method: str, data: dict[str, Any], recent_response: Any
    ) -> dict[str, Any]:
        raise VKBadResponse(f"{method}: VK answered non-JSON: {str(recent_response)[:200]!r}")


class _Polling(BotPolling):
    """vkbottle's Bots Long Poll, remembering its position in `state_dir` (not the cwd).

    vkbottle saves the ts only after a batch was handled, so after a restart the bot resumes
    where it stopped and messages sent while it was down are not skipped (a redelivered event
    is dropped by the pipeline's dedupe). Without a `state_dir` it starts from "now", as VK does.
    """

    def __init__(self, api: API, group_id: int, state_dir: Path | None) -> None:
        super().__init__(api, group_id=group_id, skip_old_events=state_dir is None)
        self.state_dir = state_dir

    @property
    def ts_state_path(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"vk-longpoll-{self.group_id}.json"

    def save_server_ts(self, server: dict[str, Any]) -> None:
        if self.state_dir is not None:
            super().save_server_ts(server)


def make_api(token: str, *, api_url: str | None = None, timeout: float = 30.0) -> API:
    """A vkbottle `API` with its own HTTP client; `api_url` like "http://127.0.0.1:8081/method/"."""
    client = AiohttpClient(timeout=aiohttp.ClientTimeout(total=timeout))
    api = API(token, http_client=client, request_rescheduler=_FailFastRescheduler())
    if api_url:
        api.API_URL = api_url if api_url.endswith("/") else api_url + "/"
    return api


# ---------------------------------------------------------------------------- parsing
def unwrap_payload(raw: Any) -> str | None:
    """Our payload P arrives as `{"p": P}`; VK's Start button sends `{"command": "start"}`."""
    if raw is None or raw == "":
        return None
    data = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
    if isinstance(data, dict):
        if "p" in data:
            return str(data["p"])
        if "command" in data:
            return "/" + str(data["command"])
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)


def _ref(kind: str, body: dict[str, Any]) -> str | None:
    if "owner_id" not in body or "id" not in body:
        return None
    key = f"_{body['access_key']}" if body.get("access_key") else ""
    return f"{kind}{body['owner_id']}_{body['id']}{key}"


def _attachment(item: dict[str, Any]) -> Attachment:
    kind = str(item.get("type", ""))
    body = item.get(kind) or {}
    if kind == "photo":
        sizes = sorted(
            body.get("sizes") or [], key=lambda s: s.get("width", 0) * s.get("height", 0)
        )
        return Attachment("photo", ref=_ref("photo", body), url=sizes[-1]["url"] if sizes else None)
    if kind == "sticker":
        images = body.get("images") or []
        url = max(images, key=lambda i: i.get("width", 0))["url"] if images else None
        return Attachment("sticker", ref=str(body.get("sticker_id")), url=url)
    if kind == "audio_message":
        return Attachment("voice", ref=_ref(kind, body), url=body.get("link_ogg"))
    if kind == "doc":
        return Attachment("document", ref=_ref(kind, body), url=body.get("url"))
    if kind in ("video", "audio"):
        return Attachment(kind, ref=_ref(kind, body), url=body.get("url"))  # type: ignore[arg-type]
    return Attachment("other", ref=kind or None)


def event_to_inbound(event: dict[str, Any]) -> Inbound | None:
    """One VK event (v5.199 envelope) as an `Inbound`; None for event types we do not handle.

    `platform_message_id` is the per-chat `conversation_message_id` (the id messages.edit takes).
    Attachment refs are VK attachment strings with the access key (`photo{owner}_{id}_{key}`).
    """
    obj = event.get("object") or {}
    if event.get("type") == GroupEventType.MESSAGE_NEW.value:
        msg = obj.get("message", obj)
        peer, cmid = msg["peer_id"], msg.get("conversation_message_id")
        attachments = [_attachment(a) for a in msg.get("attachments") or []]
        if msg.get("geo"):
            coords = msg["geo"].get("coordinates", {})
            ref = f"{coords.get('latitude')},{coords.get('longitude')}"
            attachments.append(Attachment("location", ref=ref))
        return Inbound(
            channel=Channel.VK,
            chat_id=str(peer),
            user_id=str(msg.get("from_id", peer)),
            update_id=str(event.get("event_id") or f"msg:{peer}:{cmid}"),
            text=msg.get("text") or None,
            payload=unwrap_payload(msg.get("payload")),
            attachments=tuple(attachments),
            platform_message_id=str(cmid) if cmid is not None else None,
        )
    if event.get("type") == GroupEventType.MESSAGE_EVENT.value:
        peer, cmid = obj["peer_id"], obj.get("conversation_message_id")
        return Inbound(
            channel=Channel.VK,
            chat_id=str(peer),
            user_id=str(obj["user_id"]),
            update_id=str(event.get("event_id") or f"cb:{peer}:{obj.get('event_id')}"),
            payload=unwrap_payload(obj.get("payload")),
            platform_message_id=str(cmid) if cmid is not None else None,
        )
    return None


# ---------------------------------------------------------------------------- receiving
def build_bot(
    token: str,
    group_id: int,
    handler: InboundHandler,
    *,
    api_url: str | None = None,
    state_dir: Path | None = None,
) -> Bot:
    """A vkbottle Bot whose handlers hand every message/button press to `handler`.
    With `state_dir`, Long Poll resumes after a restart instead of skipping what came meanwhile."""
    api = make_api(token, api_url=api_url)
    polling = _Polling(api, group_id, state_dir)
    bot = Bot(api=api, polling=polling, skip_old_events=polling.skip_old_events)
    names = _Names(api)

    @bot.on.raw_event(GroupEventType.MESSAGE_NEW, dict)
    async def on_message(event: dict[str, Any]) -> None:
        await _handle(handler, event, names)

    @bot.on.raw_event(GroupEventType.MESSAGE_EVENT, dict)
    async def on_button(event: dict[str, Any]) -> None:
        await _handle(handler, event, names)
        obj = event["object"]
        params = {"event_id": obj["event_id"], "user_id": obj["user_id"], "peer_id": obj["peer_id"]}
        try:  # only stops the spinner: the press is already handled, so never fail for this
            await api.request("messages.sendMessageEventAnswer", params)
        except (VKAPIError, VKBadResponse, aiohttp.ClientError, TimeoutError) as e:
            log.warning("vk: sendMessageEventAnswer failed: %r", e)

    return bot


class TokenRefused(Exception):
    """VK refused the community token (error 5) or the group id (error 100/15/27)."""


async def check_token(api: API, group_id: int) -> None:
    """Raise TokenRefused if VK rejects the token for this community; network trouble only logs
    (Long Poll retries by itself)."""
    try:
        await api.request("groups.getById", {"group_id": group_id})
    except VKAPIError as exc:
        if getattr(exc, "code", None) in (5, 15, 27, 100):
            raise TokenRefused(f"error {exc.code}: {exc.error_msg}") from exc
        log.warning("vk: groups.getById failed at start-up: %r", exc)
    except (VKBadResponse, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("vk: API unreachable at start-up (%r); will keep trying", exc)


class _Names:
    """Subscribers' names (VK events carry only ids): one `users.get` per user per process,
    remembered; if VK doesn't answer, the message goes on without a name."""

    LIMIT = 50_000

    def __init__(self, api: API) -> None:
        self.api = api
        self.known: dict[str, tuple[str | None, str | None]] = {}

    async def of(self, user_id: str) -> tuple[str | None, str | None]:
        if user_id in self.known:
            return self.known[user_id]
        try:
            response = await self.api.request("users.get", {"user_ids": user_id})
            user = (response.get("response") or [{}])[0]
        except (VKAPIError, VKBadResponse, aiohttp.ClientError, TimeoutError, IndexError) as e:
            log.warning("vk: users.get failed: %r", e)
            return None, None
        if len(self.known) >= self.LIMIT:
            self.known.pop(next(iter(self.known)))
        name = (user.get("first_name") or None, user.get("last_name") or None)
        self.known[user_id] = name
        return name


async def _handle(
    handler: InboundHandler, event: dict[str, Any], names: _Names | None = None
) -> None:
    inbound = event_to_inbound(event)
    if inbound is None:
        return
    if names is not None and int(inbound.user_id) > 0:
        first, last = await names.of(inbound.user_id)
        inbound = replace(inbound, first_name=first, last_name=last)
    try:
        await handler.handle(inbound)
    except Exception as e:
        box = _failures.get()
        if box is not None:
            box.append(e)
        raise  # vkbottle's ErrorHandler logs it


async def _route(bot: Bot, event: dict[str, Any]) -> list[BaseException]:
    """Run one event through the bot's router; return the handler failures (empty = handled)."""
    box: list[BaseException] = []
    token = _failures.set(box)
    try:
        await bot.process_event(event)
    finally:
        _failures.reset(token)
    return box


async def run_long_poll(bot: Bot) -> None:
    """Bots Long Poll until cancelled. A batch is handled in full before the next one is asked
    for (vkbottle saves the position after it); each conversation's events in order, different
    conversations at once, so one slow subscriber never holds up the others (wrap the handler
    in `bots.retry.RetryingHandler` so a failing database does not lose an event)."""
    async for batch in bot.polling.listen():
        lanes: dict[object, list[dict[str, Any]]] = {}
        for event in batch.get("updates", []):
            lanes.setdefault(_peer(event), []).append(event)
        await asyncio.gather(*(_route_lane(bot, lane) for lane in lanes.values()))


def _peer(event: dict[str, Any]) -> object:
    obj = event.get("object") if isinstance(event.get("object"), dict) else {}
    message = obj.get("message") if isinstance(obj.get("message"), dict) else obj
    return message.get("peer_id") or obj.get("user_id") or ("event", event.get("event_id"))


async def _route_lane(bot: Bot, lane: list[dict[str, Any]]) -> None:
    for event in lane:
        if await _route(bot, event):
            log.error("vk: event %s was not handled", event.get("event_id"))


def callback_handler(
    bot: Bot, *, confirmation_code: str, secret: str | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """aiohttp handler for `POST /webhook/vk` (Callback API)."""

    async def handle(request: web.Request) -> web.Response:
        try:
            event = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid JSON")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return web.Response(status=400, text="not a VK event")
        if event["type"] == "confirmation":
            return web.Response(text=confirmation_code)
        if secret is not None:
            given = str(event.get("secret", "")).encode()
            if not hmac.compare_digest(given, secret.encode()):
                return web.Response(status=403, text="wrong secret")
        if await _route(bot, event):
            return web.Response(status=500, text="handler failed")
        return web.Response(text="ok")

    return handle


# ---------------------------------------------------------------------------- sending
def render_keyboard(rows: tuple[tuple[Button, ...], ...]) -> str | None:
    """Inline keyboard JSON: payload buttons as callback buttons `{"p": P}`, url ones as open_link.

    VK has no button that shares the subscriber's phone: a `Button(request=...)` is left out
    (a row left empty goes with it), so the same content renders in both channels."""
    rows = tuple(kept for row in rows if (kept := tuple(b for b in row if b.request is None)))
    if not rows:
        return None
    if len(rows) > VK.rows or any(len(row) > VK.per_row for row in rows):
        raise PermanentError(f"VK inline keyboard allows {VK.rows} rows of {VK.per_row} buttons")
    out = []
    for row in rows:
        buttons = []
        for b in row:
            label = b.title[: VK.button_label]
            if b.url:
                buttons.append({"action": {"type": "open_link", "link": b.url, "label": label}})
            elif b.payload is not None:
                payload = json.dumps({"p": b.payload}, ensure_ascii=False)
                if len(payload) > VK.payload_bytes:  # VK counts the payload in characters
                    raise PermanentError(
                        f"VK button payload over {VK.payload_bytes} chars: {payload[:60]}..."
                    )
                buttons.append({"action": {"type": "callback", "label": label, "payload": payload}})
            else:
                raise PermanentError(f"button {b.title!r} has neither payload nor url")
        out.append(buttons)
    return json.dumps({"inline": True, "buttons": out}, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Part:
    text: str | None = None
    image: str | None = None
    sticker_id: int | None = None
    keyboard: str | None = None


def _plan(message: Outbound) -> list[_Part]:
    keyboard = render_keyboard(message.buttons)
    parts: list[_Part] = []
    if message.sticker:
        try:
            parts.append(_Part(sticker_id=int(message.sticker)))
        except ValueError as e:
            raise PermanentError(f"VK sticker id must be a number, got {message.sticker!r}") from e
    texts: list[str | None] = list(split_text(message.text or "", Channel.VK))
    if message.image and not texts:
        texts = [None]
    parts += [_Part(text=t, image=message.image if i == 0 else None) for i, t in enumerate(texts)]
    if not parts:
        raise PermanentError("empty message: no text, image or sticker")
    if len(parts) > PARTS_PER_KEY:
        raise PermanentError(f"message needs {len(parts)} parts, at most {PARTS_PER_KEY} allowed")
    if keyboard:
        last = parts[-1]
        parts[-1] = _Part(last.text, last.image, last.sticker_id, keyboard)
    return parts


def map_error(e: BaseException) -> SendError:
    """VK API / network failure -> the class the outbox worker acts on."""
    if isinstance(e, SendError):
        return e
    if isinstance(e, VKAPIError):
        code, text = e.code, f"VK error {e.code}: {e.error_msg}"
        if code == 6:
            return RetryAfter(1.0, text)
        if code in (9, 14):
            return RetryAfter(5.0, text)
        if code in (901, 902):
            return Blocked(text)
        if code == 10:
            return TransientError(text)
        return PermanentError(text)
    if isinstance(e, VKBadResponse | aiohttp.ClientError | TimeoutError | OSError):
        return TransientError(f"VK unreachable: {e!r}")
    return PermanentError(f"unexpected: {e!r}")


async def _download(url: str) -> bytes:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        if resp.status >= 500:
            raise TransientError(f"image {url}: HTTP {resp.status}")
        if resp.status >= 400:
            raise PermanentError(f"image {url}: HTTP {resp.status}")
        return await resp.read()


class _PacedAPI:
    """The `API` as the photo uploader sees it: each method call (photos.getMessagesUploadServer,
    photos.saveMessagesPhoto) waits its turn first. The file upload itself goes to the upload
    server through `http_client` and is no API request."""

    def __init__(self, api: API, pace: Pace) -> None:
        self._api = api
        self._pace = pace

    async def request(
        self, method: str, data: dict[str, Any], version: str | None = None
    ) -> dict[str, Any]:
        await self._pace()
        return await self._api.request(method, data, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class VKSender:
    """`ChannelSender` for VK through the real vkbottle `API`."""

    channel = Channel.VK

    def __init__(self, api: API) -> None:
        self.api = api
        self._photos: dict[str, str] = {}  # image path/URL -> "photo{owner}_{id}_{key}"

    async def send(
        self,
        chat_id: str,
        message: Outbound,
        *,
        key: int,
        skip_parts: int = 0,
        pace: Pace | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        try:
            peer_id = int(chat_id)
        except ValueError as e:
            raise PermanentError(f"VK peer id must be a number, got {chat_id!r}") from e
        parts = _plan(message)
        ids: list[str] = []
        for index, part in enumerate(parts):
            if index < skip_parts:
                continue
            try:
                random_id = key * PARTS_PER_KEY + index
                ids.append(str(await self._send_part(peer_id, part, random_id, pace)))
            except Exception as e:
                error = map_error(e)
                if index > skip_parts:
                    raise PartialSend(index, ids, error) from e
                raise error from e
            if progress is not None and index < len(parts) - 1:
                await progress(index + 1, ids)
        return ids

    async def _send_part(self, peer_id: int, part: _Part, random_id: int, pace: Pace | None) -> int:
        params: dict[str, Any] = {"peer_id": peer_id, "random_id": random_id}
        if part.text:
            params["message"] = part.text
        if part.image:
            params["attachment"] = await self._photo(part.image, peer_id, pace)
        if part.sticker_id is not None:
            params["sticker_id"] = part.sticker_id
        if part.keyboard:
            params["keyboard"] = part.keyboard
        if pace is not None:
            await pace()
        response = await self.api.request("messages.send", params)
        return int(response["response"])

    async def _photo(self, image: str, peer_id: int, pace: Pace | None) -> str:
        if image in self._photos:
            return self._photos[image]
        source: str | bytes = image
        if image.startswith(("http://", "https://")):
            source = await _download(image)
        api: Any = self.api if pace is None else _PacedAPI(self.api, pace)
        try:
            attachment = await PhotoMessageUploader(api).upload(source, peer_id=peer_id)
        except (FileNotFoundError, IsADirectoryError) as e:
            raise PermanentError(f"image file not found: {image}") from e
        self._photos[image] = attachment
        return attachment

    async def close(self) -> None:
        await self.api.http_client.close()


__all__ = [
    "TokenRefused",
    "VKBadResponse",
    "VKSender",
    "build_bot",
    "callback_handler",
    "check_token",
    "event_to_inbound",
    "make_api",
    "map_error",
    "render_keyboard",
    "run_long_poll",
    "unwrap_payload",
]
