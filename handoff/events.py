"""Live events between the parts of the app (and between app processes).

Every change an operator console or the Telegram operator group must see at once is published as
a small JSON-able dict: `{"type": "message" | "queued" | "assigned" | "missed" | "closed" | ...,
"conversation_id": ..., ...}`. The data itself is always re-read from the database; events only
say "look again", so a lost event costs freshness, never correctness.

- `LocalBus`: in-process fan-out (one app process; the default).
- `RedisBus`: Redis pub/sub, so a console connected to one process sees what another did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

log = logging.getLogger(__name__)
CHANNEL = "supportbot:events"
Event = dict[str, Any]


class Bus(Protocol):
    def publish(self, event: Event) -> None: ...

    def subscribe(self) -> AsyncIterator[Event]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalBus:
    """Fan-out to subscribers of this process. `publish` never blocks: a subscriber that falls
    1,000 events behind loses the oldest (it re-reads state on the next one anyway)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBus(LocalBus):
    """Publishes to Redis through one sender task (one connection, order kept); a listener task
    delivers every process's events (its own included) to local subscribers. While Redis is
    away, events are delivered locally and both tasks reconnect."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._outgoing: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()

    def publish(self, event: Event) -> None:
        if not self._connected.is_set() or self._outgoing.full():
            self._deliver(event)  # Redis is away (or far behind): at least this process sees it
            return
        self._outgoing.put_nowait(event)

    async def _send(self) -> None:
        while True:
            batch = [await self._outgoing.get()]
            while not self._outgoing.empty() and len(batch) < 500:
                batch.append(self._outgoing.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.publish(CHANNEL, json.dumps(event, default=str))
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a publish must never break the caller
                log.warning("events: Redis publish failed (%s); delivering locally", exc)
                for event in batch:
                    self._deliver(event)
                await asyncio.sleep(0.5)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="events-redis-listen"),
            asyncio.create_task(self._send(), name="events-redis-send"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                self._connected.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._deliver(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                log.warning("events: Redis listener lost (%s); retrying in 1 s", exc)
                await asyncio.sleep(1)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()


def make_bus(redis_url: str | None) -> LocalBus:
    return RedisBus(redis_url) if redis_url else LocalBus()
