"""Prometheus metrics of one app process, served at `GET /metrics` (text exposition format).

Counted as things happen, by wrappers the composition root puts around the pipeline
(`ObservedHandler`: updates in, bot replies, handling time; it also names the channel and update
in the log context) and the intent engine (`TimedEngine`: NLU latency by the engine that
answered). Read at scrape time: each outbox worker's `stats` counter (sends by outcome), and from
the database, in one short read, the outbox backlog, its oldest row and failed rows per channel,
and the operator queue per skill group with its longest wait. A database that does not answer
within `SCRAPE_DB_TIMEOUT` makes `supportbot_database_up 0` and leaves its figures out; the scrape
itself never waits longer.

Names (README, "Metrics and logs"): supportbot_updates_total{channel,outcome},
supportbot_update_seconds{channel}, supportbot_bot_replies_total{channel},
supportbot_nlu_parse_seconds{engine}, supportbot_sends_total{channel,outcome},
supportbot_database_up, supportbot_outbox_backlog{channel},
supportbot_outbox_oldest_age_seconds{channel}, supportbot_outbox_failed{channel},
supportbot_handoff_queue_length{group}, supportbot_handoff_oldest_wait_seconds{group},
supportbot_dead_letters{channel} (updates that failed for good, not yet dealt with).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from dialogs import logcontext
from dialogs.messages import Channel, HandleResult, Inbound, InboundHandler
from nlu.types import IntentEngine, Parse
from storage.db import Database
from storage.models import (
    Conversation,
    ConversationState,
    DeadLetter,
    OutboxItem,
    OutboxStatus,
    utcnow,
)

log = logging.getLogger(__name__)

SCRAPE_DB_TIMEOUT = 0.5  # seconds a scrape waits for the database's figures
QUERY_TIMEOUT = 5.0  # a read still running after the scrape answered is abandoned after this
# What OutboxWorker.stats counts (delivery/worker.py); each is shown, 0 until it happens.
SEND_OUTCOMES = ("sent", "retry_after", "blocked", "permanent", "transient", "bug", "gave_up")
UNDELIVERED = (OutboxStatus.PENDING, OutboxStatus.SENDING)


@dataclass(slots=True)
class Snapshot:
    """The database's figures at one scrape."""

    backlog: dict[str, int] = field(default_factory=dict)  # channel -> pending + sending rows
    oldest: dict[str, datetime] = field(default_factory=dict)  # channel -> oldest undelivered
    failed: dict[str, int] = field(default_factory=dict)  # channel -> rows failed for good
    queued: dict[str, int] = field(default_factory=dict)  # skill group -> chats waiting
    waiting_since: dict[str, datetime] = field(default_factory=dict)  # group -> longest waiting
    dead: dict[str, int] = field(default_factory=dict)  # channel -> unresolved dead letters
    taken_at: datetime = field(default_factory=utcnow)


async def read_snapshot(db: Database) -> Snapshot:
    """Two grouped counts, each along an index (ix_outbox_due, ix_conversations_queue)."""
    snap = Snapshot()
    outbox = (
        select(
            OutboxItem.channel,
            OutboxItem.status,
            func.count(),
            func.min(OutboxItem.created_at),
        )
        # Both columns named, so PostgreSQL reads ix_outbox_due (channel, status, ...) alone.
        .where(OutboxItem.channel.in_([c.value for c in Channel]))
        .where(OutboxItem.status.in_([*UNDELIVERED, OutboxStatus.FAILED]))
        .group_by(OutboxItem.channel, OutboxItem.status)
    )
    queue = (
        select(Conversation.skill_group, func.count(), func.min(Conversation.queued_at))
        .where(Conversation.state == ConversationState.QUEUED)
        .group_by(Conversation.skill_group)
    )
    dead = (
        select(DeadLetter.channel, func.count())
        .where(DeadLetter.resolved_at.is_(None))
        .group_by(DeadLetter.channel)
    )
    async with db.session() as session:
        for channel, count in (await session.execute(dead)).all():
            snap.dead[channel] = int(count)
        for channel, status, count, oldest in (await session.execute(outbox)).all():
            if status == OutboxStatus.FAILED:
                snap.failed[channel] = int(count)
                continue
            snap.backlog[channel] = snap.backlog.get(channel, 0) + int(count)
            if oldest is not None and (channel not in snap.oldest or oldest < snap.oldest[channel]):
                snap.oldest[channel] = oldest
        for group, count, since in (await session.execute(queue)).all():
            name = group or "none"
            snap.queued[name] = int(count)
            if since is not None:
                snap.waiting_since[name] = since
    snap.taken_at = utcnow()
    return snap


