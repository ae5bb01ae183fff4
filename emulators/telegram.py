"""A local Telegram Bot API server (aiohttp) that the real aiogram client cannot tell from Telegram.

Used by tests, benchmarks and the sandbox: subscribers are simulated with Python methods
(`send_text`, `press_button`, `press_reply_button`, `send_contact`, ...) or the HTTP control API
under `/_control/`; what the bot did is recorded (`sent`, `history`, `calls`, and the reply
keyboard each chat shows, `reply_keyboard`); faults (429, 403, 5xx, blocked users, real rate limits) are
injected with `fail`, `block` and `enforce_limits`. Updates reach the bot by `getUpdates` long
polling or by webhook delivery (in order, retried until the bot answers 2xx).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulators.rates import max_in_window
from emulators.telegram_api import (
    SECRET_HEADER,
    BotApi,
    Fault,
    Files,
    Params,
    PendingUpdate,
    State,
)
from emulators.telegram_control import ACTIONS, add_control_routes
from emulators.telegram_objects import (
    BOT_FIRST_NAME,
    FAKE_JPEG,
    ApiError,
    bad_request,
    callback_datas,
    decode_json_fields,
    default_description,
    keyboard_buttons,
    now,
    private_chat,
    user_obj,
)

log = logging.getLogger(__name__)
__all__ = ["SECRET_HEADER", "TelegramEmulator"]


class TelegramEmulator(BotApi):
    """A fake api.telegram.org for one bot. See the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_username: str = "supportbot_test_bot",
        webhook_retry_delay: float = 0.2,
        enforce_limits: bool = False,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = 10.0
        self.enforce_limits = enforce_limits
        self.bot_user = user_obj(self.bot_id, BOT_FIRST_NAME, bot_username, is_bot=True)
        self._s = State()
        self._changed = asyncio.Event()
        self._closing = False
        self._webhook: dict[str, Any] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.on_sent: list[Callable[[dict[str, Any]], None]] = []  # called with each sent() entry
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._methods: dict[str, Callable[[Params, Files], Awaitable[Any]]] = {
            name.lower(): getattr(self, f"_m_{name}")
            for name in (
                "getMe getUpdates setWebhook deleteWebhook getWebhookInfo sendMessage sendPhoto "
                "sendSticker sendChatAction answerCallbackQuery editMessageReplyMarkup "
                "editMessageText setMyCommands getMyCommands deleteMyCommands getFile "
                "createForumTopic editForumTopic closeForumTopic reopenForumTopic "
                "deleteForumTopic getChat close logOut"
            ).split()
        }
        self.app = web.Application()
        self.app.router.add_route("*", "/bot{token}/{method}", self._api)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        add_control_routes(
            self.app,
            {name: getattr(self, name) for name in ACTIONS},
            sent=self.sent,
            history=self.history,
            calls=lambda: self.calls,
            keyboard=self.reply_keyboard,
        )
        self.app.on_cleanup.append(self._on_cleanup)

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._closing = False
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock_port = self._runner.addresses[-1][1]
        self._base_url = f"http://{host}:{sock_port}"
        return self._base_url

    async def stop(self) -> None:
        await self._shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._closing = True
        self._notify()
        await self._stop_webhook_task()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not started: call `await emulator.start()`")
        return self._base_url

    def reset(self) -> None:
        """Forget everything: chats, updates, records, faults, webhook."""
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        self._webhook = None
        self._s = State()
        self._notify()

    # ---------------------------------------------------------------- HTTP plumbing

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        status, body = 200, None
        params: Params = {}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            impl = self._methods.get(method)
            if impl is None:
                raise ApiError(404, "Not Found")
            params, files = await self._read_params(request)
            chat_id = str(params["chat_id"]) if params.get("chat_id") is not None else None
            self._check_faults(method, chat_id)
            result = await impl(params, files)
            body = {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.code, exc.envelope()
        except Exception as exc:  # an emulator bug must still look like Telegram to the client
            log.exception("emulator: %s failed", method)
            status, body = 500, ApiError(500, f"Internal Server Error: {exc}").envelope()
        self._s.calls.append(
            {
                "method": request.match_info["method"],
                "params": {k: v for k, v in params.items()},
                "status": status,
                "at": time.monotonic(),
            }
        )
        return web.json_response(body, status=status)

    async def _read_params(self, request: web.Request) -> tuple[Params, Files]:
        params: Params = dict(request.query)
        files: Files = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    data = await request.json()
                except ValueError:
                    raise bad_request("can't parse JSON object") from None
                if not isinstance(data, dict):
                    raise bad_request("parameters must be a JSON object")
                params.update(data)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        files[key] = value
                        params.setdefault(key, f"<upload {value.filename}>")
                    else:
                        params[key] = value
        return decode_json_fields(params), files

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").envelope(), status=401)
        stored = self._s.files.by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").envelope(), status=404)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    def _check_faults(self, method: str, chat_id: str | None) -> None:
        for fault in self._s.faults:
            if fault.matches(method, chat_id):
                if fault.after > 0:  # let this many matching calls succeed first
                    fault.after -= 1
                    continue
                if fault.times is not None:
                    fault.times -= 1
                raise ApiError(fault.error_code, fault.description, fault.retry_after)

    # ---------------------------------------------------------------- subscriber actions

    def _subscriber(
        self, user_id: int, first_name: str | None = None, username: str | None = None
    ) -> dict[str, Any]:
        user = self._s.users.get(user_id)
        if user is None or first_name is not None or username is not None:
            old = user or {}
            user = user_obj(
                user_id,
                first_name or old.get("first_name", "Иван"),
                username or old.get("username"),
            )
            self._s.users[user_id] = user
        if user_id not in self._s.chats:
            self._s.chats[user_id] = private_chat(user)
        return user

    def _user_message(
        self,
        user_id: int,
        chat_id: int | None = None,
        thread_id: int | None = None,
        first_name: str | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        user = self._subscriber(user_id, first_name, username)
        chat = self._s.chats.get(chat_id if chat_id is not None else user_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}: create it with create_group() first")
        return self._new_message(chat, user, thread_id)

    def _post(self, message: dict[str, Any], key: str = "message") -> dict[str, Any]:
        self._record_history(message["chat"]["id"], "subscriber", message)
        return self._add_update({key: message})

    def add_user(
        self, user_id: int, *, first_name: str = "Иван", username: str | None = None
    ) -> dict[str, Any]:
        """A subscriber who started the bot some time ago: their private chat exists (the bot may
        write to it), but no update is queued. For broadcasts to many known chats."""
        self._subscriber(user_id, first_name, username)
        return self._s.chats[user_id]

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Иван",
        username: str | None = None,
        chat_id: int | None = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """The subscriber writes `text` (a `/command` gets a bot_command entity, as in Telegram)."""
        message = self._user_message(user_id, chat_id, message_thread_id, first_name, username)
        message["text"] = text
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0]) if text.strip() else 1
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._post(message)

    def press_button(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The subscriber presses the inline button with callback `data` under a bot message."""
        user = self._subscriber(user_id)
        cid = chat_id if chat_id is not None else user_id
        message = self._s.messages.get((cid, message_id))
        if message is None or message["from"]["id"] != self.bot_id:
            raise ValueError(f"no bot message {message_id} in chat {cid}")
        available = callback_datas(message.get("reply_markup"))
        if data not in available:
            raise ValueError(f"message {message_id} has no button {data!r}; buttons: {available}")
        query_id = str(self.bot_id * 1000 + self._s.next_callback)
        self._s.next_callback += 1
        self._s.open_callbacks[query_id] = user_id
        query = {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": str(-cid * 7 + 3),
            "data": data,
        }
        self._s.history.setdefault(cid, []).append(
            {"from": "subscriber", "message_id": message_id, "kind": "button", "text": None,
             "caption": None, "data": data, "at": time.monotonic()}
        )  # fmt: skip
        return self._add_update({"callback_query": query})

    def press_reply_button(
        self, user_id: int, text: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The subscriber taps a text button of the reply keyboard their chat shows: Telegram
        sends the button's text as an ordinary message (and hides a one-time keyboard)."""
        cid = chat_id if chat_id is not None else user_id
        keyboard = self._s.keyboards.get(cid)
        button = next((b for b in keyboard_buttons(keyboard) if b.get("text") == text), None)
        if button is None:
            shown = [b.get("text") for b in keyboard_buttons(keyboard)]
            raise ValueError(f"chat {cid} shows no reply button {text!r}; buttons: {shown}")
        if button.get("request_contact") or button.get("request_location"):
            raise ValueError(f"{text!r} shares a contact or a location: use send_contact")
        message = self._user_message(user_id, chat_id)  # keeps the subscriber's name
        message["text"] = text
        update = self._post(message)
        self._used_keyboard(cid)
        return update

    def send_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        own: bool = True,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_user_id: int | None = None,
    ) -> dict[str, Any]:
        """The subscriber shares a phone contact.

        `own=True`: their own (the «Поделиться номером» button of a reply keyboard, or their
        own card from the attachment menu): `contact.user_id` is the sender's id, and, as Telegram
        does, the number comes in digits only ("79110000001"). `own=False`: somebody else's
        contact, from the phone book or forwarded: `contact.user_id` is `contact_user_id` (that
        person's Telegram id, if they have one; none by default) and the number is as given."""
        digits = "".join(c for c in phone_number if c.isdigit())
        if not digits:
            raise ValueError(f"not a phone number: {phone_number!r}")
        if own and contact_user_id not in (None, user_id):
            raise ValueError("an own contact carries the sender's own user id")
        if not own and contact_user_id == user_id:
            raise ValueError("somebody else's contact can't carry the sender's user id")
        message = self._user_message(user_id)
        sender = message["from"]
        contact: dict[str, Any] = {
            "phone_number": digits if own else phone_number,
            "first_name": first_name or (sender["first_name"] if own else "Пётр"),
        }
        if last_name or (own and sender.get("last_name")):
            contact["last_name"] = last_name or sender["last_name"]
        if own:
            contact["user_id"] = user_id
        elif contact_user_id is not None:
            contact["user_id"] = contact_user_id
        message["contact"] = contact
        update = self._post(message)
        shown = keyboard_buttons(self._s.keyboards.get(user_id))
        if own and any(b.get("request_contact") for b in shown):
            self._used_keyboard(user_id)  # shared with the keyboard's button
        return update

    def _used_keyboard(self, chat_id: int) -> None:
        """A button of the chat's reply keyboard was used: a one-time keyboard hides."""
        keyboard = self._s.keyboards.get(chat_id)
        if keyboard is not None and keyboard.get("one_time_keyboard"):
            del self._s.keyboards[chat_id]

    def send_photo(self, user_id: int, caption: str | None = None) -> dict[str, Any]:
        message = self._user_message(user_id)
        message["photo"] = self._s.files.photo_sizes(FAKE_JPEG)
        if caption is not None:
            message["caption"] = caption
        return self._post(message)

    def send_sticker(self, user_id: int, emoji: str = "👍") -> dict[str, Any]:
        message = self._user_message(user_id)
        message["sticker"] = self._s.files.sticker(emoji)
        return self._post(message)

    def edit_text(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The subscriber edits their earlier text message (an `edited_message` update)."""
        self._subscriber(user_id)
        original = self._s.messages.get((user_id, message_id))
        if original is None or original["from"]["id"] != user_id or "text" not in original:
            raise ValueError(f"no text message {message_id} from user {user_id}")
        original["text"] = text
        edited = {**original, "edit_date": now()}
        self._record_history(user_id, "subscriber", edited, edited=True)
        return self._add_update({"edited_message": edited})

    def send_other(self, user_id: int, kind: str = "voice") -> dict[str, Any]:
        message = self._user_message(user_id)
        if kind in ("voice", "video", "document"):
            message[kind] = self._s.files.media(kind)
        elif kind == "location":
            message["location"] = {"latitude": 59.7163, "longitude": 30.4158}
        elif kind == "contact":
            message["contact"] = {
                "phone_number": "+79001234567",
                "first_name": message["from"]["first_name"],
                "user_id": user_id,
            }
        else:
            raise ValueError(f"unknown kind {kind!r}: voice, video, document, location, contact")
        return self._post(message)

    def inject_update(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update as is (an update_id is added when missing); for malformed-input tests."""
        return self._add_update(dict(raw))

    def redeliver(self, update_id: int) -> dict[str, Any]:
        """Deliver an already delivered update again, as Telegram does after a webhook timeout."""
        update = self._s.updates.get(update_id)
        if update is None:
            raise ValueError(f"unknown update_id {update_id}")
        self._s.pending.append(PendingUpdate(update, redelivery=True))
        self._s.unfiltered = True
        self._notify()
        return update

    def create_group(self, title: str = "Operators", *, forum: bool = True) -> dict[str, Any]:
        """A supergroup the bot is in (a forum when `forum`), e.g. the operators' group."""
        chat_id = self._s.next_group_id
        self._s.next_group_id -= 1
        chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            chat["is_forum"] = True
        self._s.chats[chat_id] = chat
        self._s.topics[chat_id] = {}
        return chat

    # ---------------------------------------------------------------- what the bot did

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        if chat_id is None:
            return list(self._s.sent)
        return [s for s in self._s.sent if str(s["chat_id"]) == str(chat_id)]

    def history(self, chat_id: int | str) -> list[dict[str, Any]]:
        return list(self._s.history.get(int(chat_id), []))

    def reply_keyboard(self, chat_id: int | str) -> dict[str, Any] | None:
        """The reply keyboard the chat shows under its input field now (the ReplyKeyboardMarkup
        as the bot sent it), or None: none sent, removed, or a one-time keyboard already used."""
        return self._s.keyboards.get(int(chat_id))

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._s.calls

    @property
    def callback_answers(self) -> list[dict[str, Any]]:
        return self._s.callback_answers

    @property
    def webhook_attempts(self) -> list[dict[str, Any]]:
        return self._s.webhook_attempts

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return [p.update for p in self._s.pending]

    @property
    def commands(self) -> list[dict[str, Any]]:
        return self._s.commands

    def topics(self, chat_id: int) -> list[dict[str, Any]]:
        return [
            {"message_thread_id": t.thread_id, "name": t.name, "closed": t.closed}
            for t in self._s.topics.get(chat_id, {}).values()
        ]

    async def wait_sent(
        self,
        chat_id: int | str | None,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109 (the public API of the test helper)
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent at least `count` messages to `chat_id` (None = anywhere)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := self.sent(chat_id)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                listing = "\n".join(
                    f"  {s['method']} -> {s['chat_id']}: {(s['text'] or s['caption'] or '')[:80]!r}"
                    for s in self.sent()
                )
                raise TimeoutError(
                    f"expected {count} message(s) to chat {chat_id} within {timeout}s, got "
                    f"{len(found)}; everything sent:\n{listing or '  (nothing)'}"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.05))
        return found

    def max_rate_per_second(self, chat_id: int | str | None = None) -> int:
        return max_in_window(
            t for t, c in self._s.send_times if chat_id is None or str(c) == str(chat_id)
        )

    # ---------------------------------------------------------------- faults

    def fail(
        self,
        method: str = "sendMessage",
        *,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int | None = None,
        seconds: float | None = None,
        chat_id: int | str | None = None,
        after: int = 0,
    ) -> None:
        """Make matching calls fail with the real envelope for `times` calls / `seconds` (or until
        `clear_faults`), once `after` matching calls went through (to break a multi-part send
        midway). A 429 always carries parameters.retry_after (default 1)."""
        if error_code == 429 and retry_after is None:
            retry_after = 1
        self._s.faults.append(
            Fault(
                method=method,
                error_code=error_code,
                description=description or default_description(error_code, retry_after),
                retry_after=retry_after,
                times=times,
                until=time.monotonic() + seconds if seconds is not None else None,
                chat_id=str(chat_id) if chat_id is not None else None,
                after=after,
            )
        )

    def block(self, user_id: int) -> None:
        self._s.blocked.add(int(user_id))

    def unblock(self, user_id: int) -> None:
        self._s.blocked.discard(int(user_id))

    def clear_faults(self) -> None:
        """Drop every `fail` rule and unblock everyone."""
        self._s.faults.clear()
        self._s.blocked.clear()
