"""The interface a channel implements to deliver an `Outbound` (used by the outbox worker)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from dialogs.messages import Channel, Outbound

# Awaited before every platform request a send makes: the outbox worker's rate limiter.
Pace = Callable[[], Awaitable[None]]
# Awaited after each part of a multi-part message but the last, with the number of parts
# delivered in all and their platform ids: the worker writes it down at once.
Progress = Callable[[int, list[str]], Awaitable[None]]


class ChannelSender(Protocol):
    channel: Channel

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
        """Deliver `message` to `chat_id`; return the platform message ids created.

        `key` is the outbox row id (stable across retries; VK uses it as `random_id` so a resend is
        dropped by VK itself). `skip_parts` parts were already delivered by an earlier attempt.
        `pace` is awaited before each API request (a message may take several: parts, a photo
        upload), so platform limits, which count requests, hold however a message is made up.
        `progress(done, ids)` is awaited after each part but the last (`done` counts the
        skipped parts too; `ids` are this call's), so a crash mid-message repeats no part.
        Raise delivery.errors.* on failure; raise `PartialSend` when some parts went out before it.
        """
        ...
