"""`supportbot demo`: the whole product on one machine with no tokens.

Starts the local Telegram and VK API emulators, then the real app (aiogram polling + vkbottle
Long Poll against them, SQLite, the content in content/), and prints how to talk to the bots
through the emulators' control API. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from pydantic import SecretStr

from bots.emulator.telegram import TelegramEmulator
from bots.emulator.vk import VKEmulator
from supportbot.app import App, tune_gc
from supportbot.settings import Settings, TelegramSettings, VKSettings

DEMO_TG_TOKEN = "7000000001:DEMO-local-emulator-token"
DEMO_VK_TOKEN = "vk1.a.demo-local-emulator-token"
DEMO_VK_GROUP = 229000001


async def run_demo(settings: Settings, *, host: str, port: int, data_dir: Path) -> None:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    telegram = TelegramEmulator(DEMO_TG_TOKEN)
    vk = VKEmulator(DEMO_VK_TOKEN, DEMO_VK_GROUP)
    tg_url = await telegram.start(host, port + 1)
    vk_url = await vk.start(host, port + 2)
    demo_settings = settings.model_copy(
        update={
            "database_url": f"sqlite:///{data_dir / 'demo.db'}",
            "data_dir": data_dir,
            "http_host": host,
            "http_port": port,
            "telegram": TelegramSettings(token=SecretStr(DEMO_TG_TOKEN), api_base=tg_url),
            "vk": VKSettings(
                token=SecretStr(DEMO_VK_TOKEN), group_id=DEMO_VK_GROUP, api_url=vk.api_url
            ),
        }
    )
    app = App(demo_settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        await _seed_operator(app)
        tune_gc()
        print(_banner(app.url, tg_url, vk_url), flush=True)
        await stop.wait()
        print("\nstopping…", flush=True)
    finally:
        await app.stop()
        await telegram.stop()
        await vk.stop()


DEMO_OPERATOR, DEMO_PASSWORD = "operator", "operator-demo"


async def _seed_operator(app: App) -> None:
    """A demo operator (a supervisor in every group), created once."""
    from sqlalchemy import select

    from handoff.auth import add_operator
    from storage.models import Operator

    async with app.db.session() as session, session.begin():
        if await session.scalar(select(Operator.id).where(Operator.login == DEMO_OPERATOR)):
            return
        await add_operator(
            session,
            login=DEMO_OPERATOR,
            name="Анна",
            password=DEMO_PASSWORD,
            role="supervisor",
            groups=list(app.settings.skill_groups),
        )


def _banner(app_url: str, tg_url: str, vk_url: str) -> str:
    return f"""
supportbot demo ready
  operator console:        {app_url}/console/   (login {DEMO_OPERATOR} / password {DEMO_PASSWORD})
  app (health, webhooks):  {app_url}/healthz
  Telegram API emulator:   {tg_url}   (bot in polling mode)
  VK API emulator:         {vk_url}   (bot in Long Poll mode)

Talk to the bots as a subscriber:
  curl -s {tg_url}/_control/send_text -d '{{"user_id": 1001, "text": "/start"}}'
  curl -s {tg_url}/_control/send_text -d '{{"user_id": 1001, "text": "где оплатить?"}}'
  curl -s '{tg_url}/_control/history?chat_id=1001'
  curl -s {vk_url}/_control/send_text -d '{{"user_id": 2001, "text": "Начать"}}'
  curl -s '{vk_url}/_control/history?peer_id=2001'
Press a button: take its callback data / payload from the history, then
  curl -s {tg_url}/_control/press_button -d '{{"user_id": 1001, "message_id": N, "data": "intent:payment_methods"}}'
  curl -s {vk_url}/_control/press_callback -d '{{"user_id": 2001, "payload": "{{\\"p\\": \\"intent:payment_methods\\"}}", "conversation_message_id": N}}'
Demo subscribers for billing answers: phone 8 911 000-00-01 .. 06 (see content/README.md).
Ctrl-C stops everything.
"""
