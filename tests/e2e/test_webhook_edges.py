"""The webhook endpoints facing the internet: the secret is checked before anything is read out
(VK's confirmation code included), oversized and deeply nested JSON get a short 400/413 instead
of a 500, and a platform that does not answer at start-up leaves the channel not ready in
/readyz until it answers (then the webhook is registered and subscribers are answered)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from supportbot import channel_checks
from supportbot.app import App
from supportbot.settings import TelegramSettings, VKSettings
from tests.e2e.conftest import (
    TG_SECRET,
    TG_TOKEN,
    VK_CONFIRM,
    VK_GROUP,
    VK_SECRET,
    VK_TOKEN,
    free_port,
    telegram_settings,
    vk_settings,
)

USER = 5150


def nested(depth: int) -> bytes:
    return b'{"update_id": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


async def test_telegram_webhook_refuses_deep_and_huge_bodies_with_a_reason(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    port = free_port()
    app: App = await start_app(
        telegram=telegram_settings(telegram, "webhook", port), http_port=port
    )
    url = f"{app.url}/webhook/telegram"
    good = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}

    assert (await post(url, nested(100_000)))[0] == 401  # no secret: nothing is parsed
    for depth in (100_000, 5_000, 40):  # past the parser's recursion limit, and past ours
        status, text = await post(url, nested(depth), good)
        assert (status, "nested too deeply" in text) == (400, True), (depth, status, text)
    status, text = await post(url, b'{"update_id": 1, "pad": "' + b"x" * 2_000_000 + b'"}', good)
    assert status == 413 and "body over" in text

    telegram.send_text(USER, "/start")  # the server keeps serving
    assert (await telegram.wait_sent(USER, 1))[0]["text"].startswith("Привет")


async def test_vk_callback_checks_the_secret_before_anything_else(
    start_app: Callable[..., Any], vk: VKEmulator
) -> None:
    app: App = await start_app(vk=vk_settings(vk, "callback"))
    url = f"{app.url}/webhook/vk"
    confirm = b'{"type": "confirmation", "group_id": %d' % VK_GROUP

    for body in (confirm + b"}", confirm + b', "secret": "guess"}'):
        status, text = await post(url, body)
        assert status == 403 and VK_CONFIRM not in text  # the code is not given away
    status, text = await post(url, confirm + b', "secret": "%s"}' % VK_SECRET.encode())
    assert (status, text) == (200, VK_CONFIRM)
    other = b'{"type": "confirmation", "group_id": 1, "secret": "%s"}' % VK_SECRET.encode()
    assert (await post(url, other))[0] == 403  # another community's confirmation

    status, text = await post(url, b'{"type": "message_new", "x": [[[[]]]]}')
    assert status == 403  # nested within bounds but no secret: refused before being routed
    for depth in (100_000, 40):
        status, text = await post(
            url, b'{"type": "message_new", "x": ' + b"[" * depth + b"]" * depth + b"}"
        )
        assert (status, text) == (400, "JSON nested too deeply")

    assert await vk.set_callback_server(url, VK_SECRET)  # the real handshake still works
    vk.send_text(USER, "привет")
    assert (await vk.wait_sent(USER, 1))[0]["text"].startswith("Привет")


async def ready(app: App) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{app.url}/readyz") as resp:
        return resp.status, await resp.json()


async def wait_ready(app: App) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        status, body = await ready(app)
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_an_unreachable_telegram_leaves_the_channel_not_ready_until_it_answers(
    start_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel_checks, "RECHECK", 0.2)
    api_port, port = free_port(), free_port()
    settings = TelegramSettings(
        token=SecretStr(TG_TOKEN),
        api_base=f"http://127.0.0.1:{api_port}",  # nothing listens there yet
        mode="webhook",
        webhook_url=f"http://127.0.0.1:{port}/webhook/telegram",
        webhook_secret=SecretStr(TG_SECRET),
    )
    app: App = await start_app(telegram=settings, http_port=port)
    status, body = await ready(app)
    assert status == 503
    assert body["problems"] == [
        "telegram: the Bot API does not answer, the token is not verified yet "
        "(SUPPORTBOT_TELEGRAM__API_BASE)"
    ]

    emu = TelegramEmulator(TG_TOKEN, webhook_retry_delay=0.1)
    await emu.start(port=api_port)  # Telegram is back
    try:
        assert await wait_ready(app) == {"ready": True, "problems": []}
        emu.send_text(USER, "/start")  # the webhook was registered once Telegram answered
        assert (await emu.wait_sent(USER, 1))[0]["text"].startswith("Привет")
    finally:
        await emu.stop()


async def test_an_unreachable_vk_leaves_the_callback_channel_not_ready(
    start_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel_checks, "RECHECK", 0.2)
    api_port = free_port()
    settings = VKSettings(
        token=SecretStr(VK_TOKEN),
        group_id=VK_GROUP,
        api_url=f"http://127.0.0.1:{api_port}/method/",
        mode="callback",
        confirmation_code=VK_CONFIRM,
        secret=SecretStr(VK_SECRET),
    )
    app: App = await start_app(vk=settings)
    status, body = await ready(app)
    assert status == 503 and body["problems"] == [
        "vk: the VK API does not answer, the token is not verified yet (SUPPORTBOT_VK__API_URL)"
    ]
    emu = VKEmulator(VK_TOKEN, VK_GROUP, confirmation_code=VK_CONFIRM)
    await emu.start(port=api_port)
    try:
        assert await wait_ready(app) == {"ready": True, "problems": []}
    finally:
        await emu.stop()


async def test_a_webhook_without_secret_runs_when_explicitly_allowed(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    port = free_port()
    settings = TelegramSettings(
        token=SecretStr(TG_TOKEN),
        api_base=telegram.base_url,
        mode="webhook",
        webhook_url=f"http://127.0.0.1:{port}/webhook/telegram",
        allow_webhook_without_secret=True,
    )
    await start_app(telegram=settings, http_port=port)
    telegram.send_text(USER, "/start")
    assert (await telegram.wait_sent(USER, 1))[0]["text"].startswith("Привет")
