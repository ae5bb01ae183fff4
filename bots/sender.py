"""The interface a channel implements to deliver an `Outbound` (used by the outbox worker)."""

from __future__ import annotations

from typing import Protocol

from dialogs.messages import Channel, Outbound


class ChannelSender(Protocol):
    channel: Channel

    async def send(
        self, chat_id: str, message: Outbound, *, key: int, skip_parts: int = 0
    ) -> list[str]:
        """Deliver `message` to `chat_id`; return the platform message ids created.

        `key` is the outbox row id (stable across retries; VK uses it as `random_id` so a resend is
        dropped by VK itself). `skip_parts` parts were already delivered by an earlier attempt.
        Raise bots.errors.* on failure; raise `PartialSend` when some parts went out before it.
        """
        ...
