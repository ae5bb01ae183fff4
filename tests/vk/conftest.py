"""Fixtures for the VK tests: the emulator on a random port, a real vkbottle API/Bot pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from vkbottle import API, Bot

from bots.vk import build_bot, callback_handler, make_api, run_long_poll
from dialogs.messages import HandleResult, Inbound
from emulators.vk import VKEmulator

USER = 1001


class RecordingHandler:
    """Test double for the conversation pipeline: records every Inbound; fails `fail_times` first."""

    def __init__(self, fail_times: int = 0) -> None:
        self.inbounds: list[Inbound] = []
        self.calls = 0
        self.fail_times = fail_times

    async def handle(self, inbound: Inbound) -> HandleResult:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError("database is down")
        self.inbounds.append(inbound)
        return HandleResult()

    async def wait(self, count: int) -> list[Inbound]:
        await eventually(lambda: len(self.inbounds) >= count)
        return self.inbounds


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until `condition()` holds (TimeoutError after `seconds`)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (state lives in another object; polling is fine here)
            await asyncio.sleep(0.01)


@pytest.fixture
async def emu() -> AsyncIterator[VKEmulator]:
    emulator = VKEmulator(callback_retry_delay=0.05)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def api(emu: VKEmulator) -> AsyncIterator[API]:
    client = make_api(emu.token, api_url=emu.api_url)
    yield client
    await client.http_client.close()


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
async def bot(emu: VKEmulator, handler: RecordingHandler) -> AsyncIterator[Bot]:
    vk_bot = build_bot(emu.token, emu.group_id, handler, api_url=emu.api_url)
    yield vk_bot
    await vk_bot.api.http_client.close()


async def start_polling(bot: Bot, emu: VKEmulator) -> asyncio.Task[None]:
    """Run Long Poll (wait=1 s) in the background; return once it is listening (events before
    that are skipped, as on VK)."""
    bot.polling.wait = 1  # type: ignore[attr-defined]
    servers = sum(c["method"] == "groups.getLongPollServer" for c in emu.calls)
    task = asyncio.create_task(run_long_poll(bot))
    await eventually(
        lambda: sum(c["method"] == "groups.getLongPollServer" for c in emu.calls) > servers
    )
    await asyncio.sleep(0.05)  # first a_check in flight
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def polling(bot: Bot, emu: VKEmulator) -> AsyncIterator[Bot]:
    task = await start_polling(bot, emu)
    yield bot
    await stop(task)


class WebApp:
    """Our side of the Callback API: an aiohttp app serving POST /webhook/vk on a random port."""

    def __init__(self, handler: Callable[[web.Request], Any]) -> None:
        self.app = web.Application()
        self.app.router.add_post("/webhook/vk", handler)
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        self.url = ""

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/webhook/vk"
        return self.url


@pytest.fixture
async def webhook(emu: VKEmulator, bot: Bot) -> AsyncIterator[WebApp]:
    app = WebApp(callback_handler(bot, confirmation_code=emu.confirmation_code, secret="s3cret"))
    await app.start()
    yield app
    await app.runner.cleanup()
