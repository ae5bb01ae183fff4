"""Telegram frontend (aiogram 3): parse updates into `Inbound`, render `Outbound` into Bot API calls.

- `build_router` / `build_dispatcher`: every subscriber update (text, /start, photo, sticker, other
  media, edit, button press) becomes one `Inbound` handed to the pipeline (`InboundHandler`).
  Nothing here decides what to reply: replies come back through the outbox and `TelegramSender`.
- `build_group_router`: with an operator group configured, its messages go to a separate
  `GroupHandler` (handoff.telegram_group) and never to the subscriber pipeline.
- `webhook_handler`: `POST /webhook/telegram`; checks the secret, handles the update, and only
  then answers 200 (persist first, acknowledge after); a failure answers 500 so Telegram retries.
- `run_polling`, `set_webhook`, `delete_webhook`: the two ways updates arrive.
- `TelegramSender`: the `ChannelSender` for Telegram (long texts cut by `bots.text.split_text`,
  captions within Telegram's limit from dialogs/limits.py, buttons, photos, stickers, and aiogram
  errors mapped to `delivery.errors`). Buttons are inline, except when one of them asks for the
  subscriber's contact (`Button(request="contact")`): then the message carries a one-time reply
  keyboard instead (see `_reply_keyboard`).
- A shared contact becomes `Inbound.contact` (the number normalised to +7..., `own` only when it
  is the sender's own Telegram account) plus an attachment of kind "contact".
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bots import aiogram_import  # noqa: F401  (first: aiogram's types then build on first use)

# isort: split
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.enums import ChatType, ContentType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Filter
from aiogram.types import (
    CallbackQuery,
    Contact,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from aiohttp import web
from pydantic import ValidationError

from bots.text import split_text
from bots.webhook import BadBody, read_json
from delivery.errors import (
    Blocked,
    PartialSend,
    PermanentError,
    RetryAfter,
    SendError,
    TransientError,
)
from delivery.sender import Pace, Progress
from dialogs.limits import TELEGRAM, measure
from dialogs.messages import (
    Attachment,
    AttachmentKind,
    Button,
    Channel,
    Inbound,
    InboundHandler,
    Outbound,
    SharedContact,
)
from nlu.phones import normalise_phone

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Message content types the subscriber router accepts, and the attachment kind each becomes.
_MEDIA_KINDS: dict[str, AttachmentKind] = {
    ContentType.PHOTO: "photo",
    ContentType.STICKER: "sticker",
    ContentType.VOICE: "voice",
    ContentType.AUDIO: "audio",
    ContentType.VIDEO: "video",
    ContentType.VIDEO_NOTE: "video",
    ContentType.DOCUMENT: "document",
    ContentType.LOCATION: "location",
    ContentType.VENUE: "location",
    ContentType.ANIMATION: "other",
    ContentType.CONTACT: "contact",
    ContentType.POLL: "other",
    ContentType.DICE: "other",
    ContentType.STORY: "other",
}


# --------------------------------------------------------------------------- parsing


def bot_for(token: str, api_base: str | None = None) -> Bot:
    """A Bot for the real cloud (`api_base=None`) or a local server such as the emulator."""
    api = TelegramAPIServer.from_base(api_base) if api_base is not None else PRODUCTION
    return Bot(token, session=AiohttpSession(api=api, json_loads=orjson.loads, json_dumps=_dumps))


def _dumps(value: Any) -> str:
    """aiogram's JSON encoder (request fields such as keyboards): orjson, ~10x json's speed."""
    return orjson.dumps(value).decode()


class TokenRefused(Exception):
    """Telegram answered 401 to the bot token."""


async def check_token(bot: Bot) -> str | None:
    """The bot's @username, or None if the Bot API can't be reached right now (polling and
    webhooks retry by themselves). Raises TokenRefused when Telegram rejects the token."""
    try:
        me = await bot.get_me()
    except TelegramUnauthorizedError as exc:
        raise TokenRefused(str(exc)) from exc
    except (TelegramNetworkError, TelegramServerError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("telegram: Bot API unreachable at start-up (%s); will keep trying", exc)
        return None
    return me.username


def _attachment(message: Message) -> Attachment | None:
    kind = _MEDIA_KINDS.get(message.content_type)
    if kind is None:
        return None
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        return Attachment(kind="photo", ref=largest.file_id)
    if message.sticker:
        return Attachment(kind="sticker", ref=message.sticker.file_id, emoji=message.sticker.emoji)
    if message.location:
        ref = f"{message.location.latitude},{message.location.longitude}"
        return Attachment(kind="location", ref=ref)
    if message.contact:
        # The number travels only in Inbound.contact: the stored message row says "a contact"
        # and does not copy the phone (one place less for personal data to be found and erased).
        return Attachment(kind="contact")
    media = (
        message.voice
        or message.audio
        or message.video
        or message.video_note
        or message.document
        or message.animation
    )
    return Attachment(kind=kind, ref=media.file_id if media else None)


def inbound_from_message(
    message: Message, update_id: int, *, edited: bool = False
) -> Inbound | None:
    """The `Inbound` for a subscriber's message, or None for service messages (pins, joins...)."""
    attachment = _attachment(message)
    text = message.text if message.text is not None else message.caption
    if text is None and attachment is None:
        return None
    user = message.from_user
    contact = message.contact
    return Inbound(
        channel=Channel.TELEGRAM,
        chat_id=str(message.chat.id),
        user_id=str(user.id if user else message.chat.id),
        update_id=str(update_id),
        text=text,
        attachments=(attachment,) if attachment else (),
        edited=edited,
        platform_message_id=str(message.message_id),
        first_name=user.first_name if user else None,
        last_name=user.last_name if user else None,
        username=user.username if user else None,
        contact=_shared_contact(contact, user.id if user else None) if contact else None,
    )


