"""Two `supportbot run` processes (replicas) on one PostgreSQL database, started together on a
fresh schema: both come up, each single-instance role (Telegram polling, the operator group's
topics, the handoff queue loop, retention) runs in exactly one of them, a handed-off chat gets
one topic, and when the polling process is killed (-9) the other takes over and answers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from emulators.telegram import TelegramEmulator
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import TG_TOKEN, free_port
from tests.support import CONTENT, ROOT

ROLES = {"handoff queue", "retention", "telegram operator group", "telegram polling"}


class Replica:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name, self.proc, self.url, self.log = name, proc, f"http://127.0.0.1:{port}", log

    async def roles(self) -> set[str] | None:
        """The roles it runs (its /healthz), None while it does not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"{self.url}/healthz") as resp,
            ):
                return set((await resp.json())["roles"]) if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


async def start_replica(name: str, tmp_path: Path, emu: TelegramEmulator, gid: int) -> Replica:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SUPPORTBOT_DATABASE_URL=PG_URL,
        SUPPORTBOT_TELEGRAM__TOKEN=TG_TOKEN,
        SUPPORTBOT_TELEGRAM__API_BASE=emu.base_url,
        SUPPORTBOT_HANDOFF__TELEGRAM_GROUP_ID=str(gid),
        SUPPORTBOT_HANDOFF__HOURS="{}",  # operators work around the clock here
        # Several processes share live events through Redis (README: "Several app processes").
        SUPPORTBOT_HANDOFF__REDIS_URL="redis://127.0.0.1:6379/0",
        SUPPORTBOT_HANDOFF__REDIS_PREFIX=f"supportbot-test-replicas-{os.getpid()}",
        SUPPORTBOT_HTTP_PORT=str(port),
        SUPPORTBOT_CONTENT_DIR=str(CONTENT),
        SUPPORTBOT_DATA_DIR=str(tmp_path / name),
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
    return Replica(name, proc, port, log)


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(TG_TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


async def wait_roles(
    replicas: list[Replica], want: dict[str, set[str]] | None = None
) -> dict[str, set[str] | None]:
    """Each replica's roles once every role is held by exactly one (and, if given, by `want`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        up = all("supportbot listening on" in r.logs() for r in replicas)
        held = {r.name: await r.roles() for r in replicas}
        roles = [set(v) for v in held.values() if v is not None]
        settled = up and None not in held.values() and sum(len(r) for r in roles) == len(ROLES)
        if settled and set().union(*roles) == ROLES and (want is None or held == want):
            return held
        if loop.time() > deadline:
            logs = "\n".join(r.logs()[-3000:] for r in replicas)
            raise AssertionError(f"roles never settled: {held}\n{logs}")
        await asyncio.sleep(0.2)


def replies(emu: TelegramEmulator, chat: int) -> list[str]:
    return [m["text"] or "" for m in emu.sent(chat)]


@pytest.mark.postgres
async def test_two_replicas_share_the_roles_and_one_takes_over_when_the_other_is_killed(
    tmp_path: Path, telegram: TelegramEmulator
) -> None:
    db = await fresh_postgres()  # skips without a server
    async with db.engine.begin() as conn:  # a fresh database: both replicas migrate it at once
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    gid = telegram.create_group("Операторы", forum=True)["id"]
    replicas = [await start_replica(n, tmp_path, telegram, gid) for n in ("a", "b")]
    try:
        held = await wait_roles(replicas)
        assert all(r.proc.returncode is None for r in replicas)
        poller = next(r for r in replicas if "telegram polling" in (held[r.name] or ()))
        other = next(r for r in replicas if r is not poller)
        assert "standing by for telegram polling" in other.logs()

        # A subscriber asks for a human: one answer, one topic (not one per replica).
        telegram.send_text(1001, "позовите оператора")
        await telegram.wait_sent(1001, 1, timeout=20)
        await asyncio.sleep(3)  # time for a second topic or reply, if anything made one
        assert len(telegram.topics(gid)) == 1
        assert sum("Передаю чат" in t for t in replies(telegram, 1001)) == 1

        # The polling replica dies without a goodbye; the other takes over within seconds.
        poller.proc.send_signal(signal.SIGKILL)
        await poller.proc.wait()
        killed_at = asyncio.get_running_loop().time()
        telegram.send_text(1002, "/start")
        await telegram.wait_sent(1002, 1, timeout=30)
        answered_after = asyncio.get_running_loop().time() - killed_at
        print(f"answered {answered_after:.1f} s after the polling replica was killed")
        assert answered_after < 15
        await wait_roles([other], {other.name: ROLES})
        assert "took over telegram polling" in other.logs()
        telegram.send_text(1003, "позовите оператора")
        await telegram.wait_sent(1003, 1, timeout=20)
        await asyncio.sleep(2)
        assert len(telegram.topics(gid)) == 2
        assert len(replies(telegram, 1002)) == 1
    finally:
        for replica in replicas:
            if replica.proc.returncode is None:
                replica.proc.terminate()
                await replica.proc.wait()
        await db.dispose()
