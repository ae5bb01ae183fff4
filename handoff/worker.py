"""The handoff background loop of one app process: assign waiting chats as soon as something
changes (a chat queued, an operator online or free), re-offer missed chats, and tell waiting
subscribers when their place in the queue moves. Safe to run in several processes at once (the
desk locks rows); a database outage only delays it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from handoff.desk import Desk
from handoff.events import LocalBus

log = logging.getLogger(__name__)
WAKES = {"queued", "operator", "closed", "returned", "missed", "assigned"}


async def run(desk: Desk, bus: LocalBus, *, interval: float = 1.0, slow: float = 5.0) -> None:
    wake = asyncio.Event()

    async def listen() -> None:
        async for event in bus.subscribe():
            if event.get("type") in WAKES:
                wake.set()

    listener = asyncio.create_task(listen(), name="handoff-events")
    last_slow = 0.0
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)
            wake.clear()
            try:
                await desk.assign_waiting()
                if time.monotonic() - last_slow >= slow:
                    last_slow = time.monotonic()
                    if await desk.missed():
                        await desk.assign_waiting()
                    await desk.tell_positions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handoff: pass failed; retrying")
                await asyncio.sleep(interval)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