def _shared_contact(contact: Contact, sender_id: int | None) -> SharedContact:
    """`own` only when the contact's Telegram user id is the sender's: Telegram fills that id
    itself (for the «Поделиться номером» button, the sender's), so it can't be typed in; a
    phone-book contact (no id) or someone else's is never proof of the number."""
    raw = contact.phone_number.strip()
    return SharedContact(
        phone=normalise_phone(raw) or raw,  # a foreign number stays as Telegram gave it
        own=contact.user_id is not None and contact.user_id == sender_id,
        user_id=str(contact.user_id) if contact.user_id is not None else None,
    )


def inbound_from_callback(query: CallbackQuery, update_id: int) -> Inbound:
    chat_id = query.message.chat.id if query.message else query.from_user.id
    return Inbound(
        channel=Channel.TELEGRAM,
        chat_id=str(chat_id),
        user_id=str(query.from_user.id),
        update_id=str(update_id),
        payload=query.data,
        platform_message_id=str(query.message.message_id) if query.message else None,
        first_name=query.from_user.first_name,
        last_name=query.from_user.last_name,
        username=query.from_user.username,
    )


# Filters are async on purpose: aiogram runs a plain callable, a magic filter (`F.chat.type ==
# ...`) included, through `asyncio.to_thread` for every update it checks (CallableObject.call),
# a thread hand-off and a loop wake-up per update; an async `Filter` runs on the loop.
class PrivateChat(Filter):
    """A message in a private chat, or a button pressed under one (or under a message too old
    for Telegram to include: such a press is a subscriber's too)."""

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        if isinstance(event, CallbackQuery):
            if event.message is None:
                return True
            return event.message.chat.type == ChatType.PRIVATE
        return event.chat.type == ChatType.PRIVATE


class InChat(Filter):
    """A message in the chat `chat_id`."""

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id

    async def __call__(self, event: Message) -> bool:
        return event.chat.id == self.chat_id