class Metrics:
    """The registry of one `App`: its counters, and the figures read at scrape time."""

    def __init__(self, db: Database, workers: Mapping[Any, Any], groups: Sequence[str]) -> None:
        disable_created_metrics()  # no *_created series: nothing here needs them
        self.db = db
        self.workers = workers  # App.workers: filled as the channels start
        self.groups = list(groups)
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "supportbot_updates",
            "Subscriber updates that entered the pipeline, by outcome (handled, duplicate, failed)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.update_seconds = Histogram(
            "supportbot_update_seconds",
            "Time to store an update and queue the bot's replies (NLU included)",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.bot_replies = Counter(
            "supportbot_bot_replies",
            "Replies the bot queued in the outbox (operators' replies not included)",
            ["channel"],
            registry=self.registry,
        )
        self.nlu_seconds = Histogram(
            "supportbot_nlu_parse_seconds",
            "Time the intent engine took to parse one text, by the engine that answered",
            ["engine"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.registry.register(_ScrapeTime(self))
        self.snapshot: Snapshot | None = None  # of the scrape being rendered; None: DB down
        self._reading: asyncio.Task[Snapshot] | None = None
        self._db_was_up = True

    async def handler(self, request: web.Request) -> web.Response:
        """`GET /metrics`: Prometheus text, or OpenMetrics when asked for. No token, like the
        probes: keep the port internal (README, "Metrics and logs")."""
        body, content_type = await self.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        snapshot = await self._read_db()
        self.snapshot = snapshot  # no await between this and the rendering below
        return encoder(self.registry), content_type

    async def _read_db(self) -> Snapshot | None:
        """The database's figures, or None when they take longer than SCRAPE_DB_TIMEOUT. One read
        at a time: a slow one goes on in the background (up to QUERY_TIMEOUT) and the next
        scrape waits for it instead of starting another."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._query(), name="metrics-read")
            self._reading.add_done_callback(_retrieve)
        try:
            snapshot = await asyncio.wait_for(asyncio.shield(self._reading), SCRAPE_DB_TIMEOUT)
        except Exception as exc:  # slow, refused, or any driver error: the scrape goes on
            if self._db_was_up:
                log.warning("metrics: the database is not answering: %r", exc)
            self._db_was_up = False
            return None
        if not self._db_was_up:
            log.info("metrics: the database answers again")
        self._db_was_up = True
        return snapshot

    async def close(self) -> None:
        """Stop a database read still running for a scrape that gave up on it."""
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _query(self) -> Snapshot:
        async with asyncio.timeout(QUERY_TIMEOUT):
            return await read_snapshot(self.db)

    def observe(self, inner: InboundHandler) -> ObservedHandler:
        return ObservedHandler(inner, self)

    def timed(self, engine: IntentEngine) -> TimedEngine:
        return TimedEngine(engine, self)


class _ScrapeTime(Collector):
    """What is read when Prometheus asks: the workers' send counters and the database snapshot."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        channels = sorted(str(c) for c in self.m.workers)
        sends = CounterMetricFamily(
            "supportbot_sends",
            "Outbox send attempts by outcome: sent, or the error kind (retry_after = the platform "
            "asked to slow down, blocked = the subscriber blocked the bot, permanent = kept as "
            "failed for a human, transient = retried, bug = an unexpected exception, retried a "
            "few times; gave_up = a retried row failed for good)",
            labels=["channel", "outcome"],
        )
        for channel, worker in sorted(self.m.workers.items()):
            stats: Mapping[str, int] | None = getattr(worker, "stats", None)
            if stats is None:  # a worker that does not count its sends
                continue
            for outcome in sorted({*SEND_OUTCOMES, *stats}):
                sends.add_metric([str(channel), outcome], stats.get(outcome, 0))
        yield sends
        snap = self.m.snapshot
        up = GaugeMetricFamily(
            "supportbot_database_up",
            f"1 if the database answered this scrape within {SCRAPE_DB_TIMEOUT}s; the figures "
            "read from it are left out while it is 0",
        )
        up.add_metric([], 0 if snap is None else 1)
        yield up
        if snap is None:
            return
        backlog = GaugeMetricFamily(
            "supportbot_outbox_backlog",
            "Replies not delivered yet (outbox rows pending or sending)",
            labels=["channel"],
        )
        oldest = GaugeMetricFamily(
            "supportbot_outbox_oldest_age_seconds",
            "Age of the oldest undelivered reply (0 when none)",
            labels=["channel"],
        )
        failed = GaugeMetricFamily(
            "supportbot_outbox_failed",
            "Replies that failed for good (permanent errors), kept for a human",
            labels=["channel"],
        )
        for channel in sorted({*channels, *snap.backlog, *snap.failed}):
            backlog.add_metric([channel], snap.backlog.get(channel, 0))
            oldest.add_metric([channel], _age(snap.oldest.get(channel), snap.taken_at))
            failed.add_metric([channel], snap.failed.get(channel, 0))
        queue = GaugeMetricFamily(
            "supportbot_handoff_queue_length",
            "Chats waiting for an operator, by skill group",
            labels=["group"],
        )
        wait = GaugeMetricFamily(
            "supportbot_handoff_oldest_wait_seconds",
            "How long the longest-waiting chat of the group has waited for an operator (0 when "
            "none): the SLA timer",
            labels=["group"],
        )
        for group in sorted({*self.m.groups, *snap.queued}):
            queue.add_metric([group], snap.queued.get(group, 0))
            wait.add_metric([group], _age(snap.waiting_since.get(group), snap.taken_at))
        dead = GaugeMetricFamily(
            "supportbot_dead_letters",
            "Subscriber updates that failed for good (a bug, data the database refused), kept "
            "for supervisors (console «Сбои») and not yet marked as dealt with",
            labels=["channel"],
        )
        for channel in sorted({*channels, *snap.dead}):
            dead.add_metric([channel], snap.dead.get(channel, 0))
        yield from (backlog, oldest, failed, queue, wait, dead)


class ObservedHandler:
    """An `InboundHandler` around the pipeline: counts each update and its replies, times it,
    and names its channel and update id on every log line written meanwhile."""

    def __init__(self, inner: InboundHandler, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def handle(self, inbound: Inbound) -> HandleResult:
        channel = str(inbound.channel)
        channel_token = logcontext.channel.set(channel)
        update_token = logcontext.update_id.set(inbound.update_id)
        conversation_token = logcontext.conversation_id.set(None)  # the pipeline sets it
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await self.inner.handle(inbound)
            outcome = "duplicate" if result.duplicate else "handled"
            self.metrics.bot_replies.labels(channel).inc(len(result.replies))
            return result
        finally:
            took = time.perf_counter() - started
            self.metrics.updates.labels(channel, outcome).inc()
            self.metrics.update_seconds.labels(channel).observe(took)
            log.debug("update %s in %.0f ms", outcome, took * 1000)  # ids: the log context
            logcontext.channel.reset(channel_token)
            logcontext.update_id.reset(update_token)
            logcontext.conversation_id.reset(conversation_token)


class TimedEngine:
    """An `IntentEngine` that times each parse, labelled by the engine that answered ("rasa",
    "embedded", "embedded (rasa unavailable)")."""

    def __init__(self, inner: IntentEngine, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name

    async def parse(self, text: str) -> Parse:
        started = time.perf_counter()
        parse = await self.inner.parse(text)
        engine = parse.engine or self.inner.name
        self.metrics.nlu_seconds.labels(engine).observe(time.perf_counter() - started)
        return parse

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def _retrieve(task: asyncio.Task[Snapshot]) -> None:
    """A read that ended after its scrape gave up: its error was reported then (or is stale)."""
    if not task.cancelled():
        task.exception()
