"""The Bot API half of the Telegram emulator: state, method implementations, webhook delivery.

`TelegramEmulator` (emulators/telegram.py) adds the HTTP server, the subscriber actions, the
records and the fault controls on top of `BotApi`.

It is longer than our usual module on purpose: it is one table of the Bot API methods our bots
call, each checking its arguments the way Telegram does; split up, a reader could no longer see
what the emulated API covers in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from emulators.telegram_objects import (
    CHAT_BURST,
    CHAT_PER_SECOND,
    FAKE_JPEG,
    MAX_CAPTION,
    MAX_PER_SECOND,
    MAX_TEXT,
    ApiError,
    FileStore,
    bad_request,
    check_reply_markup,
    message_kind,
    now,
    parse_bool,
    update_type,
)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TOPIC_ICON_COLOR = 7322096
Params = dict[str, Any]
Files = dict[str, web.FileField]


@dataclass(eq=False)
class PendingUpdate:
    update: dict[str, Any]
    redelivery: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class Fault:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    times: int | None
    until: float | None
    chat_id: str | None
    after: int = 0

    def matches(self, method: str, chat_id: str | None) -> bool:
        if self.until is not None and time.monotonic() >= self.until:
            return False
        if self.times is not None and self.times <= 0:
            return False
        if self.method != "*" and self.method.lower() != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False


@dataclass
class State:
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    next_message_id: dict[int, int] = field(default_factory=dict)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: list[PendingUpdate] = field(default_factory=list)
    next_update_id: int = 100_000_001
    allowed_updates: list[str] | None = None
    unfiltered: bool = False  # updates came (or allowed_updates changed) since the last filter
    sent: list[dict[str, Any]] = field(default_factory=list)
    history: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    open_callbacks: dict[str, int] = field(default_factory=dict)
    webhook_attempts: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    files: FileStore = field(default_factory=FileStore)
    topics: dict[int, dict[int, Topic]] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    send_times: list[tuple[float, int]] = field(default_factory=list)
    # The reply keyboard each chat shows under its input field now (ReplyKeyboardMarkup as sent;
    # none once removed, or once a one-time keyboard was used).
    keyboards: dict[int, dict[str, Any]] = field(default_factory=dict)
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=deque)
    next_group_id: int = -1001000000001
    next_callback: int = 1


def _chat_key(update: dict[str, Any]) -> object:
    """Which chat an update belongs to (updates of one chat are delivered in order)."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if key in update and isinstance(update[key], dict):
            return update[key].get("chat", {}).get("id")
    query = update.get("callback_query")
    if isinstance(query, dict):
        return (query.get("message") or {}).get("chat", {}).get("id") or query.get("from", {}).get(
            "id"
        )
    return ("update", update.get("update_id"))