def build_router(handler: InboundHandler) -> Router:
    """Subscriber updates from private chats -> `handler.handle(Inbound)`.

    Group chats (the operators' forum group) are left to other routers.
    """
    router = Router(name="telegram-subscribers")
    router.message.filter(PrivateChat())
    router.edited_message.filter(PrivateChat())
    router.callback_query.filter(PrivateChat())

    @router.message()
    async def on_message(message: Message, event_update: Update) -> None:
        inbound = inbound_from_message(message, event_update.update_id)
        if inbound is None:
            log.debug("ignored %s message %s", message.content_type, message.message_id)
            return
        await handler.handle(inbound)

    @router.edited_message()
    async def on_edit(message: Message, event_update: Update) -> None:
        inbound = inbound_from_message(message, event_update.update_id, edited=True)
        if inbound is not None:
            await handler.handle(inbound)

    @router.callback_query()
    async def on_callback(query: CallbackQuery, event_update: Update) -> None:
        await handler.handle(inbound_from_callback(query, event_update.update_id))
        try:  # stop the button's spinner; the reply itself comes through the outbox
            await query.answer()
        except TelegramAPIError as exc:  # too old (e.g. a redelivery): the press is stored anyway
            log.info("callback query %s not answered: %s", query.id, exc)

    return router


# An operator group's message and its update id -> the operator-side handler.
GroupHandler = Callable[[Message, int], Awaitable[None]]


def build_group_router(group_handler: GroupHandler, group_id: int) -> Router:
    """Messages in the operators' forum group (chat id `group_id`) -> `group_handler`.

    Edits there are ignored: what an operator sent is already with the subscriber."""
    router = Router(name="telegram-operator-group")
    router.message.filter(InChat(group_id))
    router.edited_message.filter(InChat(group_id))

    @router.message()
    async def on_group_message(message: Message, event_update: Update) -> None:
        await group_handler(message, event_update.update_id)

    @router.edited_message()
    async def on_group_edit(message: Message) -> None:
        log.debug("operator group: edit of message %s ignored", message.message_id)

    return router


def build_dispatcher(
    handler: InboundHandler,
    *,
    group_handler: GroupHandler | None = None,
    group_id: int | None = None,
) -> Dispatcher:
    """The subscriber router, preceded by the operator group's when both `group_handler` and
    `group_id` are given (its messages never reach the pipeline, so create no subscribers)."""
    # Conversation state lives in our database, so aiogram's FSM (a storage lookup per update) is off.
    dispatcher = Dispatcher(disable_fsm=True)
    if group_handler is not None and group_id is not None:
        dispatcher.include_router(build_group_router(group_handler, group_id))
    dispatcher.include_router(build_router(handler))
    return dispatcher


# --------------------------------------------------------------------------- receiving


