"""A complaint filed in the chat is resolved by the CRM through the integration API (or the CLI),
and the subscriber gets the result in their channel ("жалоба как подарок")."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from emulators.telegram import TelegramEmulator
from tests.e2e.conftest import telegram_settings
from tests.support import ROOT

USER = 6006
TOKEN = "crm-integration-token"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supportbot", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_crm_resolves_a_complaint_and_the_subscriber_hears_back(
    start_app: Callable[..., Any], telegram: TelegramEmulator, tmp_path: Path
) -> None:
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"), api_token=SecretStr(TOKEN)
    )
    telegram.send_text(USER, "хочу пожаловаться")
    await telegram.wait_sent(USER, 1)
    telegram.send_text(USER, "Интернет пропадает каждый вечер уже неделю")
    registered = (await telegram.wait_sent(USER, 2))[-1]["text"]
    assert "Жалобу зарегистрировал, №C-" in registered
    number = registered.split("№")[1].split()[0]

    url = f"{app.url}/api/tickets/{number}/resolve"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"result": "Заменили оборудование на узле, скорость восстановлена."}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body) as resp:
            assert resp.status == 401
        async with http.post(url, json=body, headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401
        async with http.post(url, data="not json", headers=auth) as resp:
            assert resp.status == 400
        async with http.post(
            f"{app.url}/api/tickets/C-999999/resolve", json=body, headers=auth
        ) as resp:
            assert resp.status == 404
        async with http.post(url, json=body, headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json()) == {"number": number, "notified": "telegram"}
        async with http.post(url, json=body, headers=auth) as resp:
            assert resp.status == 409  # resolved once; the subscriber is not told twice

    notice = (await telegram.wait_sent(USER, 3))[-1]["text"]
    assert f"новости по заявке №{number}" in notice
    assert "Заменили оборудование" in notice
    assert len(telegram.sent(USER)) == 3

    env = {**os.environ, "SUPPORTBOT_DATABASE_URL": app.settings.database_url}
    listing = await asyncio.to_thread(cli, env, "tickets", "list", "--all")
    assert listing.returncode == 0, listing.stderr
    assert f"{number}\tcomplaint\tresolved" in listing.stdout
    again = await asyncio.to_thread(cli, env, "tickets", "resolve", number, "ещё раз")
    assert again.returncode == 2 and "already resolved" in again.stderr
