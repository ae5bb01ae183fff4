"""Fixtures for the Telegram tests: the emulator on a random port and a real aiogram Bot on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web

from bots.telegram import bot_for
from dialogs.messages import HandleResult, Inbound
from emulators.telegram import TelegramEmulator


class RecordingHandler:
    """Test double for the conversation pipeline: records every Inbound, optionally fails."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.inbounds: list[Inbound] = []
        self.fail = fail

    async def handle(self, inbound: Inbound) -> HandleResult:
        if self.fail is not None:
            raise self.fail
        self.inbounds.append(inbound)
        return HandleResult()


class WebhookReceiver:
    """A tiny HTTP server standing in for our app: records each POST, answers `statuses` in turn."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.statuses: list[int] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(webhook_retry_delay=0.05)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    client = bot_for(emulator.token, emulator.base_url)
    yield client
    await client.session.close()


@pytest.fixture
def recorder() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()
