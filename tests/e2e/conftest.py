"""End-to-end fixtures: the real app (aiogram / vkbottle over HTTP) against the local emulators."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from handoff.config import HandoffSettings
from supportbot.app import App
from supportbot.settings import Settings, TelegramSettings, VKSettings
from tests.support import CONTENT

TG_TOKEN = "7000000001:E2E-test-token"
TG_SECRET = "s3cr3t-webhook-token"
VK_TOKEN = "vk1.a.e2e-test-token"
VK_GROUP = 229000777
VK_CONFIRM = "e2e0conf"
VK_SECRET = "vk-callback-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    app: App
    url: str


@pytest.fixture
async def start_app(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Factory: `await start_app(telegram=..., vk=..., database_url=...)` -> a started App."""
    apps: list[App] = []

    async def start(**settings: object) -> App:
        port = free_port()
        values: dict[str, object] = {
            "database_url": f"sqlite:///{tmp_path / 'e2e.db'}",
            "content_dir": CONTENT,
            "data_dir": tmp_path,
            "http_port": port,
            # Operators work around the clock here, so no test depends on the time of day.
            "handoff": HandoffSettings(hours={}),
        }
        values.update(settings)
        app = App(Settings(**values))  # type: ignore[arg-type]
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(TG_TOKEN, webhook_retry_delay=0.1)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def vk() -> AsyncIterator[VKEmulator]:
    emu = VKEmulator(VK_TOKEN, VK_GROUP, confirmation_code=VK_CONFIRM, callback_retry_delay=0.1)
    await emu.start()
    yield emu
    await emu.stop()


def telegram_settings(
    emu: TelegramEmulator, mode: str, port: int | None = None
) -> TelegramSettings:
    if mode == "webhook":
        assert port is not None
        return TelegramSettings(
            token=SecretStr(TG_TOKEN),
            api_base=emu.base_url,
            mode="webhook",
            webhook_url=f"http://127.0.0.1:{port}/webhook/telegram",
            webhook_secret=SecretStr(TG_SECRET),
        )
    return TelegramSettings(token=SecretStr(TG_TOKEN), api_base=emu.base_url)


def vk_settings(emu: VKEmulator, mode: str) -> VKSettings:
    if mode == "callback":
        return VKSettings(
            token=SecretStr(VK_TOKEN),
            group_id=VK_GROUP,
            api_url=emu.api_url,
            mode="callback",
            confirmation_code=VK_CONFIRM,
            secret=SecretStr(VK_SECRET),
        )
    return VKSettings(token=SecretStr(VK_TOKEN), group_id=VK_GROUP, api_url=emu.api_url)