def webhook_handler(
    dispatcher: Dispatcher, bot: Bot, secret: str | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for `POST /webhook/telegram`: 200 only after the update was handled."""
    expected = secret.encode() if secret else None

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"ok": False, "error": message}, status=status)

    async def handle(request: web.Request) -> web.StreamResponse:
        if expected is not None:
            got = request.headers.get(SECRET_HEADER, "").encode()
            if not hmac.compare_digest(got, expected):
                log.warning(
                    "telegram webhook: missing or wrong secret token from %s", request.remote
                )
                return error(401, "missing or wrong secret token")
        try:
            data = await read_json(request)
        except BadBody as exc:
            return error(exc.status, str(exc))
        if not isinstance(data, dict):
            return error(400, "body is not a Telegram Update")
        try:
            update = Update.model_validate(data, context={"bot": bot})
        except ValidationError as exc:
            log.warning("telegram webhook: invalid update: %s", exc.errors()[:3])
            return error(400, "body is not a Telegram Update")
        try:
            await dispatcher.feed_update(bot, update)
        except Exception:
            log.exception(
                "telegram webhook: update %s failed; Telegram will retry", update.update_id
            )
            return error(500, "update not handled")
        return web.json_response({"ok": True})

    return handle


async def run_polling(dispatcher: Dispatcher, bot: Bot, *, polling_timeout: int = 10) -> None:
    """Long-poll until cancelled, handling updates as they come: each chat's in order, different
    chats at once, so one slow subscriber (billing taking its time) never holds up the others.
    An update is confirmed to Telegram (the next getUpdates' offset passes it) only once it and
    every earlier one are handled, so a crash never loses an accepted update."""
    await bot.delete_webhook(drop_pending_updates=False)
    allowed = dispatcher.resolve_used_update_types()
    wait = int((bot.session.timeout or 60) + polling_timeout)
    poller = _Poller(dispatcher, bot)
    backoff = 1.0
    try:
        while True:
            try:
                updates = await bot.get_updates(
                    offset=poller.offset(),
                    timeout=polling_timeout,
                    allowed_updates=allowed,
                    request_timeout=wait,
                )
            except Exception as exc:  # unreachable, 5xx, 409 (another poller): keep trying
                log.warning("telegram getUpdates failed (%r); again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)
                continue
            backoff = 1.0
            if not sum(poller.take(update) for update in updates):
                # Only updates still being handled came back (they are not confirmed yet, so
                # Telegram answers at once): wait for one of them instead of asking again.
                await poller.settle(POLL_PAUSE)
            await poller.room()
    finally:
        await poller.close()


POLL_PAUSE = 0.2  # s: how often getUpdates is asked while earlier updates are still handled
MAX_IN_FLIGHT = 90  # fewer than getUpdates' 100, so new updates always fit in the answer


class _Poller:
    """The updates taken from getUpdates and not finished yet; `offset()` confirms every
    update before the oldest unfinished one."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.unfinished: dict[int, asyncio.Task[None]] = {}
        self.lanes: dict[object, asyncio.Task[None]] = {}  # a chat's newest update
        self.next: int | None = None  # one past the newest update taken

    def offset(self) -> int | None:
        return min(self.unfinished) if self.unfinished else self.next

    def take(self, update: Update) -> bool:
        """Start handling `update` after its chat's earlier one; False if already taken."""
        if self.next is not None and update.update_id < self.next:
            return False
        self.next = update.update_id + 1
        lane = _lane(update)
        task = asyncio.create_task(self._handle(update, self.lanes.get(lane)))
        self.unfinished[update.update_id] = self.lanes[lane] = task

        def done(_task: asyncio.Task[None], update_id: int = update.update_id) -> None:
            self.unfinished.pop(update_id, None)
            if self.lanes.get(lane) is task:
                del self.lanes[lane]

        task.add_done_callback(done)
        return True

    async def _handle(self, update: Update, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:  # the handler gave up on it (logged there): go on with the next
            log.exception("telegram update %s not handled", update.update_id)

    async def settle(self, timeout: float) -> None:  # noqa: ASYNC109
        if self.unfinished:
            tasks = set(self.unfinished.values())
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(timeout)

    async def room(self) -> None:
        while len(self.unfinished) >= MAX_IN_FLIGHT:
            await self.settle(POLL_PAUSE)

    async def close(self) -> None:
        """On stop: updates being handled finish (10 s at most); the rest come again later."""
        if self.unfinished:
            await asyncio.wait(set(self.unfinished.values()), timeout=10)
        for task in list(self.unfinished.values()):
            task.cancel()


def _lane(update: Update) -> object:
    """Updates of one chat (or one user, for events without a chat) are handled in order."""
    event = update.event
    chat = getattr(event, "chat", None) or getattr(getattr(event, "message", None), "chat", None)
    if chat is not None:
        return ("chat", chat.id)
    user = getattr(event, "from_user", None)
    return ("user", user.id) if user is not None else ("update", update.update_id)


async def set_webhook(
    bot: Bot, url: str, secret: str | None, *, dispatcher: Dispatcher | None = None
) -> None:
    """Point Telegram at `url` (our `/webhook/telegram`), asking only for the update types we use."""
    allowed = dispatcher.resolve_used_update_types() if dispatcher else None
    await bot.set_webhook(url=url, secret_token=secret, allowed_updates=allowed)


async def delete_webhook(bot: Bot, *, drop_pending_updates: bool = False) -> None:
    await bot.delete_webhook(drop_pending_updates=drop_pending_updates)


# --------------------------------------------------------------------------- sending


Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@functools.lru_cache(maxsize=1024)  # content has a handful of keyboards; building them is costly
def _markup(buttons: tuple[tuple[Button, ...], ...]) -> Markup | None:
    """Inline buttons under the message; a reply keyboard when a button asks for the contact."""
    if not buttons:
        return None
    if any(b.request == "contact" for row in buttons for b in row):
        return _reply_keyboard(buttons)
    rows = [
        [
            InlineKeyboardButton(text=b.title, url=b.url)
            if b.url
            else InlineKeyboardButton(text=b.title, callback_data=b.payload or b.title)
            for b in row
            if b.request is None  # another kind of request: nothing Telegram can show inline
        ]
        for row in buttons
    ]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _reply_keyboard(buttons: tuple[tuple[Button, ...], ...]) -> ReplyKeyboardMarkup | None:
    """Telegram's «Поделиться номером» exists only on a reply keyboard (under the input field),
    and one message can't carry both kinds: the contact button asks for the number, every
    payload button becomes a text button with its title (pressing it sends the title as a text,
    which the dialog engine maps back to the payload), and url buttons are left out (a reply
    keyboard has no links). One-time: it hides once used."""
    rows = [
        [
            KeyboardButton(text=b.title, request_contact=True)
            if b.request == "contact"
            else KeyboardButton(text=b.title)
            for b in row
            if not b.url and b.request in (None, "contact")
        ]
        for row in buttons
    ]
    rows = [row for row in rows if row]
    if not rows:
        return None
    return ReplyKeyboardMarkup(keyboard=rows, one_time_keyboard=True, resize_keyboard=True)


@dataclass(frozen=True, slots=True)
class _Part:
    kind: str  # "text" | "photo" | "sticker"
    text: str | None = None
    file: str | None = None


def _map_error(exc: Exception) -> SendError | None:
    if isinstance(exc, TelegramRetryAfter):
        return RetryAfter(exc.retry_after, str(exc))
    if isinstance(exc, TelegramForbiddenError):
        return Blocked(str(exc))
    if isinstance(exc, TelegramServerError | TelegramNetworkError | ClientDecodeError):
        return TransientError(str(exc))
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(
        exc,
        TelegramBadRequest | TelegramNotFound | TelegramEntityTooLarge | TelegramUnauthorizedError,
    ):
        return PermanentError(str(exc))
    if isinstance(exc, TelegramAPIError):
        return TransientError(str(exc))  # e.g. 409 Conflict: nothing wrong with the message
    return None


class TelegramSender:
    """`ChannelSender` for Telegram over a real aiogram `Bot`."""

    channel = Channel.TELEGRAM

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    @staticmethod
    def plan(message: Outbound) -> list[_Part]:
        """The API calls `message` becomes, in order (buttons go on the last one)."""
        parts: list[_Part] = []
        text = (message.text or "").strip() or None
        if message.sticker:
            parts.append(_Part("sticker", file=message.sticker))
        if message.image:
            short = text is not None and measure(text, Channel.TELEGRAM) <= TELEGRAM.caption
            caption = text if short else None
            parts.append(_Part("photo", text=caption, file=message.image))
            if caption:
                text = None
        if text:
            parts.extend(_Part("text", text=chunk) for chunk in split_text(text, Channel.TELEGRAM))
        return parts

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
        parts = self.plan(message)
        if not parts:
            raise PermanentError(f"outbox message {key} has nothing to send")
        if message.image and not message.image.startswith(("http://", "https://")):
            if not await asyncio.to_thread(Path(message.image).is_file):
                raise PermanentError(f"image file not found: {message.image}")
        markup = _markup(message.buttons)
        ids: list[str] = []
        for index, part in enumerate(parts):
            if index < skip_parts:
                continue
            last = index == len(parts) - 1
            if pace is not None:
                await pace()
            try:
                sent = await self._send_part(chat_id, part, markup if last else None)
            except Exception as exc:
                error = _map_error(exc)
                if error is None:
                    raise
                if ids:
                    raise PartialSend(index, ids, error) from exc
                raise error from exc
            ids.append(str(sent.message_id))
            if progress is not None and not last:
                await progress(index + 1, ids)
        return ids

    async def _send_part(self, chat_id: str, part: _Part, markup: Markup | None) -> Message:
        if part.kind == "sticker":
            assert part.file is not None
            return await self.bot.send_sticker(chat_id, part.file, reply_markup=markup)
        if part.kind == "photo":
            assert part.file is not None
            photo: Any = part.file
            if not photo.startswith(("http://", "https://")):
                photo = FSInputFile(photo)
            return await self.bot.send_photo(
                chat_id, photo, caption=part.text, parse_mode=None, reply_markup=markup
            )
        assert part.text is not None
        return await self.bot.send_message(chat_id, part.text, parse_mode=None, reply_markup=markup)