class BotApi:
    """Bot API methods (`_m_<method>`) over the emulator's state; no HTTP server here."""

    token: str
    bot_id: int
    bot_user: dict[str, Any]
    enforce_limits: bool
    webhook_retry_delay: float
    webhook_timeout: float
    _s: State
    _changed: asyncio.Event
    _closing: bool
    _webhook: dict[str, Any] | None
    _webhook_task: asyncio.Task[None] | None
    on_sent: list[Callable[[dict[str, Any]], None]]

    # ---------------------------------------------------------------- helpers

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _chat(self, params: Params) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for known in self._s.chats.values():
                if known.get("username") == raw[1:]:
                    return known
            raise bad_request("chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        chat = self._s.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    @staticmethod
    def _opt_int(params: Params, key: str) -> int | None:
        raw = params.get(key)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key} specified") from None

    def _new_message(
        self, chat: dict[str, Any], sender: dict[str, Any], thread_id: int | None = None
    ) -> dict[str, Any]:
        chat_id = chat["id"]
        message_id = self._s.next_message_id.get(chat_id, 1)
        self._s.next_message_id[chat_id] = message_id + 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat["type"] != "private":
                message["is_topic_message"] = True
        self._s.messages[(chat_id, message_id)] = message
        return message

    def _add_update(self, update: dict[str, Any]) -> dict[str, Any]:
        if "update_id" not in update:
            update = {"update_id": self._s.next_update_id, **update}
        uid = int(update["update_id"])
        self._s.next_update_id = max(self._s.next_update_id, uid + 1)
        self._s.updates[uid] = update
        self._s.pending.append(PendingUpdate(update))
        self._s.unfiltered = True
        self._notify()
        return update

    def _record_history(
        self, chat_id: int, who: str, message: dict[str, Any], **extra: Any
    ) -> None:
        entry = {
            "from": who,
            "message_id": message.get("message_id"),
            "kind": message_kind(message),
            "text": message.get("text"),
            "caption": message.get("caption"),
            "at": time.monotonic(),
            **extra,
        }
        self._s.history.setdefault(chat_id, []).append(entry)

    def _drop_disallowed(self) -> None:
        allowed = self._s.allowed_updates
        if allowed and self._s.unfiltered:  # a pass over the whole backlog only when needed
            self._s.pending = [p for p in self._s.pending if update_type(p.update) in allowed]
        self._s.unfiltered = False

    def _check_send_allowed(self, chat: dict[str, Any]) -> None:
        if chat["id"] in self._s.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not self.enforce_limits:
            return
        t = time.monotonic()
        recent = self._s.recent
        while recent and t - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= MAX_PER_SECOND:
            raise ApiError(429, "Too Many Requests: retry after 1", 1)
        tokens, last = self._s.buckets.get(chat["id"], (CHAT_BURST, t))
        tokens = min(CHAT_BURST, tokens + (t - last) * CHAT_PER_SECOND)
        if tokens < 1.0:
            wait = max(1, math.ceil(1.0 - tokens))
            self._s.buckets[chat["id"]] = (tokens, t)
            raise ApiError(429, f"Too Many Requests: retry after {wait}", wait)
        self._s.buckets[chat["id"]] = (tokens - 1.0, t)
        recent.append(t)

    # ---------------------------------------------------------------- webhook delivery

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self, url: str, secret: str | None) -> None:
        """Deliver pending updates like Telegram: up to `max_connections` requests at once, but
        one at a time per chat so each chat's updates arrive in order; retry until a 2xx."""
        headers = {SECRET_HEADER: secret} if secret else {}
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        limit = int((self._webhook or {}).get("max_connections", 40))
        in_flight: set[int] = set()
        tasks: set[asyncio.Task[None]] = set()

        async def deliver(session: aiohttp.ClientSession, item: PendingUpdate) -> None:
            status, error = 0, None
            try:
                async with session.post(url, json=item.update, headers=headers) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._s.webhook_attempts.append(
                {"update_id": item.update_id, "status": status, "error": error,
                 "at": time.monotonic()}
            )  # fmt: skip
            if 200 <= status < 300:
                if item in self._s.pending:
                    self._s.pending.remove(item)
                if self._webhook is not None:
                    self._webhook.pop("last_error_message", None)
            else:
                if self._webhook is not None:
                    self._webhook["last_error_date"] = now()
                    self._webhook["last_error_message"] = (
                        error or f"Wrong response from the webhook: {status}"
                    )
                await asyncio.sleep(self.webhook_retry_delay)
            in_flight.discard(id(item))
            self._notify()

        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while not self._closing:
                    self._drop_disallowed()
                    changed = self._changed
                    chats_seen: set[object] = set()
                    for item in list(self._s.pending):
                        if len(in_flight) >= limit:
                            break
                        chat = _chat_key(item.update)
                        first_of_chat = chat not in chats_seen
                        chats_seen.add(chat)
                        if not first_of_chat or id(item) in in_flight:
                            continue
                        in_flight.add(id(item))
                        task = asyncio.create_task(deliver(session, item))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    await changed.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- Bot API methods

    async def _m_getMe(self, p: Params, f: Files) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_close(self, p: Params, f: Files) -> Any:
        return True

    async def _m_logOut(self, p: Params, f: Files) -> Any:
        return True

    async def _m_getUpdates(self, p: Params, f: Files) -> Any:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = self._opt_int(p, "offset")
        limit = min(max(self._opt_int(p, "limit") or 100, 1), 100)
        timeout = max(self._opt_int(p, "timeout") or 0, 0)
        if p.get("allowed_updates") is not None:
            self._s.allowed_updates = list(p["allowed_updates"]) or None
            self._s.unfiltered = True
        if offset is not None:
            if offset < 0:
                fresh = [x for x in self._s.pending if not x.redelivery][offset:]
                self._s.pending = [x for x in self._s.pending if x.redelivery or x in fresh]
            else:
                self._s.pending = [
                    x for x in self._s.pending if x.redelivery or x.update_id >= offset
                ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._drop_disallowed()
            remaining = deadline - loop.time()
            if self._s.pending or self._closing or remaining <= 0 or self._webhook is not None:
                break
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        batch = self._s.pending[:limit]
        for item in batch:
            if item.redelivery:
                self._s.pending.remove(item)
        return [item.update for item in batch]

    async def _m_setWebhook(self, p: Params, f: Files) -> Any:
        url = str(p.get("url") or "")
        if not url:
            return await self._m_deleteWebhook(p, f)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token") or None
        if secret is not None:
            secret = str(secret)
            if len(secret) > 256 or not all(
                c.isascii() and (c.isalnum() or c in "_-") for c in secret
            ):
                raise bad_request("secret token contains unallowed characters")
        if parse_bool(p.get("drop_pending_updates", False)):
            self._s.pending.clear()
        if p.get("allowed_updates") is not None:
            self._s.allowed_updates = list(p["allowed_updates"]) or None
            self._s.unfiltered = True
        await self._stop_webhook_task()
        self._webhook = {"url": url, "max_connections": int(p.get("max_connections") or 40)}
        self._webhook_task = asyncio.create_task(self._webhook_loop(url, secret))
        self._notify()
        return True

    async def _m_deleteWebhook(self, p: Params, f: Files) -> Any:
        await self._stop_webhook_task()
        self._webhook = None
        if parse_bool(p.get("drop_pending_updates", False)):
            self._s.pending.clear()
        self._notify()
        return True

    async def _m_getWebhookInfo(self, p: Params, f: Files) -> Any:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._s.pending),
        }
        if self._webhook is not None:
            info.update(self._webhook)
        if self._s.allowed_updates:
            info["allowed_updates"] = self._s.allowed_updates
        return info

    def _record_sent(
        self,
        method: str,
        message: dict[str, Any],
        markup: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Record a bot message. `markup` is its reply_markup as sent: an inline keyboard goes on
        the message; a reply keyboard (or its removal) changes what the chat shows under the
        input field (`keyboards`) and, as in Telegram, is not part of the returned Message."""
        chat_id = message["chat"]["id"]
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        elif markup is not None and "keyboard" in markup:
            self._s.keyboards[chat_id] = markup
        elif markup is not None and markup.get("remove_keyboard"):
            self._s.keyboards.pop(chat_id, None)
        entry = {
            "method": method,
            "chat_id": chat_id,
            "message_id": message["message_id"],
            "text": message.get("text"),
            "caption": message.get("caption"),
            "reply_markup": markup,
            "photo": None,
            "sticker": None,
            "message_thread_id": message.get("message_thread_id"),
            "at": time.monotonic(),
            **extra,
        }
        self._s.sent.append(entry)
        for hook in self.on_sent:
            hook(entry)
        self._s.send_times.append((entry["at"], chat_id))
        self._record_history(chat_id, "bot", message, reply_markup=entry["reply_markup"])
        self._notify()
        return message

    def _thread(self, chat: dict[str, Any], p: Params) -> int | None:
        thread_id = self._opt_int(p, "message_thread_id")
        if thread_id is None or chat["type"] == "private":
            return thread_id
        topics = self._s.topics.get(chat["id"], {})
        topic = topics.get(thread_id)
        if topic is None:
            raise bad_request("message thread not found")
        if topic.closed:
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def _prepare_send(self, p: Params) -> tuple[dict[str, Any], int | None, dict[str, Any] | None]:
        chat = self._chat(p)
        thread_id = self._thread(chat, p)
        markup = check_reply_markup(p.get("reply_markup"))
        self._check_send_allowed(chat)
        return chat, thread_id, markup

    async def _m_sendMessage(self, p: Params, f: Files) -> Any:
        text = str(p.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        chat, thread_id, markup = self._prepare_send(p)
        message = self._new_message(chat, self.bot_user, thread_id)
        message["text"] = text
        return self._record_sent("sendMessage", message, markup)

    def _input_file(self, p: Params, f: Files, key: str) -> tuple[str, bytes | None, str | None]:
        """Resolve a photo/sticker argument: (what to record, uploaded bytes, known file_id)."""
        if key in f:
            field_ = f[key]
            return field_.filename, field_.file.read(), None
        value = p.get(key)
        if not value or not isinstance(value, str):
            raise bad_request(f"there is no {key} in the request")
        if value.startswith("attach://"):
            name = value[len("attach://") :]
            if name not in f:
                raise bad_request(f"wrong file identifier/HTTP URL specified: attach://{name}")
            return f[name].filename, f[name].file.read(), None
        if value.startswith(("http://", "https://")):
            return value, None, None
        if any(c.isspace() for c in value):
            raise bad_request(
                "wrong remote file identifier specified: Wrong character in the string"
            )
        return value, None, value

    async def _m_sendPhoto(self, p: Params, f: Files) -> Any:
        caption = p.get("caption")
        if caption is not None and len(str(caption)) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        recorded, content, file_id = self._input_file(p, f, "photo")
        chat, thread_id, markup = self._prepare_send(p)
        known = self._s.files.get(file_id) if file_id else None
        message = self._new_message(chat, self.bot_user, thread_id)
        message["photo"] = self._s.files.photo_sizes(
            content if content is not None else (known.content if known else FAKE_JPEG)
        )
        if caption:
            message["caption"] = str(caption)
        return self._record_sent("sendPhoto", message, markup, photo=recorded)

    async def _m_sendSticker(self, p: Params, f: Files) -> Any:
        recorded, content, file_id = self._input_file(p, f, "sticker")
        chat, thread_id, markup = self._prepare_send(p)
        message = self._new_message(chat, self.bot_user, thread_id)
        if content is not None:
            file_id = self._s.files.add(content, "sticker", "webp").file_id
        message["sticker"] = self._s.files.sticker(str(p.get("emoji") or "🙂"), file_id)
        return self._record_sent("sendSticker", message, markup, sticker=recorded)

    async def _m_sendChatAction(self, p: Params, f: Files) -> Any:
        if not p.get("action"):
            raise bad_request("action is empty")
        chat = self._chat(p)
        self._thread(chat, p)
        if chat["id"] in self._s.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return True

    async def _m_answerCallbackQuery(self, p: Params, f: Files) -> Any:
        query_id = str(p.get("callback_query_id") or "")
        if query_id not in self._s.open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        user_id = self._s.open_callbacks.pop(query_id)
        self._s.callback_answers.append(
            {
                "callback_query_id": query_id,
                "user_id": user_id,
                "text": p.get("text"),
                "show_alert": parse_bool(p.get("show_alert", False)),
                "at": time.monotonic(),
            }
        )
        self._notify()
        return True

    def _bot_message(self, p: Params) -> dict[str, Any]:
        if p.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat = self._chat(p)
        message_id = self._opt_int(p, "message_id")
        message = self._s.messages.get((chat["id"], message_id or 0))
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        markup = changes.pop("reply_markup", None)
        after = {**{k: v for k, v in message.items() if k != "reply_markup"}, **changes}
        if markup and markup.get("inline_keyboard"):
            after["reply_markup"] = markup
        if {k: v for k, v in after.items() if k != "edit_date"} == {
            k: v for k, v in message.items() if k != "edit_date"
        }:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        after["edit_date"] = now()
        message.clear()
        message.update(after)
        self._notify()
        return message

    async def _m_editMessageText(self, p: Params, f: Files) -> Any:
        text = str(p.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("MESSAGE_TOO_LONG")
        message = self._bot_message(p)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        return self._apply_edit(message, {"text": text, "reply_markup": markup})

    async def _m_editMessageReplyMarkup(self, p: Params, f: Files) -> Any:
        message = self._bot_message(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        return self._apply_edit(message, {"reply_markup": markup})

    async def _m_setMyCommands(self, p: Params, f: Files) -> Any:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" is required')
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            if not (1 <= len(name) <= 32) or not command.get("description"):
                raise bad_request("BOT_COMMAND_INVALID")
        self._s.commands = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _m_getMyCommands(self, p: Params, f: Files) -> Any:
        return self._s.commands

    async def _m_deleteMyCommands(self, p: Params, f: Files) -> Any:
        self._s.commands = []
        return True

    async def _m_getFile(self, p: Params, f: Files) -> Any:
        stored = self._s.files.get(str(p.get("file_id") or ""))
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.file_obj()

    async def _m_getChat(self, p: Params, f: Files) -> Any:
        chat = self._chat(p)
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
            "premium_subscription": False}}  # fmt: skip

    def _forum(self, p: Params) -> dict[int, Topic]:
        chat = self._chat(p)
        if not chat.get("is_forum"):
            raise bad_request("the chat is not a forum")
        return self._s.topics.setdefault(chat["id"], {})

    def _topic(self, p: Params) -> Topic:
        topics = self._forum(p)
        thread_id = self._opt_int(p, "message_thread_id")
        topic = topics.get(thread_id or 0)
        if topic is None:
            raise bad_request("message thread not found")
        return topic

    async def _m_createForumTopic(self, p: Params, f: Files) -> Any:
        topics = self._forum(p)
        name = str(p.get("name") or "")
        if not (1 <= len(name) <= 128):
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        chat = self._chat(p)
        # In Telegram the topic id is the id of its service "topic created" message.
        service = self._new_message(chat, self.bot_user)
        topic = Topic(
            thread_id=service["message_id"],
            name=name,
            icon_color=self._opt_int(p, "icon_color") or TOPIC_ICON_COLOR,
            icon_custom_emoji_id=p.get("icon_custom_emoji_id") or None,
        )
        service["message_thread_id"] = topic.thread_id
        service["forum_topic_created"] = {"name": name, "icon_color": topic.icon_color}
        topics[topic.thread_id] = topic
        result: dict[str, Any] = {
            "message_thread_id": topic.thread_id,
            "name": topic.name,
            "icon_color": topic.icon_color,
        }
        if topic.icon_custom_emoji_id:
            result["icon_custom_emoji_id"] = topic.icon_custom_emoji_id
        return result

    async def _m_editForumTopic(self, p: Params, f: Files) -> Any:
        topic = self._topic(p)
        if p.get("name"):
            topic.name = str(p["name"])
        if p.get("icon_custom_emoji_id") is not None:
            topic.icon_custom_emoji_id = str(p["icon_custom_emoji_id"]) or None
        return True

    async def _m_closeForumTopic(self, p: Params, f: Files) -> Any:
        topic = self._topic(p)
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        return True

    async def _m_reopenForumTopic(self, p: Params, f: Files) -> Any:
        topic = self._topic(p)
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        return True

    async def _m_deleteForumTopic(self, p: Params, f: Files) -> Any:
        topic = self._topic(p)
        del self._forum(p)[topic.thread_id]
        return True
