"""Crash/soak benchmark: `supportbot run` is killed with SIGKILL under load and restarted.

The app runs as its own process on PostgreSQL with Telegram polling, exactly as in production;
this process plays Telegram (the emulator) and a crowd of subscribers, each writing a message
every `--every` seconds. Every `--kill-every` seconds the app is killed with `kill -9` and
started again at once. At the end (load stopped, outbox drained) it prints:

- sent: subscriber messages written; answered: those stored and answered, missing: the rest;
- duplicates: bot messages Telegram received that no outbox row recorded (a send repeated after
  a crash: at most the one request per chat on the wire at the kill can repeat);
- worst delay after recovery: the longest wait for a reply counted from when the message was
  written or, if the app was down then, from when it was healthy again;
- p50/p99 reply time while the app was up.

    .venv/bin/python bench/crash.py                             # 60 subscribers, 4 kills
    .venv/bin/python bench/crash.py --subscribers 200 --every 5 --kills 5 --kill-every 20

tests/e2e/test_crash.py runs `measure` small inside `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.telegram import TelegramEmulator  # noqa: E402

TOKEN = "7000000077:CRASH-token"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/supportbot_crash"
TEXTS = ["привет", "где оплатить?", "спасибо", "какие у вас тарифы?", "как настроить роутер?"]
FIRST_USER = 610_000


@dataclass
class Report:
    sent: int = 0
    answered: int = 0
    missing: int = 0
    duplicates: int = 0
    kills: int = 0
    worst_delay_after_recovery: float = 0.0
    recovery_times: list[float] = field(default_factory=list)  # kill -> healthy again, s
    latencies: list[float] = field(default_factory=list)  # while up, s
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        up = statistics.median(self.recovery_times) if self.recovery_times else 0.0
        return [
            f"kills: {self.kills} (kill -9 -> healthy again: median {up:.1f} s)",
            f"sent: {self.sent}  answered: {self.answered}  missing: {self.missing}  "
            f"duplicates: {self.duplicates}",
            f"worst delay after recovery: {self.worst_delay_after_recovery:.1f} s",
            f"reply time while up: p50 {statistics.median(lat) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms",
            *[f"problem: {p}" for p in self.problems],
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def reset_postgres(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql://", "postgres://"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


class AppProcess:
    """`supportbot run` as a child process that can be killed and started again."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int) -> None:
        self.env, self.cwd, self.port = env, cwd, port
        self.proc: asyncio.subprocess.Process | None = None
        self.log = cwd / "app.log"

    async def start(self) -> float:
        """Start and wait for /readyz; returns the monotonic time it became ready."""
        out = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supportbot", "run", cwd=self.cwd, env=self.env,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"app exited with {self.proc.returncode}:\n{tail}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return time.monotonic()
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("app did not become ready within 120 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def measure(
    *,
    database_url: str,
    subscribers: int = 60,
    every: float = 6.0,
    kills: int = 4,
    kill_every: float = 15.0,
    workdir: Path | None = None,
) -> Report:
    """Run the load with `kills` kill -9s and return the figures (the database must be empty)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    emu = TelegramEmulator(TOKEN)
    await emu.start()
    port = free_port()
    tmp = Path(workdir or tempfile.mkdtemp(prefix="crash-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SUPPORTBOT_DATABASE_URL=database_url,
        SUPPORTBOT_TELEGRAM__TOKEN=TOKEN,
        SUPPORTBOT_TELEGRAM__API_BASE=emu.base_url,
        SUPPORTBOT_CONTENT_DIR=str(ROOT / "content"),
        SUPPORTBOT_HTTP_PORT=str(port),
        SUPPORTBOT_LOG_LEVEL="WARNING",
    )
    app = AppProcess(env, tmp, port)
    report = Report()
    written: list[tuple[int, int, float]] = []  # (user, update_id, at)
    healthy: list[tuple[float, float]] = []  # (killed at, healthy again at)
    stop = asyncio.Event()

    answered_at: dict[int, list[float]] = {}
    news: dict[int, asyncio.Event] = {}

    def on_sent(entry: dict[str, object]) -> None:
        chat = int(str(entry["chat_id"]))
        if chat >= FIRST_USER:
            answered_at.setdefault(chat, []).append(float(str(entry["at"])))
            if chat in news:
                news[chat].set()

    emu.on_sent.append(on_sent)

    async def subscriber(user: int) -> None:
        """Writes, waits for the answer (a person does), pauses, writes again."""
        news[user] = asyncio.Event()
        await asyncio.sleep(every * (user - FIRST_USER) / subscribers)
        n = 0
        while not stop.is_set():
            news[user].clear()
            update = emu.send_text(user, TEXTS[n % len(TEXTS)])
            written.append((user, update["update_id"], time.monotonic()))
            n += 1
            try:
                await asyncio.wait_for(news[user].wait(), 90)
            except TimeoutError:
                pass
            await asyncio.sleep(every)

    async def crowd() -> None:
        await asyncio.gather(*(subscriber(FIRST_USER + i) for i in range(subscribers)))

    try:
        await app.start()
        load = asyncio.create_task(crowd())
        for _ in range(kills):
            await asyncio.sleep(kill_every)
            app.kill()
            killed = time.monotonic()
            await app.proc.wait() if app.proc else None
            healthy.append((killed, await app.start()))
            report.kills += 1
        await asyncio.sleep(kill_every)
        stop.set()
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
        engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # the outbox drains and every update is in
                async with engine.connect() as conn:
                    busy = await conn.scalar(
                        text("select count(*) from outbox where status in ('pending','sending')")
                    )
                    stored = await conn.scalar(
                        text("select count(*) from messages where direction = 'in'")
                    )
                if not busy and stored >= len(written):
                    break
                await asyncio.sleep(0.5)
            async with engine.connect() as conn:
                stored_ids = {
                    int(r[0])
                    for r in await conn.execute(
                        text("select platform_update_id from messages where direction = 'in'")
                    )
                    if r[0] is not None
                }
                rows = (
                    await conn.execute(text("select status, platform_message_ids from outbox"))
                ).all()
        finally:
            await engine.dispose()
    finally:
        stop.set()
        await app.stop()
        await emu.stop()

    recorded = {str(i) for status, ids in rows if status == "sent" for i in (ids or [])}
    unsent = sum(1 for status, _ in rows if status != "sent")
    bot_messages = [s for s in emu.sent() if int(s["chat_id"]) >= FIRST_USER]
    report.duplicates = sum(1 for s in bot_messages if str(s["message_id"]) not in recorded)
    not_stored = [u for _, u, _ in written if u not in stored_ids]
    report.sent = len(written)
    report.missing = len(not_stored) + unsent
    report.answered = report.sent - report.missing
    if unsent:
        report.problems.append(f"{unsent} outbox row(s) never sent")
    report.recovery_times = [up - down for down, up in healthy]

    for user, _, at in written:
        first = next((t for t in sorted(answered_at.get(user, [])) if t >= at), None)
        if first is None:
            continue
        crossed = [up for down, up in healthy if at <= up and first >= down]
        if crossed:  # the app died between the message and its answer
            delay = first - max(at, max(crossed))
            report.worst_delay_after_recovery = max(report.worst_delay_after_recovery, delay)
        else:
            report.latencies.append(first - at)
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=60)
    parser.add_argument(
        "--every", type=float, default=6.0, help="seconds between a chat's messages"
    )
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=15.0)
    args = parser.parse_args()
    await reset_postgres(PG_ADMIN, "supportbot_crash")
    print(
        f"crash/soak: {args.subscribers} subscribers, a message each every {args.every:g} s "
        f"({args.subscribers / args.every:.0f} msg/s), kill -9 every {args.kill_every:g} s"
    )
    report = await measure(
        database_url=PG_BENCH,
        subscribers=args.subscribers,
        every=args.every,
        kills=args.kills,
        kill_every=args.kill_every,
    )
    print("\n".join(report.lines()))


if __name__ == "__main__":
    asyncio.run(main())
