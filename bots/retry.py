"""Keep a pulled update until it is persisted: retry the pipeline while the database is away.

With webhooks / the Callback API the platform redelivers when we answer 500, so the frontends
fail fast there. With Telegram polling and VK Long Poll the update is confirmed as soon as the
next batch is fetched, so a failed `handle` would lose it: these modes wrap the pipeline in
`RetryingHandler`, which holds the update (and with it the poll loop) and retries with backoff,
e.g. through a PostgreSQL restart, before it gives up loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dialogs.messages import HandleResult, Inbound, InboundHandler

log = logging.getLogger(__name__)


class RetryingHandler:
    def __init__(
        self, inner: InboundHandler, *, give_up_after: float = 120.0, max_delay: float = 10.0
    ) -> None:
        self.inner = inner
        self.give_up_after = give_up_after
        self.max_delay = max_delay

    async def handle(self, inbound: Inbound) -> HandleResult:
        deadline = time.monotonic() + self.give_up_after
        delay = 0.2
        while True:
            try:
                return await self.inner.handle(inbound)
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    log.error(
                        "%s update %s: giving up after %.0fs of failures",
                        inbound.channel,
                        inbound.update_id,
                        self.give_up_after,
                    )
                    raise
                log.warning(
                    "%s update %s not stored yet (%r); retrying in %.1fs",
                    inbound.channel,
                    inbound.update_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(self.max_delay, delay * 2)
