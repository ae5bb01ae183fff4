"""`supportbot demo`: the whole product on one machine with no tokens.

Starts the local Telegram and VK API emulators, then the real app (aiogram polling + vkbottle
Long Poll against them, SQLite, the content in content/, the operator console with a seeded
supervisor) plus the sandbox page at /sandbox/ where a person chats with both bots as a
subscriber (supportbot/sandbox/), and prints the addresses. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from supportbot.app import App, tune_gc
from supportbot.content_tests import DraftTrials, run_content_tests
from supportbot.sandbox import sandbox_app
from supportbot.settings import Settings, TelegramSettings, VKSettings

log = logging.getLogger(__name__)
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
    app.content_tests = functools.partial(run_content_tests, demo_settings)  # the studio's
    app.draft_chats = DraftTrials(demo_settings)  # and its «Попробовать черновик»
    # App.web is a plain aiohttp Application: routes can be added until app.start() runs it.
    app.web.add_subapp(
        "/sandbox",
        sandbox_app(
            db=app.db,
            telegram=telegram,
            vk=vk,
            console="/console/",
            console_login=(DEMO_OPERATOR, DEMO_PASSWORD),
        ),
    )
    app.web.router.add_get("/", _to_sandbox)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        await _seed_operator(app)
        # VK, like the real one, drops events sent before the bot's first long-poll request:
        # "ready" only once the bot listens, so the first message typed is never lost.
        try:
            await vk.wait_listening(timeout=30)
        except TimeoutError:
            log.warning("the VK bot is not listening yet: its first messages may be lost")
        tune_gc()
        print(_banner(app.url, tg_url, vk_url, host), flush=True)
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


async def _to_sandbox(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/sandbox/")


def _banner(app_url: str, tg_url: str, vk_url: str, host: str) -> str:
    local = host in ("127.0.0.1", "localhost", "::1")
    exposure = (
        "The sandbox and the emulators have no login: they listen on this machine only."
        if local
        else f"WARNING: the sandbox and the emulators have no login and listen on {host}."
    )
    return f"""
supportbot demo ready
  sandbox:           {app_url}/sandbox/   chat as a Telegram and a VK subscriber
  operator console:  {app_url}/console/   login {DEMO_OPERATOR}, password {DEMO_PASSWORD}
  health:            {app_url}/healthz
  emulators:         Telegram {tg_url} (polling), VK {vk_url} (Long Poll)

Try «где оплатить?», «какой у меня баланс?» (demo phone 8 911 000-00-01), «позовите оператора».
Scripted: curl -s {tg_url}/_control/send_text -d '{{"user_id": 9001, "text": "где оплатить?"}}'
{exposure}
Ctrl-C stops everything.
"""
