"""Pipeline benchmark: N subscribers write to the bot through the Telegram webhook path and back.

The app runs as its own process exactly as in production (`supportbot run`, webhook mode, real
aiogram, SQLite or PostgreSQL); this process runs the Telegram emulator, which delivers updates
to the webhook and receives the bot's sendMessage calls. Each simulated subscriber writes M
messages, one every `--interval` seconds (a person does not type faster than Telegram's ~1 msg/s
per chat allows the bot to answer). Reply latency = subscriber message created in the emulator ->
the bot's answer received by the emulator. Prints messages/s and latency p50/p99 per database.

    .venv/bin/python bench/pipeline.py                  # SQLite and PostgreSQL
    .venv/bin/python bench/pipeline.py --db sqlite --subscribers 400 --messages 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.telegram import TelegramEmulator  # noqa: E402

TOKEN = "7000000001:BENCH-token"
SECRET = "bench-secret"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/supportbot_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def reset_postgres() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://"))
    try:
        await conn.execute("DROP DATABASE IF EXISTS supportbot_bench WITH (FORCE)")
        await conn.execute("CREATE DATABASE supportbot_bench")
    finally:
        await conn.close()


async def wait_healthy(url: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"app exited with {proc.returncode}")
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("app did not become healthy")


async def run_one(db: str, subscribers: int, messages: int, interval: float) -> dict[str, float]:
    emu = TelegramEmulator(TOKEN, webhook_retry_delay=0.05)
    emu_url = await emu.start()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="supportbot-bench-"))
    if db == "postgres":
        await reset_postgres()
        db_url = PG_BENCH
    else:
        db_url = f"sqlite:///{workdir / 'bench.db'}"
    env = {
        **os.environ,
        "SUPPORTBOT_DATABASE_URL": db_url,
        "SUPPORTBOT_CONTENT_DIR": str(ROOT / "content"),
        "SUPPORTBOT_HTTP_PORT": str(port),
        "SUPPORTBOT_LOG_LEVEL": "WARNING",
        "SUPPORTBOT_TELEGRAM__TOKEN": TOKEN,
        "SUPPORTBOT_TELEGRAM__API_BASE": emu_url,
        "SUPPORTBOT_TELEGRAM__MODE": "webhook",
        "SUPPORTBOT_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/webhook/telegram",
        "SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET": SECRET,
        # The bench measures our pipeline, not Telegram's 30 msg/s broadcast cap.
        "SUPPORTBOT_TELEGRAM__RATE_OVERALL": "5000",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supportbot", "run", cwd=workdir, env=env
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        replies: dict[int, asyncio.Queue[float]] = {}
        emu.on_sent.append(lambda entry: replies[int(entry["chat_id"])].put_nowait(entry["at"]))
        users = [100_000 + i for i in range(subscribers)]
        for uid in users:
            replies[uid] = asyncio.Queue()

        async def subscriber(uid: int, offset: float, latencies: list[float], n: int) -> None:
            await asyncio.sleep(offset)
            for i in range(n):
                started = time.monotonic()
                emu.send_text(uid, f"вопрос номер {i}")
                got = await asyncio.wait_for(replies[uid].get(), 30)
                latencies.append(got - started)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

        warm: list[float] = []
        await asyncio.gather(
            *(subscriber(u, i * interval / subscribers, warm, 1) for i, u in enumerate(users))
        )
        latencies: list[float] = []
        t0 = time.monotonic()
        await asyncio.gather(
            *(
                subscriber(u, i * interval / subscribers, latencies, messages)
                for i, u in enumerate(users)
            )
        )
        elapsed = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await emu.stop()
    latencies.sort()
    return {
        "messages": len(latencies),
        "msg_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--subscribers", type=int, default=400)
    parser.add_argument("--messages", type=int, default=10, help="measured messages per subscriber")
    parser.add_argument(
        "--interval", type=float, default=1.2, help="seconds between one subscriber's messages"
    )
    args = parser.parse_args()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    offered = args.subscribers / args.interval
    print(
        f"{args.subscribers} subscribers x {args.messages} messages, offered load {offered:.0f} msg/s"
    )
    print(
        f"{'database':<10} {'messages':>8} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for db in dbs:
        r = await run_one(db, args.subscribers, args.messages, args.interval)
        print(
            f"{db:<10} {r['messages']:>8.0f} {r['msg_per_s']:>8.1f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
