"""`FailoverEngine`: Rasa first, the embedded engine when Rasa is down, with a circuit breaker.

    engine = FailoverEngine(RasaServerEngine(url, token=t), embedded)

* closed: every parse goes to the primary. A failure answers from the fallback (marked
  `engine="embedded (rasa unavailable)"`); `failure_threshold` consecutive failures open the
  breaker (one warning).
* open: the primary is not called at all; the fallback answers. After `reset_after` seconds
* half-open: exactly one parse tries the primary (others keep using the fallback). Success
  closes the breaker (info "rasa is back"); failure opens it again for twice as long, up to
  `max_reset_after`.

A conversation never waits on a dead primary for longer than the primary's own timeout (e.g.
`RasaServerEngine(timeout=2.0)`); `call_timeout` adds an outer bound for primaries without one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from nlu.types import IntentEngine, Parse

log = logging.getLogger(__name__)

FAILOVER_ENGINE_LABEL = "embedded (rasa unavailable)"
State = Literal["closed", "open", "half-open"]


class FailoverEngine:
    """`IntentEngine` answering from `primary`, or from `fallback` while the primary fails."""

    def __init__(
        self,
        primary: IntentEngine,
        fallback: IntentEngine,
        *,
        failure_threshold: int = 1,
        reset_after: float = 5.0,
        max_reset_after: float = 60.0,
        call_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.max_reset_after = max_reset_after
        self.call_timeout = call_timeout
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0  # consecutive primary failures
        self._backoff = reset_after  # how long the breaker stays open this time
        self._opened_at = 0.0
        self._trial_running = False
        self.last_error: str | None = None

    @property
    def state(self) -> State:
        """ "closed" / "open" / "half-open"; an open breaker whose time is up reads "half-open"."""
        if self._state == "open" and self._clock() - self._opened_at >= self._backoff:
            return "half-open"
        return self._state

    def health(self) -> dict[str, Any]:
        """For /healthz: the breaker state, the last primary error, seconds to the next trial."""
        retry_in = None
        if self._state == "open":
            retry_in = max(0.0, round(self._opened_at + self._backoff - self._clock(), 1))
        return {
            "engine": self.primary.name,
            "fallback": self.fallback.name,
            "state": self.state,
            "consecutive_failures": self._failures,
            "last_error": self.last_error,
            "retry_in": retry_in,
        }

    async def parse(self, text: str) -> Parse:
        state = self.state
        if state == "open" or (state == "half-open" and self._trial_running):
            return await self._from_fallback(text)
        trial = state == "half-open"
        if trial:
            self._state = "half-open"
            self._trial_running = True
        try:
            result = await self._call_primary(text)
        except asyncio.CancelledError:
            if trial:  # the trial did not finish: stay open, try again on the next message
                self._state, self._opened_at = "open", self._clock()
            raise
        except Exception as exc:
            self._on_failure(exc, trial=trial)
            return await self._from_fallback(text)
        finally:
            if trial:
                self._trial_running = False
        self._on_success()
        return result

    async def _call_primary(self, text: str) -> Parse:
        if self.call_timeout is None:
            return await self.primary.parse(text)
        try:
            async with asyncio.timeout(self.call_timeout):
                return await self.primary.parse(text)
        except TimeoutError:
            raise TimeoutError(f"no answer within {self.call_timeout:g} s") from None

    async def _from_fallback(self, text: str) -> Parse:
        result = await self.fallback.parse(text)
        return replace(result, engine=FAILOVER_ENGINE_LABEL)

    def _on_failure(self, exc: Exception, *, trial: bool) -> None:
        reason = str(exc) or type(exc).__name__
        self.last_error = reason
        self._failures += 1
        if trial:
            self._backoff = min(self._backoff * 2, self.max_reset_after)
            self._state, self._opened_at = "open", self._clock()
            log.info("rasa still unavailable (%s); next try in %.0f s", reason, self._backoff)
        elif self._state == "closed" and self._failures >= self.failure_threshold:
            self._backoff = self.reset_after
            self._state, self._opened_at = "open", self._clock()
            log.warning("rasa unavailable (%s), answering with the embedded engine", reason)
        else:
            log.debug("rasa failed (%s), %d in a row", reason, self._failures)

    def _on_success(self) -> None:
        if self._state != "closed":
            log.info("rasa is back")
        self._state = "closed"
        self._failures = 0
        self._backoff = self.reset_after
        self.last_error = None

    async def close(self) -> None:
        for engine in (self.primary, self.fallback):
            close = getattr(engine, "close", None)
            if close is not None:
                await close()
