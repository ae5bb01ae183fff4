"""The outbox worker: delivers stored replies through a channel's `ChannelSender`, within limits.

One worker per channel. Each round it (1) writes the results of finished sends in one
transaction, (2) claims the next due message of every chat that has nothing in flight (the head
of that chat's queue, so per-chat order holds even across processes), and (3) starts a send per
claimed row. Sends wait for a per-chat and a global token bucket, so we stay under the platform's
limits instead of hammering into 429s. Failures:

- RetryAfter (Telegram 429, VK 6/9): the whole channel pauses for the time asked, the row waits.
- Blocked (403 / VK 901): the chat's account is marked unreachable and its pending rows stop.
- TransientError / unexpected exceptions: exponential backoff, retried until it goes through.
- PermanentError: the row is kept as `failed` with the error for a human; later rows go on.

A claimed row carries a lease; if a process dies mid-send, the row is picked up again after the
lease expires (at-least-once; VK drops the resend itself thanks to `random_id`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from bots.errors import Blocked, PartialSend, PermanentError, RetryAfter
from bots.sender import ChannelSender
from dialogs.messages import Outbound
from storage import repo
from storage.db import Database
from storage.models import Message, OutboxItem, OutboxStatus, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Messages per second: per chat (with a burst) and for the whole bot/token."""

    per_chat: float = 1.0
    per_chat_burst: int = 3
    overall: float = 30.0
    overall_burst: int = 30


