"""Start-up token checks of the channels, and their readiness while the platform is unreachable.

A token the platform refuses stops the start (the check raises `ConfigError` naming the setting).
A platform that merely does not answer lets the app start: the channel is reported not ready in
/readyz (`problems`) and checked again in the background until the platform answers; then the
step that needs it (e.g. registering the webhook) runs and the channel is ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from supportbot.settings import ConfigError

log = logging.getLogger(__name__)
RECHECK = 10.0  # seconds between checks while a platform does not answer

# True: the platform accepted the token; False: it could not be reached. Raises ConfigError
# when the platform refused the token.
Check = Callable[[], Awaitable[bool]]
Then = Callable[[], Awaitable[None]]


class ChannelChecks:
    def __init__(self) -> None:
        self.problems: dict[str, str] = {}  # channel -> why it is not ready

    async def verify(
        self, channel: str, check: Check, *, unreachable: str, then: Then | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """Check now; run `then` once verified. Unreachable: the channel's problem is
        `unreachable`, and the returned coroutine (for the caller to spawn) keeps checking."""
        if await check():
            if then is not None:
                await then()
            return None
        self.problems[channel] = unreachable
        log.warning("%s", unreachable)
        return self._later(channel, check, then)

    async def _later(self, channel: str, check: Check, then: Then | None) -> None:
        while True:
            await asyncio.sleep(RECHECK)
            try:
                if not await check():
                    continue
                if then is not None:
                    await then()
            except ConfigError as exc:  # the platform answers now, and refuses the token
                self.problems[channel] = str(exc)
                log.error("%s", exc)
                return
            except Exception as exc:
                log.warning("%s: not ready yet: %r", channel, exc)
                continue
            self.problems.pop(channel, None)
            log.info("%s: token verified, the channel is ready", channel)
            return
