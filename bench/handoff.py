"""Handoff benchmark: how fast a chat reaches the operator console, and an operator's reply the
subscriber.

The real app runs in this process with the Telegram emulator (aiogram polling, SQLite, embedded
NLU); an operator is logged in to the console and listens on its WebSocket, as a browser would.
- escalation -> console: a subscriber writes "позовите оператора" in the emulator; the clock stops
  when the console's WebSocket announces the queued chat;
- operator reply -> subscriber: the operator POSTs a reply to the console API; the clock stops
  when the emulator receives the message for that subscriber.
N subscribers, `--concurrency` at a time. Target: p99 under 250 ms for both.

    .venv/bin/python bench/handoff.py [--chats 100] [--concurrency 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.telegram import TelegramEmulator  # noqa: E402
from handoff.auth import add_operator, log_in  # noqa: E402
from handoff.config import HandoffSettings  # noqa: E402
from supportbot.app import App  # noqa: E402
from supportbot.settings import Settings, TelegramSettings  # noqa: E402

TOKEN = "7000000001:BENCH-handoff"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        emu = TelegramEmulator(TOKEN)
        await emu.start()
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            data_dir=Path(tmp),
            content_dir=ROOT / "content",
            http_port=free_port(),
            telegram=TelegramSettings(
                token=SecretStr(TOKEN),
                api_base=emu.base_url,
                burst_per_chat=5,  # handoff, queue place, "joined", the reply: one burst
                rate_overall=1000,  # measure our path, not Telegram's 30 msg/s bot-wide cap
            ),
            handoff=HandoffSettings(hours={}),
        )
        app = App(settings)
        await app.start()
        try:
            await run(app, emu, args.chats, args.concurrency)
        finally:
            await app.stop()
            await emu.stop()


async def run(app: App, emu: TelegramEmulator, chats: int, concurrency: int) -> None:
    async with app.db.session() as s, s.begin():
        op = await add_operator(
            s,
            login="bench",
            name="Бенч",
            password="bench-password",
            groups=["consult"],
            max_chats=chats + 1,
        )
        login = await log_in(s, "bench", "bench-password")
        op_id = op.id
    cookies = {"sb_console": login.token}
    headers = {"X-CSRF-Token": login.csrf, "Origin": app.url}
    queued_at: dict[int, float] = {}
    arrived: dict[str, asyncio.Future[int]] = {}
    escalation: list[float] = []
    reply: list[float] = []
    async with aiohttp.ClientSession(cookies=cookies) as http:
        ws = await http.ws_connect(f"{app.url}/console/ws", headers={"Origin": app.url})

        async def listen() -> None:
            async for msg in ws:
                event = json.loads(msg.data)
                if event.get("type") == "queued":
                    queued_at[event["conversation_id"]] = time.perf_counter()
                    waiter = arrived.pop("next", None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(event["conversation_id"])

        listener = asyncio.create_task(listen())
        gate = asyncio.Lock()  # one escalation in flight, so each event maps to its subscriber
        reply_gate = asyncio.Semaphore(concurrency)

        async def subscriber(n: int) -> None:
            user = 900_000 + n
            async with gate:
                arrived["next"] = asyncio.get_running_loop().create_future()
                started = time.perf_counter()
                emu.send_text(user, "позовите оператора")
                conv_id = await asyncio.wait_for(arrived["next"], 10)
                escalation.append(queued_at[conv_id] - started)
            await emu.wait_sent(user, 2, timeout=10)  # "Передаю…" and the queue position
            async with reply_gate:
                await post(http, f"{app.url}/console/api/chats/{conv_id}/take", headers, {})
                await emu.wait_sent(user, 3, timeout=10)  # the operator joined
                started = time.perf_counter()
                await post(
                    http,
                    f"{app.url}/console/api/chats/{conv_id}/reply",
                    headers,
                    {"text": f"Здравствуйте! Ответ №{n}"},
                )
                await emu.wait_sent(user, 4, timeout=10)
                reply.append(time.perf_counter() - started)

        await post(http, f"{app.url}/console/api/status", headers, {"status": "away"})
        started = time.perf_counter()
        await asyncio.gather(*(subscriber(n) for n in range(chats)))
        elapsed = time.perf_counter() - started
        listener.cancel()
        await ws.close()
    del op_id
    for name, values in (
        ("escalation -> console", escalation),
        ("operator reply -> subscriber", reply),
    ):
        print(
            f"{name}: n={len(values)} p50 {statistics.median(values) * 1000:.1f} ms, "
            f"p99 {pct(values, 0.99) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms "
            "(target p99 < 250 ms)"
        )
    print(f"{chats} chats handed off and answered in {elapsed:.1f} s")


async def post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, object]
) -> None:
    async with http.post(url, json=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status} {await resp.text()}")


if __name__ == "__main__":
    asyncio.run(main())
