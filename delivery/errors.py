"""How a channel sender reports a failed send to the outbox worker (delivery/worker.py).

A `ChannelSender.send` either returns the platform message ids it created or raises one of these;
the worker decides retry/backoff/unreachable from the class alone, never from platform details.
"""

from __future__ import annotations


class SendError(Exception):
    """Base class for delivery failures."""


class RetryAfter(SendError):
    """The platform asked us to slow down (Telegram 429 retry_after, VK errors 6 and 9)."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds}s")
        self.seconds = seconds


class Blocked(SendError):
    """The subscriber blocked the bot or forbids messages (Telegram 403, VK 901/902): stop sending."""


class TransientError(SendError):
    """Network trouble or a server error: retry later with backoff."""


class PermanentError(SendError):
    """The request itself is wrong (Telegram 400, VK 100): retrying cannot help; kept for a human."""


class PartialSend(SendError):
    """Some parts of a multi-part message went out before `cause` happened.

    `done` is how many parts are delivered in all (including ones skipped because an earlier attempt
    sent them); the worker resumes from there, so no part is sent twice.
    """

    def __init__(self, done: int, sent_ids: list[str], cause: SendError) -> None:
        super().__init__(f"{done} part(s) sent, then: {cause}")
        self.done = done
        self.sent_ids = sent_ids
        self.cause = cause
