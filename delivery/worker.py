"""The outbox worker: delivers stored replies through a channel's `ChannelSender`, within limits.

One worker per channel. Each round it claims the next due message of every chat that has
nothing in flight (the head of that chat's queue, so per-chat order holds even across
processes), keeping at most `batch` rows in flight, and starts a send per claimed row. A reply
written by this process to a chat with nothing queued comes already claimed, handed over as its
transaction commits (`take`; storage/repo.py `enqueue`): no claim, no wait for one. Every
platform request of a send (a message may take several: long text, sticker + text, a VK photo
upload) waits for a per-chat token bucket and the channel's `Pacer`, so we stay under the
platform's limits instead of hammering into 429s; a broadcast to thousands drains at the
channel's rate.

Crash safety: a send's result is written the moment it is known (and each part of a multi-part
message as it goes out), so a process killed mid-way repeats at most the one request per chat
that was on the wire (Telegram has no idempotency key; VK drops the repeat itself thanks to
`random_id`). A claimed row carries a short lease (`LEASE`) that the worker renews while the
row is in flight, so a dead process's rows are sent by another process (or the restarted one)
within `LEASE`, not minutes later.

Failure policy (one place, by the class of the error):
- RetryAfter (Telegram 429, VK 6/9): the whole channel pauses for the time asked, the row waits.
- Blocked (403 / VK 901): the chat's account is marked unreachable and its pending rows stop.
- TransientError (network, 5xx): exponential backoff up to a minute, for at most `GIVE_UP_AFTER`
  since the message was written; then the row is `failed` ("gave up") for a human to see.
- PermanentError (400, VK 100): `failed` at once with the error; later rows of the chat go on.
- Anything else is a bug: retried `MAX_BUG_ATTEMPTS` times (it may be a fluke), then `failed`.
Failed rows are the outgoing dead letters: supervisors see them (console "Сбои") and can
send them again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, exists, func, or_, select, update

from delivery.errors import Blocked, PartialSend, PermanentError, RetryAfter, TransientError
from delivery.pacing import Pacer, RateLimits, SharedLimits, TokenBucket
from delivery.sender import ChannelSender
from dialogs.messages import Channel, Outbound
from storage import repo
from storage.db import Database
from storage.models import Base, OutboxStatus, utcnow
from storage.rows import Statement

log = logging.getLogger(__name__)

OUTBOX = Base.metadata.tables["outbox"]
LEASE = timedelta(seconds=20)  # renewed every LEASE/4 while a row is in flight
MAX_BACKOFF = 60.0
GIVE_UP_AFTER = timedelta(hours=24)  # a transient failure retried longer than this is failed
MAX_BUG_ATTEMPTS = 5  # an unexpected exception (a bug) is not retried in a loop forever


# A send's result (the same for every channel).
_RECORD = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        parts_sent=bindparam("b_parts"),
        platform_message_ids=bindparam("b_ids", type_=OUTBOX.c.platform_message_ids.type),
        last_error=bindparam("b_error"),
        lease_until=None,
        sent_at=func.coalesce(
            bindparam("b_sent_at", type_=OUTBOX.c.sent_at.type), OUTBOX.c.sent_at
        ),
        not_before=func.coalesce(
            bindparam("b_not_before", type_=OUTBOX.c.not_before.type), OUTBOX.c.not_before
        ),
    )
)
_RECORD_ROWS = Statement(_RECORD)  # on the driver's connection (storage/rows.py)


@dataclass(slots=True)
class _Claimed:
    """The outbox columns a send needs (field order = the SELECT's column order)."""

    id: int
    chat_id: str
    body: dict[str, Any]
    attempts: int
    parts_sent: int
    platform_message_ids: list[str]
    created_at: datetime


@dataclass(slots=True)
class _Result:
    item_id: int
    chat_id: str
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
        shared: SharedLimits | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.channel = sender.channel
        self.limits = limits or RateLimits()
        self.batch = batch
        self._refill = max(1, batch // 4)  # claim again once this many slots are free
        self.poll_interval = poll_interval
        self._overall = Pacer(self.limits.overall)
        self._shared = shared  # the limits across processes (Redis), if several may run
        self._chats: dict[str, TokenBucket] = {}
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._done: list[_Result] = []  # results not written yet (the database was away)
        self._results: list[_Result] = []  # results waiting for the write on its way
        self._writing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[int] = set()  # claimed row ids whose lease this worker renews
        self._stopping = False
        self._running = False  # `run` is looping (rows may be handed to it: `take`)
        self._drained = False  # stopped, and handing back what it held (`_drain`)
        self._late: set[asyncio.Task[None]] = set()  # hand-backs of rows taken after that
        # When to claim: `_more` while the database may hold rows this worker can claim now
        # (set by `wake`, cleared by a claim that had room to spare); `_behind` holds chats
        # with rows queued behind a row of ours on its way, claimed once its result is written.
        self._more = True
        self._behind: set[str] = set()
        self._flying: Counter[str] = Counter()  # rows in flight (here) per chat
        self._handed: set[int] = set()  # rows in flight that came by `take`, not by a claim
        # What happened to sends, for /metrics: sent, retry_after, blocked, permanent,
        # transient, bug, gave_up.
        self.stats: Counter[str] = Counter()
        self._build_statements()

    def wake(self) -> None:
        """Called after new rows were committed (by this process) so they go out at once."""
        self._more = True
        self._wake.set()

    def behind(self, chats: set[str]) -> None:
        """New rows of `chats` wait behind rows on their way: claimed as soon as this worker's
        row of the chat is done (now, when it has none: the row ahead is not ours)."""
        if any(not self._flying[chat] for chat in chats):
            self.wake()
        self._behind.update(chats)

    def lease_for_new(self) -> tuple[timedelta, int] | None:
        """The lease for new rows this worker will take as their transaction commits (`take`)
        and how many it has room for; None while it is not running or is full: new rows then
        wait for a claim."""
        room = self.batch - len(self._tasks)
        if not self._running or self._stopping or room <= 0:
            return None
        return LEASE, room

    def take(self, rows: list[dict[str, Any]]) -> None:
        """Send `rows`: outbox rows committed already claimed for this worker (storage/repo.py
        `enqueue`), each the head of its chat's queue, as `_claim` would have returned them."""
        if not self._running:
            # Leased just before this worker stopped (a deploy): pending again with the rows it
            # did not send (`_drain`), so the next process sends them at once, not when their
            # lease runs out.
            self._in_flight.update(row["id"] for row in rows)
            if self._drained:
                task = asyncio.create_task(self._hand_back(), name=f"outbox-{self.channel}-back")
                self._late.add(task)
                task.add_done_callback(self._late.discard)
            return
        for row in rows:
            item = _Claimed(row["id"], row["chat_id"], row["body"], row["attempts"],
                            row["parts_sent"], row["platform_message_ids"], row["created_at"])  # fmt: skip
            self._handed.add(item.id)
            self._start(item)

    def _start(self, item: _Claimed) -> None:
        self._in_flight.add(item.id)
        self._flying[item.chat_id] += 1
        task = asyncio.create_task(self._deliver(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        log.info("outbox worker for %s started", self.channel)
        renewer = asyncio.create_task(self._renew_leases(), name=f"outbox-{self.channel}-lease")
        self._running = True
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._flush_results()
                    # At most `batch` rows in flight: a claimed row waits for its turn under the
                    # lease (renewed), and the platform's rate decides how fast they drain.
                    room = self.batch - len(self._tasks)
                    claimed = []
                    if room >= self._refill:
                        self._more = False  # unless the claim fills the room (below)
                        claimed = await self._claim(room)
                        self._more = len(claimed) >= room
                except Exception as exc:
                    log.warning("outbox %s: database unavailable (%r); retrying", self.channel, exc)
                    await asyncio.sleep(1.0)
                    continue
                for item in claimed:
                    self._start(item)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass
        finally:
            self._running = False
            await self._drain()
            renewer.cancel()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _drain(self) -> None:
        """On stop: let sends on the wire finish (10 s at most), then hand every row still
        claimed back as pending, so nothing stays `sending` until its lease runs out."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        try:
            await self._flush_results()
        except Exception as exc:
            log.warning("outbox %s: results not written (%r)", self.channel, exc)
        self._drained = True  # rows handed to it from now on are handed back as they come
        await self._hand_back()

    async def _hand_back(self) -> None:
        """Rows claimed or handed here and not sent: pending again, for any worker to claim.
        Rows sent whose results could not be written keep their lease (never sent twice)."""
        unwritten = {r.item_id for r in self._done}
        ids = sorted(self._in_flight - unwritten)
        self._in_flight &= unwritten
        if not ids:
            return
        try:
            async with self.db.session() as session, session.begin():
                await session.execute(self._release, {"ids": ids})
        except Exception as exc:  # their lease runs out: claimed then
            log.warning("outbox %s: could not hand back claimed rows (%r)", self.channel, exc)

    # -- database side ---------------------------------------------------------------------

    def _build_statements(self) -> None:
        """Built once per worker: constructing SQL expressions costs more than running them."""
        t = OUTBOX
        ready = or_(
            t.c.status == OutboxStatus.PENDING,
            and_(t.c.status == OutboxStatus.SENDING, t.c.lease_until < bindparam("now")),
        )
        earlier = t.alias("earlier")
        head_of_chat = ~exists().where(
            earlier.c.channel == t.c.channel,
            earlier.c.chat_id == t.c.chat_id,
            earlier.c.id < t.c.id,
            earlier.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        self._select_due = (
            select(*(t.c[name] for name in _Claimed.__slots__))
            .where(t.c.channel == self.channel, ready, t.c.not_before <= bindparam("now"))
            .where(head_of_chat)
            .order_by(t.c.id)
            .limit(bindparam("room", type_=Integer))
        )
        self._take = (
            update(t)
            .where(t.c.id.in_(bindparam("ids", expanding=True)), ready)
            .values(
                status=OutboxStatus.SENDING,
                lease_until=bindparam("lease"),
                attempts=t.c.attempts + 1,
            )
            .returning(t.c.id)
        )
        mine = and_(
            t.c.id.in_(bindparam("ids", expanding=True)), t.c.status == OutboxStatus.SENDING
        )
        self._renew = update(t).where(mine).values(lease_until=bindparam("lease"))
        self._release = update(t).where(mine).values(status=OutboxStatus.PENDING, lease_until=None)
        self._progress = (
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.status == OutboxStatus.SENDING)
            .values(
                parts_sent=bindparam("b_parts"),
                platform_message_ids=bindparam("b_ids", type_=t.c.platform_message_ids.type),
            )
        )
        self._stop_chat = (
            update(t)
            .where(
                t.c.channel == self.channel,
                t.c.chat_id == bindparam("b_chat"),
                t.c.status == OutboxStatus.PENDING,
            )
            .values(status=OutboxStatus.UNREACHABLE, last_error=bindparam("b_error"))
        )

    async def _claim(self, room: int) -> list[_Claimed]:
        now = utcnow()
        async with self.db.session() as session, session.begin():
            rows = (await session.execute(self._select_due, {"now": now, "room": room})).all()
            if not rows:
                return []
            params = {"ids": [r.id for r in rows], "now": now, "lease": now + LEASE}
            won = {row[0] for row in await session.execute(self._take, params)}
        return [_Claimed(*row) for row in rows if row.id in won]

    async def _renew_leases(self) -> None:
        """Keep the lease of every row in flight (claimed, waiting for its turn or on the
        wire) a full `LEASE` ahead, so only a dead process's rows ever expire."""
        every = LEASE.total_seconds() / 4
        while True:
            await asyncio.sleep(every)
            if not self._in_flight:
                continue
            try:
                async with self.db.session() as session, session.begin():
                    params = {"ids": sorted(self._in_flight), "lease": utcnow() + LEASE}
                    await session.execute(self._renew, params)
            except Exception as exc:
                log.warning("outbox %s: lease renewal failed (%r)", self.channel, exc)

    async def _write(self, done: list[_Result]) -> None:
        now = utcnow()
        # In id order, as the claim and the lease renewal take their rows: on PostgreSQL a
        # batch in the order the sends finished deadlocked with a renewal (one second lost to
        # the deadlock check, the batch rewritten; seen under load in bench/ceiling.py).
        done = sorted(done, key=lambda r: r.item_id)
        params = [
            {
                "b_id": r.item_id,
                "b_status": r.status,
                "b_parts": r.parts_sent,
                "b_ids": r.ids,
                "b_error": r.error,
                "b_sent_at": now if r.status == OutboxStatus.SENT else None,
                "b_not_before": r.not_before,
            }
            for r in done
        ]
        if all(r.status != OutboxStatus.UNREACHABLE for r in done):  # (nearly always)
            async with self.db.statement() as session:  # one round trip on PostgreSQL
                await _RECORD_ROWS.run(session, params)  # without SQLAlchemy's ~0.2 ms a call
            return
        async with self.db.session() as session, session.begin():
            await _RECORD_ROWS.run(session, params)
            for r in done:
                if r.status == OutboxStatus.UNREACHABLE:
                    await repo.mark_unreachable(session, self.channel, r.chat_id, now)
                    stop = {"b_chat": r.chat_id, "b_error": r.error}
                    await session.execute(self._stop_chat, stop)

    async def _flush_results(self) -> None:
        """Write results whose immediate write failed (the database was away)."""
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            await self._write(done)
        except Exception:
            self._done = done + self._done  # keep them: nothing is forgotten on a DB hiccup
            raise
        self._written(done)

    def _written(self, done: list[_Result]) -> None:
        """`done` is in the database: its rows are no longer ours, and the rows queued behind
        them in their chats may be claimed."""
        self._in_flight.difference_update(r.item_id for r in done)
        for r in done:
            self._flying[r.chat_id] -= 1
            if not self._flying[r.chat_id]:
                del self._flying[r.chat_id]
            # Behind a claimed row anything may wait (claim again, as always); behind a handed
            # one only what `behind` was told of (or another process's rows: the poll's).
            if r.item_id not in self._handed or r.chat_id in self._behind:
                self._behind.discard(r.chat_id)
                self._more = True
            self._handed.discard(r.item_id)

    async def _record_progress(self, item: _Claimed, parts: int, ids: list[str]) -> None:
        """A part of a multi-part message went out: note it now, so a crash resends only the
        part that was on the wire."""
        before = list(item.platform_message_ids or [])
        params = {"b_id": item.id, "b_parts": parts, "b_ids": before + ids}
        try:
            async with self.db.session() as session, session.begin():
                await session.execute(self._progress, params)
        except Exception as exc:  # the final result is written (or kept) anyway
            log.warning("outbox #%s: progress not recorded (%r)", item.id, exc)

    # -- platform side ---------------------------------------------------------------------

    async def _deliver(self, item: _Claimed) -> None:
        result = await self._send(item)
        self._results.append(result)  # the list as it is now (a write may have swapped it)
        if not self._writing:
            await self._write_results()

    async def _write_results(self) -> None:
        """Write every known result at once: a crash after this cannot repeat those sends.
        Group commit: results that arrive while a write is on its way go in the next one, so
        under load a transaction carries many rows, and alone a result is written at once."""
        self._writing = True
        try:
            # Statements on SQLite never wait (storage/sqlite_inline.py), so without this pass
            # of the loop no other result could ever join: the sends that finish in it do.
            await asyncio.sleep(0)
            while self._results:
                batch, self._results = self._results, []
                try:
                    await self._write(batch)
                except BaseException as exc:
                    self._done += batch  # kept: written by the next pass or the drain
                    if not isinstance(exc, Exception):
                        raise
                    log.warning("outbox: %d results kept for the next pass (%r)", len(batch), exc)
                else:
                    self._written(batch)
        finally:
            self._done += self._results  # cancelled (stopping): the drain writes them
            self._results = []
            self._writing = False
        if self._more or self._done:  # room to claim more now, or results to write again
            self._wake.set()

    async def _send(self, item: _Claimed) -> _Result:
        parts = item.parts_sent
        ids: list[str] = list(item.platform_message_ids or [])
        try:
            try:
                new_ids = await self.sender.send(
                    item.chat_id,
                    Outbound.from_json(item.body),
                    key=item.id,
                    skip_parts=parts,
                    pace=functools.partial(self._wait_turn, item.chat_id),
                    progress=functools.partial(self._record_progress, item),
                )
            except PartialSend as partial:
                parts = partial.done
                ids += partial.sent_ids
                raise partial.cause from partial
            self.stats["sent"] += 1
            return self._result(item, OutboxStatus.SENT, parts + len(new_ids), ids + new_ids)
        except RetryAfter as exc:
            self.stats["retry_after"] += 1
            self._paused_until = max(self._paused_until, time.monotonic() + exc.seconds)
            log.warning(
                "%s asked to retry after %.1fs (chat %s)", self.channel, exc.seconds, item.chat_id
            )
            return self._result(
                item, OutboxStatus.PENDING, parts, ids, delay=exc.seconds, error=str(exc)
            )
        except Blocked as exc:
            self.stats["blocked"] += 1
            log.info("%s chat %s blocked the bot; marking unreachable", self.channel, item.chat_id)
            return self._result(item, OutboxStatus.UNREACHABLE, parts, ids, error=str(exc))
        except PermanentError as exc:
            self.stats["permanent"] += 1
            log.error("%s outbox #%s rejected for good: %s", self.channel, item.id, exc)
            return self._result(item, OutboxStatus.FAILED, parts, ids, error=str(exc))
        except Exception as exc:
            return self._retry_or_fail(item, exc, parts, ids)

    def _retry_or_fail(self, item: _Claimed, exc: Exception, parts: int, ids: list[str]) -> _Result:
        """A transient error is retried with backoff until `GIVE_UP_AFTER`; an unexpected
        exception (a bug) `MAX_BUG_ATTEMPTS` times. Then the row is failed, for a human."""
        bug = not isinstance(exc, TransientError)
        self.stats["bug" if bug else "transient"] += 1
        age = utcnow() - _aware(item.created_at)
        if (bug and item.attempts >= MAX_BUG_ATTEMPTS) or age > GIVE_UP_AFTER:
            self.stats["gave_up"] += 1
            why = f"gave up after {item.attempts} attempts: {exc!r}"
            log.error("%s outbox #%s %s", self.channel, item.id, why, exc_info=bug)
            return self._result(item, OutboxStatus.FAILED, parts, ids, error=why[:2000])
        delay = min(MAX_BACKOFF, 2.0 ** max(0, item.attempts - 1)) * random.uniform(0.8, 1.2)
        log.warning("%s outbox #%s failed (%r); retry in %.1fs", self.channel, item.id, exc, delay)
        return self._result(item, OutboxStatus.PENDING, parts, ids, delay=delay, error=repr(exc))

    @staticmethod
    def _result(
        item: _Claimed,
        status: OutboxStatus,
        parts: int,
        ids: list[str],
        *,
        delay: float | None = None,
        error: str | None = None,
    ) -> _Result:
        not_before = utcnow() + timedelta(seconds=delay) if delay is not None else None
        return _Result(item.id, item.chat_id, status, parts, ids, not_before, error)

    async def _wait_turn(self, chat_id: str) -> None:
        """Sleep until this chat and the channel as a whole may make one more request (the
        sender awaits this before each request: a message may take several)."""
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
        await self._overall.wait(lambda: self._paused_until)
        if self._shared is not None:
            limits = self.limits
            await self._shared.wait(
                [
                    (self.channel, limits.overall, 1),
                    (f"{self.channel}:{chat_id}", limits.per_chat, limits.per_chat_burst),
                ]
            )


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive (they are stored in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class WorkerSenders:
    """A process's outbox workers by channel, as a committed transaction wakes them and hands
    them its new rows (storage/db.py `Senders`; `Database.on_commit(wake=..., senders=...)`)."""

    def __init__(self, workers: Mapping[Channel, OutboxWorker]) -> None:
        self._workers = workers

    def wake(self, channel: str) -> None:
        worker = self._workers.get(Channel(channel))
        if worker is not None:
            worker.wake()

    def lease(self, channel: str) -> tuple[timedelta, int] | None:
        worker = self._workers.get(Channel(channel))
        return worker.lease_for_new() if worker is not None else None

    def take(self, channel: str, rows: list[dict[str, Any]]) -> None:
        worker = self._workers.get(Channel(channel))
        if worker is not None:  # (it was there for `lease`; else the lease runs out: claimed)
            worker.take(rows)

    def behind(self, channel: str, chats: set[str]) -> None:
        worker = self._workers.get(Channel(channel))
        if worker is not None:
            worker.behind(chats)
