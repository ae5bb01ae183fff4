"""The operators' Telegram group at work: topics opened, summaries posted, subscribers'
messages forwarded, operators' replies and commands taken. See __init__.py for the behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TypeVar
from zoneinfo import ZoneInfo

from bots import aiogram_import  # noqa: F401  (first: aiogram's types then build on first use)

# isort: split
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message as TgMessage
from sqlalchemy import func, select, update

from bots.text import split_text
from handoff.desk import Desk, DeskError
from handoff.events import Bus, Event
from handoff.telegram_group.summary import (
    HELP,
    MEDIA_NAMES,
    SUMMARY_MESSAGES,
    Snapshot,
    display_name,
    mask_data,
    render_summary,
)
from storage import repo
from storage.db import Database
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    ConversationState,
    Message,
    Operator,
    Subscriber,
    Ticket,
    TicketStatus,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[], Awaitable[None]]

ACTIVE = (ConversationState.QUEUED, ConversationState.WITH_OPERATOR)
HANDLED_EVENTS = {"queued", "assigned", "message", "missed", "closed", "returned", "sweep"}
SWEEP_EVERY = 10.0  # seconds between looks for active chats that have no topic yet
SWEEP_BACKOFF = 300.0  # a chat whose topic Telegram refused is swept again after this
DEDUPE_CHANNEL = "tg-group"  # processed_updates.channel for the group's updates


# --------------------------------------------------------------------------- the group


async def _next(events: AsyncIterator[Event]) -> Event:
    return await anext(events)


class TelegramGroup:
    """Mirror handed-off chats into forum topics and let operators answer from there.

    Wiring (what the composition root does): build the dispatcher with
    `build_dispatcher(handler, group_handler=group.handle, group_id=group_id)`, then
    `await group.start()` (or spawn `group.run()`) once the app is up; `await group.stop()`.
    """

    def __init__(
        self,
        db: Database,
        desk: Desk,
        bus: Bus,
        bot: Bot,
        group_id: int,
        *,
        timezone: str = "Europe/Moscow",
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.desk = desk
        self.bus = bus
        self.bot = bot
        self.group_id = group_id
        self.tz = ZoneInfo(timezone)
        self.max_attempts = max_attempts
        self._lanes: dict[Hashable, asyncio.Queue[tuple[str, Job]]] = {}
        self._lane_tasks: dict[Hashable, asyncio.Task[None]] = {}
        self._cursor: dict[int, int] = {}  # conversation id -> last message id seen in its topic
        self._start_mark = 0  # messages older than this process were not seen live
        self._events: AsyncIterator[Event] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_after: dict[int, float] = {}  # a failed topic: not swept again before then

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to live events (before returning: nothing published after this is missed)
        and catch up on chats waiting without a topic (e.g. queued while this was off)."""
        async with self.db.session() as session:
            self._start_mark = int(await session.scalar(select(func.max(Message.id))) or 0)
        events = self.bus.subscribe()
        first = asyncio.create_task(_next(events))
        await asyncio.sleep(0)  # the subscription is registered at the generator's first step
        self._events = events
        self._listener = asyncio.create_task(self._listen(events, first), name="telegram-group")
        waiting = await self._sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="telegram-group-sweep")
        log.info(
            "telegram group %s: listening (%d chat(s) to catch up)", self.group_id, len(waiting)
        )

    async def _sweep(self) -> list[int]:
        """Open topics for active chats that have none and no job in hand: the safety net for
        an event this process never saw (queued while it was off, during a takeover, with
        Redis away or absent on several processes)."""
        async with self.db.session() as session:
            waiting = (
                await session.scalars(
                    select(Conversation.id)
                    .where(Conversation.state.in_(ACTIVE), Conversation.topic_id.is_(None))
                    .order_by(Conversation.id)
                    .limit(500)
                )
            ).all()
        now = time.monotonic()
        missing = [
            conv_id
            for conv_id in waiting
            if conv_id not in self._lanes and self._sweep_after.get(conv_id, 0) <= now
        ]
        for conv_id in missing:
            self._dispatch({"type": "sweep", "conversation_id": conv_id})
        return missing

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                found = await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the next sweep tries again
                log.warning("telegram group: sweep for chats without a topic failed (%s)", exc)
                continue
            if found:
                log.info("telegram group: %d chat(s) without a topic found, opening", len(found))

    async def stop(self) -> None:
        background = (self._listener, self._sweeper, *self._lane_tasks.values())
        tasks = [t for t in background if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = self._sweeper = None
        if self._events is not None:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self._events = None

    async def run(self, started: asyncio.Event | None = None) -> None:
        """`start` (then set `started`), wait until cancelled, then `stop` (for an app that
        spawns tasks, e.g. as a single-instance role: one process posts into the topics)."""
        try:
            await self.start()
            if started is not None:
                started.set()
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- live events -> topics ---------------------------------------------------------------

    async def _listen(self, events: AsyncIterator[Event], first: Awaitable[Event]) -> None:
        self._dispatch(await first)
        async for event in events:
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        kind, conv_id = event.get("type"), event.get("conversation_id")
        if kind not in HANDLED_EVENTS or not isinstance(conv_id, int):
            return
        self._enqueue(conv_id, str(kind), functools.partial(self._sync, conv_id, str(kind)))

    def _notice(self, key: Hashable, thread: int, text: str) -> None:
        """Tell the topic something, off the update's path (a 429 must not hold the polling)."""
        self._enqueue(key, "notice", functools.partial(self._post, thread, text))

    def _enqueue(self, key: Hashable, label: str, job: Job) -> None:
        """Run `job` after the earlier ones of its lane (one per conversation, started on
        demand, gone when drained)."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = asyncio.Queue()
            self._lane_tasks[key] = asyncio.create_task(
                self._drain(key, lane), name=f"telegram-group-{key}"
            )
        lane.put_nowait((label, job))

    async def _drain(self, key: Hashable, lane: asyncio.Queue[tuple[str, Job]]) -> None:
        try:
            while not lane.empty():
                label, job = lane.get_nowait()
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:  # one chat's failure must not stop the others (or this lane)
                    log.exception("telegram group: %s of conversation %s failed", label, key)
        finally:  # no await between the empty check and here: nothing is queued in between
            self._lanes.pop(key, None)
            self._lane_tasks.pop(key, None)

    async def _sync(self, conv_id: int, kind: str) -> None:
        snap = await self._load(conv_id)
        if snap is None:
            return
        active = snap.state in ACTIVE
        if snap.topic_id is None:
            if active:  # queued, or an event after a failed topic creation: open it now
                await self._open_topic(snap)
            return
        if kind == "sweep":  # opened meanwhile (by this chat's earlier job): nothing to add
            return
        thread = int(snap.topic_id)
        if kind == "queued" and active:
            if await self._reopen(thread):  # it had gone back to the bot: fresh context
                await self._post_summary(snap, thread)
                return
            await self._post(
                thread,
                f"🔀 Чат снова в очереди «{snap.skill_group or '—'}»"
                f" — {snap.handoff_reason or 'без причины'}",
            )
        elif kind == "assigned" and snap.state == ConversationState.WITH_OPERATOR:
            await self._post(thread, f"✅ Чат у оператора {snap.operator_name or '—'}")
        elif kind == "missed" and snap.state == ConversationState.QUEUED:
            await self._post(thread, "⏰ Оператор не ответил вовремя — чат снова в очереди")
        if active:
            await self._forward(snap, thread)
        elif kind == "closed":
            who = f" ({snap.operator_name})" if snap.operator_name else ""
            await self._post(
                thread,
                f"🔒 Чат закрыт{who}: {snap.resolution or '—'}. Абоненту отправлен запрос оценки.",
            )
            await self._close_topic(snap.id, thread)
        elif kind == "returned":
            await self._post(thread, "🤖 Чат возвращён боту.")
            await self._close_topic(snap.id, thread)

    async def _load(self, conv_id: int) -> Snapshot | None:
        async with self.db.session() as session:
            conv = await session.get(Conversation, conv_id)
            if conv is None:
                return None
            account = await session.get(ChannelAccount, conv.channel_account_id)
            if account is None:
                return None
            subscriber = await session.get(Subscriber, conv.subscriber_id)
            operator = await session.get(Operator, conv.operator_id) if conv.operator_id else None
            slots = dict(conv.slots or {})
            contract = slots.get("contract")
            phone = (
                (subscriber.phone if subscriber else None)
                or (slots.get("phone") if isinstance(slots.get("phone"), str) else None)
                or (contract.get("phone") if isinstance(contract, dict) else None)
            )
            return Snapshot(
                id=conv.id,
                state=conv.state,
                topic_id=conv.topic_id,
                channel=conv.channel,
                skill_group=conv.skill_group,
                handoff_reason=conv.handoff_reason,
                resolution=conv.resolution,
                slots=slots,
                subscriber_id=conv.subscriber_id,
                name=display_name(account, subscriber),
                username=account.username,
                phone=phone,
                operator_name=operator.name if operator else None,
            )

    async def _load_context(self, snap: Snapshot) -> None:
        async with self.db.session() as session:
            recent = (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == snap.id)
                    .order_by(Message.id.desc())
                    .limit(SUMMARY_MESSAGES)
                )
            ).all()
            snap.messages = list(reversed(recent))
            asked = await session.scalars(  # what they asked for, beyond the transcript shown
                select(Message)
                .where(Message.conversation_id == snap.id, Message.author == Author.SUBSCRIBER)
                .order_by(Message.id.desc())
                .limit(SUMMARY_MESSAGES * 2)
            )
            snap.asked = list(reversed(asked.all()))
            snap.tickets = list(
                (
                    await session.scalars(
                        select(Ticket)
                        .where(
                            Ticket.subscriber_id == snap.subscriber_id,
                            Ticket.status == TicketStatus.OPEN,
                        )
                        .order_by(Ticket.created_at)
                    )
                ).all()
            )

    async def _open_topic(self, snap: Snapshot) -> None:
        try:
            topic = await self._api(
                functools.partial(self.bot.create_forum_topic, self.group_id, snap.topic_name())
            )
        except Exception as exc:  # the handoff itself is done; the next event retries
            log.warning("telegram group: no topic for conversation %s: %s", snap.id, exc)
            self._sweep_after[snap.id] = time.monotonic() + SWEEP_BACKOFF
            return
        self._sweep_after.pop(snap.id, None)
        thread = topic.message_thread_id
        async with self.db.session() as session:
            async with session.begin():
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == snap.id)
                    .values(topic_id=str(thread))
                )
        log.info("telegram group: conversation %s -> topic %s", snap.id, thread)
        await self._post_summary(snap, thread)

    async def _post_summary(self, snap: Snapshot, thread: int) -> None:
        await self._load_context(snap)
        if snap.messages:
            self._cursor[snap.id] = snap.messages[-1].id
        await self._post(thread, render_summary(snap, self.tz))
        # Anything the subscriber wrote after the summary was read comes next, in order.
        await self._forward(snap, thread)

    async def _forward(self, snap: Snapshot, thread: int) -> None:
        """The subscriber's messages the topic has not seen yet, in order."""
        cursor = self._cursor.get(snap.id, self._start_mark)
        async with self.db.session() as session:
            rows = (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == snap.id, Message.id > cursor)
                    .order_by(Message.id)
                )
            ).all()
        for m in rows:
            if m.author == Author.SUBSCRIBER:
                await self._post_subscriber_message(snap, thread, m)
            self._cursor[snap.id] = m.id  # after the post: a failed one is tried again

    async def _post_subscriber_message(self, snap: Snapshot, thread: int, m: Message) -> None:
        text = mask_data(m.text) if m.text else (f"[кнопка {m.payload}]" if m.payload else "")
        prefix = "👤 ✏️ " if m.edited else "👤 "
        for att in m.attachments or []:
            kind, ref = str(att.get("kind")), att.get("ref")
            if kind == "photo" and ref and snap.channel == "telegram":
                try:  # the same bot's file_id works in the group
                    caption = (prefix + text)[:1024] if text else prefix.strip()
                    await self._api(
                        functools.partial(
                            self.bot.send_photo,
                            self.group_id,
                            ref,
                            caption=caption,
                            message_thread_id=thread,
                            parse_mode=None,
                        )
                    )
                    text = ""
                    continue
                except TelegramBadRequest as exc:
                    log.info("telegram group: photo %s not re-sent (%s); posting a note", ref, exc)
            note = f"📎 {MEDIA_NAMES.get(kind, 'вложение')}" + (f" ({ref})" if ref else "")
            await self._post(thread, f"{prefix}{note}" + (f"\n{text}" if text else ""))
            text = ""
        if text:
            await self._post(thread, prefix + text)

    async def _reopen(self, thread: int) -> bool:
        """Reopen a closed topic; False if it was open."""
        try:
            await self._api(functools.partial(self.bot.reopen_forum_topic, self.group_id, thread))
        except TelegramBadRequest as exc:
            if "TOPIC_NOT_MODIFIED" in str(exc):
                return False
            raise
        return True

    async def _close_topic(self, conv_id: int, thread: int) -> None:
        self._cursor.pop(conv_id, None)  # a reopened topic starts with a fresh summary
        try:
            await self._api(functools.partial(self.bot.close_forum_topic, self.group_id, thread))
        except TelegramBadRequest as exc:
            if "TOPIC_NOT_MODIFIED" not in str(exc):  # already closed is fine
                raise

    # -- Bot API -----------------------------------------------------------------------------

    async def _api(self, call: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call, waiting out 429 `retry_after` and retrying network/5xx errors."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await call()
            except TelegramRetryAfter as exc:
                if attempt == self.max_attempts:
                    raise
                log.info("telegram group: 429, retrying in %ss", exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except (TelegramNetworkError, TelegramServerError) as exc:
                if attempt == self.max_attempts:
                    raise
                delay = min(0.5 * 2**attempt, 10.0)
                log.info("telegram group: %s, retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _post(self, thread: int | None, text: str) -> None:
        for chunk in split_text(text.strip(), "telegram"):
            await self._api(
                functools.partial(
                    self.bot.send_message,
                    self.group_id,
                    chunk,
                    message_thread_id=thread,
                    parse_mode=None,
                )
            )

    # -- operators writing in the group --------------------------------------------------------

    async def handle(self, message: TgMessage, update_id: int) -> None:
        """A message in the group (the dispatcher's group handler). The desk action happens
        here; what is said back in the topic is posted in the background. Never raises: a
        failure is told in the topic, so the operator knows to send it again."""
        user = message.from_user
        thread = message.message_thread_id if message.is_topic_message else None
        text = message.text if message.text is not None else message.caption
        has_media = bool(
            message.photo or message.document or message.video or message.voice or message.sticker
        )
        if user is None or user.is_bot or thread is None or (text is None and not has_media):
            return  # the General topic, service messages, other bots
        try:
            await self._handle(message, update_id, user.id, thread, text)
        except Exception:
            log.exception("telegram group: update %s failed", update_id)
            self._notice(("topic", thread), thread, "⚠️ Не получилось обработать — отправь ещё раз.")

    async def _handle(
        self, message: TgMessage, update_id: int, user_id: int, thread: int, text: str | None
    ) -> None:
        async with self.db.session() as session:
            async with session.begin():
                if not await repo.claim_update(session, DEDUPE_CHANNEL, str(update_id)):
                    log.info("telegram group: duplicate update %s dropped", update_id)
                    return
                row = (
                    await session.execute(
                        select(Conversation.id, Conversation.state)
                        .where(Conversation.topic_id == str(thread))
                        .order_by(Conversation.id.desc())
                        .limit(1)
                    )
                ).first()
                operator_id = await session.scalar(
                    select(Operator.id).where(Operator.telegram_user_id == str(user_id))
                )
        if row is None:
            return  # a topic of the team's own: not a chat
        conv_id, state = int(row[0]), str(row[1])
        if operator_id is None:
            first = message.from_user.first_name if message.from_user else ""
            self._notice(
                conv_id,
                thread,
                f"⛔ {first}, твой Telegram (id {user_id}) не привязан к оператору, сообщение "
                "абоненту не отправлено. Попроси администратора завести тебя: "
                f"supportbot operators add <login> --name <имя> --telegram-user-id {user_id}",
            )
            return
        if text is not None and text.startswith("/"):
            await self._command(int(operator_id), conv_id, thread, text)
            return
        if not text:
            self._notice(conv_id, thread, "⚠️ Абоненту уходит только текст: опиши словами.")
            return
        try:
            if state == ConversationState.QUEUED:
                await self.desk.take(int(operator_id), conv_id)
            await self.desk.reply(int(operator_id), conv_id, text)
        except DeskError as exc:
            self._notice(conv_id, thread, f"⚠️ Не отправлено: {exc}")

    async def _command(self, operator_id: int, conv_id: int, thread: int, text: str) -> None:
        """`/take`, `/close [resolution]`, `/bot`; their confirmations come back as events."""
        name, _, rest = text.partition(" ")
        command = name[1:].split("@", 1)[0].lower()
        try:
            if command == "take":
                await self.desk.take(operator_id, conv_id)
            elif command == "close":
                await self.desk.close(operator_id, conv_id, rest.strip() or "solved")
            elif command == "bot":
                await self.desk.return_to_bot(operator_id, conv_id)
            else:
                self._notice(conv_id, thread, HELP)
        except DeskError as exc:
            self._notice(conv_id, thread, f"⚠️ /{command}: {exc}")
