"""How fast the outbox worker may call a platform: `RateLimits` (the numbers), `Pacer` (one
lane for the whole bot/token) and `TokenBucket` (one per chat). See delivery/worker.py for how
the worker combines them before every platform request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


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
