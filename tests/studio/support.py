"""Helpers for the content studio's tests: `supportbot run` processes on one PostgreSQL + Redis
serving content versions from the database (SUPPORTBOT_CONTENT_STORE=database), each answering
Telegram updates posted to its own webhook, so a test knows which process answered."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from emulators.telegram import TelegramEmulator
from tests.e2e.conftest import TG_SECRET, TG_TOKEN, free_port
from tests.support import CONTENT, ROOT

REDIS_URL = "redis://127.0.0.1:6379/11"  # this suite's own Redis database
OLD = "Наши салоны связи в Пушкине 📍"
NEW = "Мы переехали! Новый салон — Оранжерейная, 40 🎉"
SERVICE = "dialogs/service.yml"
PREFIX = f"studio-test-{os.getpid()}"  # the deployment's Redis prefix
_updates = itertools.count(int(time.time()) % 1_000_000 * 100)


class Process:
    """One `supportbot run` of the deployment."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    async def health(self) -> dict[str, Any] | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"{self.url}/healthz") as resp,
            ):
                return dict(await resp.json()) if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def content_version(self) -> int | None:
        health = await self.health()
        return health["dialogs"].get("content_version") if health and health["dialogs"] else None

    async def ask(self, telegram: TelegramEmulator, user: int, text: str) -> str:
        """`text` from subscriber `user`, posted to this process's webhook; the reply's text."""
        telegram.add_user(user)
        before = len(telegram.sent(user))
        n = next(_updates)
        chat = {"id": user, "type": "private", "first_name": "Иван"}
        update = {
            "update_id": n,
            "message": {
                "message_id": n,
                "from": {"id": user, "is_bot": False, "first_name": "Иван"},
                "chat": chat,
                "date": int(time.time()),
                "text": text,
            },
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.url}/webhook/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
        sent = await telegram.wait_sent(user, before + 1, timeout=20)
        return str(sent[before]["text"] or "")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_process(
    name: str,
    tmp_path: Path,
    telegram: TelegramEmulator,
    pg_url: str,
    *,
    content: Path = CONTENT,
    extra: dict[str, str] | None = None,
) -> Process:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SUPPORTBOT_DATABASE_URL=pg_url,
        SUPPORTBOT_CONTENT_STORE="database",
        SUPPORTBOT_CONTENT_DIR=str(content),
        SUPPORTBOT_DATA_DIR=str(tmp_path / name),
        SUPPORTBOT_HANDOFF__REDIS_URL=REDIS_URL,
        SUPPORTBOT_HANDOFF__REDIS_PREFIX=PREFIX,
        SUPPORTBOT_HANDOFF__HOURS="{}",
        SUPPORTBOT_HTTP_PORT=str(port),
        SUPPORTBOT_TELEGRAM__TOKEN=TG_TOKEN,
        SUPPORTBOT_TELEGRAM__API_BASE=telegram.base_url,
        SUPPORTBOT_TELEGRAM__MODE="webhook",
        SUPPORTBOT_TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/webhook/telegram",
        SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET=TG_SECRET,
        **(extra or {}),
    )
    log = tmp_path / f"{name}.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "supportbot",
        "run",
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=asyncio.subprocess.STDOUT,
    )
    return Process(name, proc, port, log)


async def wait_up(processes: list[Process], timeout: float = 90) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    for p in processes:
        while "supportbot listening on" not in p.logs() or await p.content_version() is None:
            if p.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"{p.name} did not come up:\n{p.logs()[-4000:]}")
            await asyncio.sleep(0.2)


async def wait_version(processes: list[Process], version: int, since: float) -> list[float]:
    """Seconds from `since` (time.monotonic) until each process serves `version`."""
    took: list[float] = []
    for p in processes:
        while await p.content_version() != version:
            if time.monotonic() - since > 30:
                raise AssertionError(f"{p.name} never switched to version {version}")
            await asyncio.sleep(0.05)
        took.append(time.monotonic() - since)
    return took
