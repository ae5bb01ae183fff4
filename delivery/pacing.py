"""How fast the outbox worker may call a platform: `RateLimits` (the numbers), `Pacer` (one
lane for the whole bot/token) and `TokenBucket` (one per chat) in each process, and
`SharedLimits` (the same lanes across the processes of a deployment, through Redis). See
delivery/worker.py for how the worker combines them before every platform request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Platform requests per second (each message part, each VK photo-upload call is one): per
    chat (with a small burst) and for the whole bot/token (no burst, see `Pacer`). Defaults sit a
    little under Telegram's ~30 msg/s and 1 msg/s per chat so network jitter never adds a 429."""

    per_chat: float = 1.0
    per_chat_burst: int = 2
    overall: float = 25.0


class Pacer:
    """Lets callers through one at a time, at least 1/rate seconds apart, measured from when the
    previous one actually went. Unlike a reserve-ahead token bucket, callers that were due while
    the event loop was busy do not all go at once afterwards, so no 1-second window holds more
    than about `rate` requests (a broadcast of thousands showed 429s / VK error 6 otherwise)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, paused_until: Callable[[], float] = lambda: 0.0) -> None:
        """Return when it is this caller's turn and the channel is not paused (`paused_until`,
        a monotonic time, is read again after every sleep: a 429 may come meanwhile)."""
        async with self._lock:  # FIFO: callers go in the order they asked
            # Waiting for a time, not an event:
            while (delay := max(self._next, paused_until()) - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.interval


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


# GCRA with reservation, for every key in KEYS at once (ARGV: interval ms and burst per key):
# each key's theoretical arrival time moves one interval on; the caller waits the longest
# of the keys' waits. Redis's own clock, so every process agrees on "now".
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
  wait = math.max(wait, tat - now - (burst - 1) * interval)
  redis.call('SET', key, tat + interval, 'PX', math.floor(tat + interval - now + 1000))
end
return wait
"""


class SharedLimits:
    """The same limits shared by every process of a deployment through Redis (one GCRA key per
    bot/token and per chat, under the deployment's `prefix`): two processes together stay
    under the platform's bot-wide rate instead of doubling it. If Redis is away, each process
    keeps to its own limits only (logged) rather than stop sending."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self._redis = redis.from_url(redis_url)
        self._script = self._redis.register_script(_RESERVE)
        self._warned = False

    async def wait(self, lanes: list[tuple[str, float, int]]) -> None:
        """Reserve one request in every (key, rate per second, burst) lane, then sleep until
        all of them allow it."""
        keys = [f"{self.prefix}:pace:{key}" for key, _, _ in lanes]
        args: list[float] = []
        for _, rate, burst in lanes:
            args += [1000.0 / rate, burst]
        try:
            delay_ms = float(await self._script(keys=keys, args=args))
            self._warned = False
        except Exception as exc:
            if not self._warned:
                log.warning("send limits: Redis unavailable (%r); per-process limits only", exc)
                self._warned = True
            return
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    async def close(self) -> None:
        await self._redis.aclose()
