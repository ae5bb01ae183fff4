"""A local VK API server (API v5.199) that the real vkbottle client cannot tell from VK.

It serves `/method/{name}` (the API methods a support bot uses), the Bots Long Poll endpoint, the
photo upload endpoint, a Callback API deliverer, and `/_control/*` (JSON twins of the Python
methods below) so tests, benchmarks and the sandbox can play the subscriber and see what the bot
did. Faults (API errors, blocked users, rate limits, long-poll failures) are injectable.

    emu = VKEmulator()
    await emu.start()                      # -> "http://127.0.0.1:PORT"
    api = bots.vk.make_api(emu.token, api_url=emu.api_url)
    emu.send_text(1001, "привет")          # a subscriber writes; long poll / callback get it
    await emu.wait_sent(1001, 1)           # the bot answered

Longer than our usual module on purpose: the API methods, Long Poll and Callback delivery share
one state (the events queue, the users, the fault switches), and the subscriber's side reads
best next to what the bot sees of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .rates import max_in_window
from .vk_events import (
    CLIENT_INFO,
    VKAPIFailure,
    envelope,
    media_object,
    message_object,
    photo_object,
    sticker_object,
)
from .vk_methods import VKMethods, peers_of

# VK's limit for a community token (error 6 beyond); like the limits in vk_events.py, our own
# copy on purpose: the emulator plays VK, it does not read the product's dialogs/limits.py.
RATE_LIMIT_PER_SECOND = 20
# 1x1 JPEG-ish stand-in served for photos the subscriber "sent".
_TINY_JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


@dataclass
class _Fault:
    method: str
    code: int
    msg: str | None
    times: int | None
    until: float | None
    peer_id: int | None
    after: int = 0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class VKEmulator(VKMethods):
    """VK API + Bots Long Poll + Callback API deliverer for one community (group)."""

    def __init__(
        self,
        token: str = "vk1.a.test-group-token",
        group_id: int = 229000001,
        *,
        confirmation_code: str = "a1b2c3d4",
        enforce_limits: bool = False,
        callback_retry_delay: float = 0.2,
    ) -> None:
        self.token = token
        self.group_id = group_id
        self.confirmation_code = confirmation_code
        self.enforce_limits = enforce_limits
        self.callback_retry_delay = callback_retry_delay
        self.users: dict[int, tuple[str, str]] = {}
        self.app = web.Application()
        self.app.add_routes(
            [
                web.route("*", "/method/{name}", self._handle_method),
                web.route("*", "/longpoll/{group_id}", self._handle_longpoll),
                web.post("/upload/photo", self._handle_upload),
                web.get("/photos/{name}", self._handle_photo_file),
            ]
        )
        self.app.add_routes(self._control_routes())
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        # Counters survive reset() so ids and long-poll ts stay monotonic, like on VK.
        self._next_message_id = 1
        self._next_media_id = 457239017
        self._cmid: dict[int, int] = {}
        self._events: list[dict[str, Any]] = []  # retained long-poll history
        self._first_ts = 1  # ts of self._events[0]
        self._lp_key = secrets.token_hex(16)
        self._lp_forced: int | None = None
        self._lp_listening = 0  # a_check requests waiting right now
        self._wake = asyncio.Event()
        self._closing = False
        self._cb_url: str | None = None
        self._cb_secret: str | None = None
        self._cb_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._cb_task: asyncio.Task[None] | None = None
        self._cb_session: aiohttp.ClientSession | None = None
        self._sent_changed = asyncio.Event()
        self._clear_records()

    def _clear_records(self) -> None:
        self._sent: list[dict[str, Any]] = []
        self._history: list[dict[str, Any]] = []
        self.event_answers: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.callback_attempts: list[dict[str, Any]] = []
        self.callback_confirmation: dict[str, Any] | None = None
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        self._dedupe: dict[tuple[int, int], int] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._open_events: set[str] = set()  # message_event ids that can be answered
        self._media: set[tuple[str, int, int]] = set()
        self._photo_bytes: dict[str, bytes] = {}
        self._uploads: dict[str, bytes] = {}
        self._request_times: list[float] = []
        self._token_times: dict[str, deque[float]] = {}

    # ------------------------------------------------------------------ server lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._closing = False
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addr = self._runner.addresses[0]
        self._base_url = f"http://{addr[0]}:{addr[1]}"
        return self._base_url

    async def stop(self) -> None:
        self._closing = True
        self._wake_pollers()
        await self._stop_callback()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("VKEmulator is not started: await emu.start() first")
        return self._base_url

    @property
    def api_url(self) -> str:
        return self.base_url + "/method/"

    def reset(self) -> None:
        """Forget everything recorded (sent, calls, faults, callback server...); ids stay monotonic."""
        self._clear_records()
        self._first_ts += len(self._events)
        self._events = []
        self._lp_forced = None
        self._cb_url = None
        if self._cb_task is not None:
            self._cb_task.cancel()
            self._cb_task = None

    # ------------------------------------------------------------------ subscriber actions
    def send_text(self, user_id: int, text: str, *, payload: str | None = None) -> dict[str, Any]:
        """The subscriber writes `text` (or presses a text keyboard button carrying `payload`)."""
        return self._user_message(user_id, text, payload=payload)

    def send_photo(self, user_id: int, text: str = "") -> dict[str, Any]:
        photo_id = self._new_media_id()
        self._media.add(("photo", user_id, photo_id))
        self._photo_bytes[f"{user_id}_{photo_id}"] = _TINY_JPEG
        url = f"{self.base_url}/photos/{user_id}_{photo_id}.jpg"
        photo = photo_object(photo_id, user_id, url, secrets.token_hex(9))
        return self._user_message(user_id, text, attachments=[{"type": "photo", "photo": photo}])

    def send_sticker(self, user_id: int, sticker_id: int = 9014) -> dict[str, Any]:
        sticker = sticker_object(sticker_id, self.base_url)
        return self._user_message(
            user_id, "", attachments=[{"type": "sticker", "sticker": sticker}]
        )

    def send_other(self, user_id: int, kind: str = "audio_message") -> dict[str, Any]:
        """An attachment the bot does not understand: audio_message (voice), doc, video, audio."""
        item_id = self._new_media_id()
        body = media_object(kind, item_id, user_id, self.base_url)
        self._media.add((kind, user_id, item_id))
        return self._user_message(user_id, "", attachments=[{"type": kind, kind: body}])

    def press_callback(
        self, user_id: int, payload: str | dict[str, Any], conversation_message_id: int
    ) -> dict[str, Any]:
        """The subscriber presses a callback button (payload = the button's JSON payload)."""
        event_id = secrets.token_hex(6)
        obj = {
            "user_id": user_id,
            "peer_id": user_id,
            "event_id": event_id,
            "payload": json.loads(payload) if isinstance(payload, str) else payload,
            "conversation_message_id": conversation_message_id,
        }
        self._open_events.add(event_id)
        self._history.append(
            {"from": "subscriber", "peer_id": user_id, "event": "message_event", "payload": obj["payload"],
             "conversation_message_id": conversation_message_id, "at": time.monotonic()}
        )  # fmt: skip
        return self._publish(envelope("message_event", obj, self.group_id))

    def inject_event(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Publish any event dict as is (e.g. without event_id, or of a type the bot ignores)."""
        if raw.get("type") == "message_event":
            self._open_events.add(str(raw.get("object", {}).get("event_id", "")))
        return self._publish(raw)

    def redeliver(self, event_id: str) -> dict[str, Any]:
        """Deliver an already published event again, same event_id (VK does this on timeouts)."""
        return self._publish(self._by_id[event_id])

    def set_user(self, user_id: int, first_name: str, last_name: str) -> None:
        self.users[user_id] = (first_name, last_name)

    # ------------------------------------------------------------------ what the bot did
    def sent(self, peer_id: int | None = None) -> list[dict[str, Any]]:
        return [dict(m) for m in self._sent if peer_id is None or m["peer_id"] == peer_id]

    def history(self, peer_id: int) -> list[dict[str, Any]]:
        return [dict(h) for h in self._history if h["peer_id"] == peer_id]

    async def wait_sent(
        self,
        peer_id: int,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until the bot sent `count` messages to `peer_id`; return them."""
        deadline = time.monotonic() + timeout
        while len(self.sent(peer_id)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [
                    (m["message_id"], (m["text"] or "")[:60], m["sticker_id"])
                    for m in self.sent(peer_id)
                ]
                others = sorted({m["peer_id"] for m in self._sent} - {peer_id})
                errors = [c for c in self.calls if c["error"] is not None][-5:]
                raise TimeoutError(
                    f"expected {count} message(s) to peer {peer_id} within {timeout}s, got {len(got)}: "
                    f"{got}; messages to other peers: {others}; last API errors: {errors}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent_changed.wait(), remaining)
        return self.sent(peer_id)[:count]

    async def wait_listening(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until a bot is waiting in Long Poll. Like on VK, events published before a bot's
        first groups.getLongPollServer are not delivered to it (its ts starts after them)."""
        async with asyncio.timeout(timeout):
            while not self._lp_listening:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    def max_rate_per_second(self, window: float = 1.0) -> int:
        """The largest number of API requests inside any `window`-second window (a test of a
        sender's pacing passes a little less than 1 s: arrival times carry the network's jitter)."""
        return max_in_window(self._request_times, window)

    def request_span(self) -> float:
        """Seconds from the first API request to the last."""
        return max(self._request_times) - min(self._request_times)

    # ------------------------------------------------------------------ faults
    def fail(
        self,
        method: str = "messages.send",
        *,
        error_code: int = 6,
        error_msg: str | None = None,
        times: int | None = None,
        seconds: float | None = None,
        peer_id: int | None = None,
        after: int = 0,
    ) -> None:
        """Answer `method` ("*" = any) with an API error: `times` times, for `seconds`, or until
        cleared; only calls to `peer_id` if given; the first `after` matching calls still succeed."""
        until = time.monotonic() + seconds if seconds is not None else None
        self._faults.append(_Fault(method, error_code, error_msg, times, until, peer_id, after))

    def block(self, user_id: int) -> None:
        """The subscriber forbids messages from the community: sends to them get error 901."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._blocked.clear()
        self._lp_forced = None

    def expire_longpoll_key(self) -> None:
        """The current long-poll key stops working: the next a_check gets {"failed": 2}."""
        self._lp_key = secrets.token_hex(16)
        self._wake_pollers()

    def force_longpoll_failure(self, code: int) -> None:
        """The next a_check answers {"failed": code} (1: ts outdated, 2: key expired, 3: info lost)."""
        if code not in (1, 2, 3):
            raise ValueError("long poll failure codes are 1, 2, 3")
        self._lp_forced = code
        if code in (2, 3):
            self._lp_key = secrets.token_hex(16)
        self._wake_pollers()

    # ------------------------------------------------------------------ callback API
    async def set_callback_server(self, url: str, secret: str | None = None) -> bool:
        """Register a Callback API server: confirm it, then deliver every new event to it in order."""
        await self._stop_callback()
        self._cb_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body: dict[str, Any] = {"type": "confirmation", "group_id": self.group_id}
        if secret:
            body["secret"] = secret
        status, text, error = await self._post_callback(url, body)
        confirmed = status == 200 and text.strip() == self.confirmation_code
        self.callback_confirmation = {
            "url": url,
            "status": status,
            "body": text,
            "error": error,
            "confirmed": confirmed,
        }
        if confirmed:
            self._cb_url, self._cb_secret = url, secret
            self._cb_queue = asyncio.Queue()
            self._cb_task = asyncio.create_task(self._callback_worker(self._cb_queue))
        return confirmed

    async def wait_callback_idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every published event was acknowledged by the callback server."""
        if self._cb_queue is not None:
            await asyncio.wait_for(self._cb_queue.join(), timeout)

    async def _post_callback(
        self, url: str, body: dict[str, Any]
    ) -> tuple[int | None, str, str | None]:
        assert self._cb_session is not None
        try:
            async with self._cb_session.post(url, json=body) as resp:
                return resp.status, await resp.text(), None
        except (aiohttp.ClientError, TimeoutError) as e:
            return None, "", repr(e)

    async def _callback_worker(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            try:
                while self._cb_url is not None:
                    body = dict(event)
                    if self._cb_secret:
                        body["secret"] = self._cb_secret
                    status, text, error = await self._post_callback(self._cb_url, body)
                    ok = status is not None and 200 <= status < 300 and text.strip() == "ok"
                    self.callback_attempts.append(
                        {"event_id": event.get("event_id"), "type": event.get("type"), "status": status,
                         "body": text[:200], "error": error, "ok": ok, "at": time.monotonic()}
                    )  # fmt: skip
                    if ok:
                        break
                    await asyncio.sleep(self.callback_retry_delay)
            finally:
                queue.task_done()

    async def _stop_callback(self) -> None:
        self._cb_url = None
        if self._cb_task is not None:
            self._cb_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cb_task
            self._cb_task = None
        if self._cb_session is not None:
            await self._cb_session.close()
            self._cb_session = None

    # ------------------------------------------------------------------ internals: events
    def _new_media_id(self) -> int:
        self._next_media_id += 1
        return self._next_media_id

    def _new_message(self, peer_id: int) -> tuple[int, int]:
        message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        self._cmid[peer_id] = self._cmid.get(peer_id, 0) + 1
        return message_id, self._cmid[peer_id]

    def _user_message(
        self,
        user_id: int,
        text: str,
        *,
        payload: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        message_id, cmid = self._new_message(user_id)
        message = message_object(
            message_id=message_id, peer_id=user_id, from_id=user_id, cmid=cmid,
            text=text, payload=payload, attachments=attachments,
        )  # fmt: skip
        self._history.append(
            {"from": "subscriber", "peer_id": user_id, "message_id": message_id, "conversation_message_id": cmid,
             "text": text, "payload": payload, "attachments": attachments or [], "at": time.monotonic()}
        )  # fmt: skip
        obj = {"message": message, "client_info": CLIENT_INFO}
        return self._publish(envelope("message_new", obj, self.group_id))

    def _publish(self, event: dict[str, Any]) -> dict[str, Any]:
        self._events.append(event)
        if "event_id" in event:
            self._by_id[str(event["event_id"])] = event
        if self._cb_queue is not None and self._cb_url is not None:
            self._cb_queue.put_nowait(event)
        self._wake_pollers()
        return event

    def _wake_pollers(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    @property
    def _next_ts(self) -> int:
        return self._first_ts + len(self._events)

    # ------------------------------------------------------------------ HTTP: long poll
    async def _handle_longpoll(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        if request.match_info["group_id"] != str(self.group_id) or params.get("act") != "a_check":
            return _json({"failed": 2})
        try:
            ts = int(params.get("ts", ""))
            wait = max(0, min(int(params.get("wait") or 25), 90))
        except ValueError:
            return _json({"failed": 1, "ts": str(self._next_ts)})
        deadline = time.monotonic() + wait
        while True:
            if self._lp_forced is not None:
                code, self._lp_forced = self._lp_forced, None
                return _json(
                    {"failed": 1, "ts": str(self._next_ts)} if code == 1 else {"failed": code}
                )
            if params.get("key") != self._lp_key:
                return _json({"failed": 2})
            if ts < self._first_ts or ts > self._next_ts:
                return _json({"failed": 1, "ts": str(self._next_ts)})
            updates = self._events[ts - self._first_ts :]
            remaining = deadline - time.monotonic()
            if updates or remaining <= 0 or self._closing:
                return _json({"ts": str(self._next_ts), "updates": updates})
            self._lp_listening += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
            finally:
                self._lp_listening -= 1

    # ------------------------------------------------------------------ HTTP: API methods
    async def _params(self, request: web.Request) -> dict[str, str]:
        params = {k: v for k, v in request.query.items()}
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = {}
                for k, v in (body if isinstance(body, dict) else {}).items():
                    params[k] = (
                        json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v)
                    )
            else:
                for k, v in (await request.post()).items():
                    if isinstance(v, str):
                        params[k] = v
        return params

    async def _handle_method(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        params = await self._params(request)
        token = params.pop("access_token", "") or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        now = time.monotonic()
        self._request_times.append(now)
        call: dict[str, Any] = {"method": name, "params": dict(params), "error": None, "at": now}
        self.calls.append(call)
        try:
            handler = self._methods().get(name)
            if handler is None:
                raise VKAPIFailure(3)
            if not secrets.compare_digest(token.encode(), self.token.encode()):
                raise VKAPIFailure(5)
            if "v" not in params:
                raise VKAPIFailure(8, "Invalid request: v (version) is required")
            if self.enforce_limits:
                self._check_rate(token, now)
            self._check_faults(name, params)
            result = handler(params)
        except VKAPIFailure as e:
            call["error"] = e.code
            request_params = [{"key": "method", "value": name}, {"key": "oauth", "value": "1"}]
            request_params += [{"key": k, "value": v} for k, v in params.items() if k != "keyboard"]
            error = {
                "error_code": e.code,
                "error_msg": e.msg,
                "request_params": request_params,
                **e.extra,
            }
            return _json({"error": error})
        return _json({"response": result})

    def _check_rate(self, token: str, now: float) -> None:
        window = self._token_times.setdefault(token, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= RATE_LIMIT_PER_SECOND:
            raise VKAPIFailure(6)
        window.append(now)

    def _check_faults(self, method: str, params: dict[str, str]) -> None:
        now = time.monotonic()
        self._faults = [
            f for f in self._faults if (f.until is None or f.until > now) and f.times != 0
        ]
        for fault in self._faults:
            if fault.method not in ("*", method):
                continue
            if fault.peer_id is not None and fault.peer_id not in peers_of(params):
                continue
            if fault.after > 0:
                fault.after -= 1
                continue
            if fault.times is not None:
                fault.times -= 1
            extra: dict[str, Any] = {}
            if fault.code == 14:
                extra = {"captcha_sid": "1", "captcha_img": f"{self.base_url}/captcha.jpg"}
            raise VKAPIFailure(fault.code, fault.msg, **extra)

    # ------------------------------------------------------------------ HTTP: upload + files
    async def _handle_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        field = form.get("photo")
        if field is None or isinstance(field, str):
            return _json({"error": "ERR_UPLOAD_FILE_NOT_UPLOADED: file not uploaded"})
        data = field.file.read() if isinstance(field, web.FileField) else bytes(field)
        if not data:
            return _json({"error": "ERR_UPLOAD_BAD_IMAGE_SIZE: image is empty"})
        token = secrets.token_hex(16)
        self._uploads[token] = data
        photo = json.dumps(
            [{"markers_restarted": True, "photo": token, "sizes": [], "latitude": 0}]
        )
        return _json({"server": 1, "photo": photo, "hash": hashlib.md5(token.encode()).hexdigest()})

    async def _handle_photo_file(self, request: web.Request) -> web.Response:
        data = self._photo_bytes.get(request.match_info["name"].removesuffix(".jpg"))
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg")

    # ------------------------------------------------------------------ HTTP: control API
    def _control_routes(self) -> list[web.RouteDef]:
        def post(name: str, fn: Any) -> web.RouteDef:
            async def handler(request: web.Request) -> web.Response:
                body = await request.json() if request.can_read_body else {}
                try:
                    result = fn(**body)
                    if asyncio.iscoroutine(result):
                        result = await result
                except (TypeError, ValueError, KeyError) as e:
                    return _json({"error": f"{type(e).__name__}: {e}"}, status=400)
                return _json(result if result is not None else {"ok": True})

            return web.post(f"/_control/{name}", handler)

        def peer_arg(request: web.Request) -> int | None:
            raw = request.query.get("peer_id")
            return int(raw) if raw else None

        async def sent(request: web.Request) -> web.Response:
            return _json(self.sent(peer_arg(request)))

        async def history(request: web.Request) -> web.Response:
            return _json(self.history(peer_arg(request) or 0))

        async def calls(request: web.Request) -> web.Response:
            return _json(self.calls)

        async def set_callback(url: str, secret: str | None = None) -> dict[str, Any]:
            return {"confirmed": await self.set_callback_server(url, secret)}

        actions = {
            "send_text": self.send_text,
            "press_callback": self.press_callback,
            "send_photo": self.send_photo,
            "send_sticker": self.send_sticker,
            "send_other": self.send_other,
            "inject_event": lambda **raw: self.inject_event(raw),
            "fail": self.fail,
            "block": self.block,
            "unblock": self.unblock,
            "clear_faults": self.clear_faults,
            "set_callback_server": set_callback,
            "reset": self.reset,
        }
        routes = [post(name, fn) for name, fn in actions.items()]
        routes += [
            web.get("/_control/sent", sent),
            web.get("/_control/history", history),
            web.get("/_control/calls", calls),
        ]
        return routes


__all__ = ["VKAPIFailure", "VKEmulator"]
