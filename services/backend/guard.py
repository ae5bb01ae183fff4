"""Isolation around the operator's billing/CRM: a slow or broken backend never stalls the bot.

`guarded(backend)` wraps every `Backend` method (the Protocol's list, nothing else) with:

- a timeout (`timeout` seconds): billing that does not answer is "unavailable";
- a bulkhead: at most `concurrency` calls at once; a call that cannot start within
  `queue_wait` is refused at once. Backend calls run inside the turn's database transaction
  (the demo backend keeps its data there), so a hung billing would otherwise hold one pooled
  connection per waiting subscriber until nobody else could be answered;
- a circuit breaker per method: after `failures` failures in a row the method is refused for
  `cool_down` seconds, then one trial call decides (closed again, or another cool-down);
- any exception becomes `BackendError(..., "unavailable")`, so the flow says its friendly
  `on_error` reply ("биллинг сейчас недоступен") instead of failing the update.

A `BackendError` the backend raises itself is its answer (a refused operation), passed through
and not counted as a failure, except `reason == "unavailable"`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.backend import Backend, BackendError

log = logging.getLogger(__name__)

METHODS = tuple(
    name
    for name, member in vars(Backend).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 5.0
    concurrency: int = 6
    queue_wait: float = 1.0
    failures: int = 3
    cool_down: float = 30.0


class Breaker:
    """Closed -> (N failures in a row) open for `cool_down` -> one trial -> closed or open."""

    def __init__(self, failures: int, cool_down: float) -> None:
        self.failures = failures
        self.cool_down = cool_down
        self._count = 0
        self._open_until = 0.0
        self._trial = False

    def allow(self) -> bool:
        now = time.monotonic()
        if self._count < self.failures:
            return True
        if now < self._open_until or self._trial:
            return False
        self._trial = True  # half-open: this call decides
        return True

    def succeeded(self) -> None:
        self._count = 0
        self._trial = False

    def failed(self) -> None:
        self._count += 1
        self._trial = False
        if self._count >= self.failures:
            self._open_until = time.monotonic() + self.cool_down

    @property
    def is_open(self) -> bool:
        return self._count >= self.failures and time.monotonic() < self._open_until


class GuardedBackend:
    """A `Backend` whose methods are guarded; other attributes (e.g. the demo's `prepare`)
    are the wrapped backend's own."""

    def __init__(self, inner: Backend, limits: Limits | None = None) -> None:
        self.inner = inner
        self.limits = limits or Limits()
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self.breakers = {
            name: Breaker(self.limits.failures, self.limits.cool_down) for name in METHODS
        }
        for name in METHODS:
            setattr(self, name, self._guard(name, getattr(inner, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _guard(self, name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        breaker = self.breakers[name]
        limits = self.limits

        async def guarded_call(*args: Any, **kwargs: Any) -> Any:
            if not breaker.allow():
                raise BackendError(f"backend {name}: circuit open after failures", "unavailable")
            try:
                async with asyncio.timeout(limits.queue_wait):
                    await self._slots.acquire()
            except TimeoutError:
                # Not the method's fault: the backend as a whole is saturated.
                raise BackendError(
                    f"backend {name}: {limits.concurrency} calls already waiting", "unavailable"
                ) from None
            try:
                async with asyncio.timeout(limits.timeout):
                    result = await call(*args, **kwargs)
            except BackendError as exc:
                if exc.reason == "unavailable":
                    breaker.failed()
                else:
                    breaker.succeeded()  # it answered: a refusal is an answer
                raise
            except TimeoutError:
                breaker.failed()
                log.warning("backend %s: no answer within %.1f s", name, limits.timeout)
                raise BackendError(f"backend {name}: timed out", "unavailable") from None
            except Exception as exc:
                breaker.failed()
                log.exception("backend %s failed", name)
                raise BackendError(f"backend {name}: {exc!r}", "unavailable") from exc
            finally:
                self._slots.release()
            breaker.succeeded()
            return result

        guarded_call.__name__ = name
        return guarded_call


def guarded(backend: Backend, limits: Limits | None = None) -> Backend:
    """`backend` with timeouts, a bulkhead and circuit breakers (see the module docstring)."""
    wrapped: Backend = GuardedBackend(backend, limits)  # type: ignore[assignment]
    return wrapped
