"""Live events between the parts of the app (and between app processes).

Every change an operator console or the Telegram operator group must see at once is published as
a small JSON-able dict: `{"type": "message" | "queued" | "assigned" | "missed" | "closed" | ...,
"conversation_id": ..., ...}`. The data itself is always re-read from the database; events only
say "look again", so a lost event costs freshness, never correctness.

- `LocalBus`: in-process fan-out (one app process; the default).
- `RedisBus`: Redis pub/sub, so a console connected to one process sees what another did.

On Redis every deployment has its own prefix (`redis_prefix`: SUPPORTBOT_HANDOFF__REDIS_PREFIX,
else one derived from the database name), and the channel also names the Redis database number
(pub/sub ignores it), so two deployments sharing a Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
Event = dict[str, Any]


def redis_prefix(database_url: str, configured: str | None = None) -> str:
    """The deployment's prefix for its Redis keys and channels: `configured`
    (SUPPORTBOT_HANDOFF__REDIS_PREFIX) if set, else `supportbot:<database name>` (for SQLite
    the file's name and a hash of its full path), so processes on one database share it and
    deployments on different databases never do."""
    if configured:
        return configured
    url = make_url(database_url)
    name = url.database or ""
    if url.get_backend_name() == "sqlite":
        path = str(Path(name).resolve()) if name and name != ":memory:" else name
        digest = hashlib.sha256(path.encode()).hexdigest()[:8]
        return f"supportbot:sqlite:{Path(name).stem or 'memory'}-{digest}"
    return f"supportbot:{name}"


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

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self.prefix = prefix  # the deployment's (redis_prefix); other Redis keys may reuse it
        # Pub/sub is global to the server, whatever database the URL names: the channel says it.
        db = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{prefix}:db{db}:events"
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
                        pipe.publish(self.channel, json.dumps(event, default=str))
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
                await pubsub.subscribe(self.channel)
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


def make_bus(redis_url: str | None, prefix: str) -> LocalBus:
    """The Redis bus on `redis_url` with the deployment's `prefix` (`redis_prefix`), else the
    in-process one."""
    return RedisBus(redis_url, prefix) if redis_url else LocalBus()