class TokenBucket:
    """Reserve-then-sleep token bucket: `reserve()` returns how long the caller must wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def reserve(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def idle(self) -> bool:
        elapsed = time.monotonic() - self.stamp
        return self.tokens + elapsed * self.rate >= self.burst


@dataclass(slots=True)
class _Result:
    item_id: int
    chat_id: str
    message_id: int | None
    status: OutboxStatus
    parts_sent: int
    ids: list[str] = field(default_factory=list)
    not_before: datetime | None = None
    error: str | None = None


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        sender: ChannelSender,
        limits: RateLimits | None = None,
        *,
        batch: int = 200,
        poll_interval: float = 1.0,
    ) -> None:
        self.db = db
        self.sender = sender
        self.channel = sender.channel
        self.limits = limits or RateLimits()
        self.batch = batch
        self.poll_interval = poll_interval
        self._overall = TokenBucket(self.limits.overall, self.limits.overall_burst)
        self._chats: dict[str, TokenBucket] = {}
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._done: list[_Result] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def wake(self) -> None:
        """Called after new rows were committed (by this process) so they go out at once."""
        self._wake.set()

    async def run(self) -> None:
        log.info("outbox worker for %s started", self.channel)
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._flush_results()
                    claimed = await self._claim()
                except Exception as exc:
                    log.warning("outbox %s: database unavailable (%r); retrying", self.channel, exc)
                    await asyncio.sleep(1.0)
                    continue
                for item in claimed:
                    task = asyncio.create_task(self._deliver(item))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if len(claimed) < self.batch:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    except TimeoutError:
                        pass
        finally:
            await self._drain()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._flush_results()

    # -- database side ---------------------------------------------------------------------

    async def _claim(self) -> list[OutboxItem]:
        now = utcnow()
        earlier = aliased(OutboxItem)
        ready = or_(
            OutboxItem.status == OutboxStatus.PENDING,
            and_(OutboxItem.status == OutboxStatus.SENDING, OutboxItem.lease_until < now),
        )
        head_of_chat = ~exists().where(
            earlier.channel == OutboxItem.channel,
            earlier.chat_id == OutboxItem.chat_id,
            earlier.id < OutboxItem.id,
            earlier.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        query = (
            select(OutboxItem)
            .where(OutboxItem.channel == self.channel, ready, OutboxItem.not_before <= now)
            .where(head_of_chat)
            .order_by(OutboxItem.id)
            .limit(self.batch)
        )
        async with self.db.session() as session, session.begin():
            candidates = list((await session.execute(query)).scalars())
            if not candidates:
                return []
            result = await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_([c.id for c in candidates]), ready)
                .values(
                    status=OutboxStatus.SENDING,
                    lease_until=now + LEASE,
                    attempts=OutboxItem.attempts + 1,
                )
                .returning(OutboxItem.id)
                .execution_options(synchronize_session=False)
            )
            won = {row[0] for row in result}
        return [c for c in candidates if c.id in won]

    async def _flush_results(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            async with self.db.session() as session, session.begin():
                for r in done:
                    values: dict[str, object] = {
                        "status": r.status,
                        "parts_sent": r.parts_sent,
                        "lease_until": None,
                        "last_error": r.error,
                    }
                    if r.status == OutboxStatus.SENT:
                        values["sent_at"] = utcnow()
                        values["platform_message_ids"] = r.ids
                    if r.not_before is not None:
                        values["not_before"] = r.not_before
                    await session.execute(
                        update(OutboxItem).where(OutboxItem.id == r.item_id).values(**values)
                    )
                    if r.status == OutboxStatus.SENT and r.message_id and r.ids:
                        await session.execute(
                            update(Message)
                            .where(Message.id == r.message_id)
                            .values(platform_message_id=r.ids[-1])
                        )
                    if r.status == OutboxStatus.UNREACHABLE:
                        await repo.mark_unreachable(session, self.channel, r.chat_id, utcnow())
                        await session.execute(
                            update(OutboxItem)
                            .where(
                                OutboxItem.channel == self.channel,
                                OutboxItem.chat_id == r.chat_id,
                                OutboxItem.status == OutboxStatus.PENDING,
                            )
                            .values(status=OutboxStatus.UNREACHABLE, last_error=r.error)
                        )
        except Exception:
            self._done = done + self._done  # keep them: nothing is forgotten on a DB hiccup
            raise

    # -- platform side ---------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        parts = item.parts_sent
        ids: list[str] = list(item.platform_message_ids or [])
        try:
            await self._wait_turn(item.chat_id)
            try:
                new_ids = await self.sender.send(
                    item.chat_id, Outbound.from_json(item.body), key=item.id, skip_parts=parts
                )
            except PartialSend as partial:
                parts = partial.done
                ids += partial.sent_ids
                raise partial.cause from partial
            self._finish(item, OutboxStatus.SENT, parts + len(new_ids), ids + new_ids)
        except RetryAfter as exc:
            self._paused_until = max(self._paused_until, time.monotonic() + exc.seconds)
            log.warning(
                "%s asked to retry after %.1fs (chat %s)", self.channel, exc.seconds, item.chat_id
            )
            self._finish(item, OutboxStatus.PENDING, parts, ids, delay=exc.seconds, error=str(exc))
        except Blocked as exc:
            log.info("%s chat %s blocked the bot; marking unreachable", self.channel, item.chat_id)
            self._finish(item, OutboxStatus.UNREACHABLE, parts, ids, error=str(exc))
        except PermanentError as exc:
            log.error("%s outbox #%s rejected for good: %s", self.channel, item.id, exc)
            self._finish(item, OutboxStatus.FAILED, parts, ids, error=str(exc))
        except Exception as exc:  # TransientError and anything unexpected: back off, retry
            delay = min(MAX_BACKOFF, 2.0 ** max(0, item.attempts - 1)) * random.uniform(0.8, 1.2)
            log.warning(
                "%s outbox #%s failed (%s); retry in %.1fs", self.channel, item.id, exc, delay
            )
            self._finish(item, OutboxStatus.PENDING, parts, ids, delay=delay, error=repr(exc))

    def _finish(
        self,
        item: OutboxItem,
        status: OutboxStatus,
        parts: int,
        ids: list[str],
        *,
        delay: float | None = None,
        error: str | None = None,
    ) -> None:
        not_before = utcnow() + timedelta(seconds=delay) if delay is not None else None
        self._done.append(
            _Result(item.id, item.chat_id, item.message_id, status, parts, ids, not_before, error)
        )
        self._wake.set()

    async def _wait_turn(self, chat_id: str) -> None:
        """Sleep until this chat and the channel as a whole may send again."""
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if len(self._chats) > 10_000:
                self._chats = {k: b for k, b in self._chats.items() if not b.idle()}
            bucket = self._chats[chat_id] = TokenBucket(
                self.limits.per_chat, self.limits.per_chat_burst
            )
        delay = bucket.reserve()
        if delay:
            await asyncio.sleep(delay)
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            delay = self._overall.reserve()
            if not delay:
                return
            await asyncio.sleep(delay)
            if self._paused_until <= time.monotonic():
                return
