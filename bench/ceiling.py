"""Ceiling benchmark: `supportbot run` against a bare aiogram echo bot, same load, one run.

Both bots run as their own processes in Telegram webhook mode against the same Telegram emulator
(in this process), which delivers updates to their webhooks exactly as Telegram does (up to 40
requests at once, one at a time per chat) and records their sendMessage calls. The echo bot is
aiogram 3's documented webhook set-up (`SimpleRequestHandler` on aiohttp, an echo handler): the
ceiling of the frameworks supportbot is built on. supportbot runs its whole pipeline (dedupe,
store, NLU, dialog, outbox) on SQLite or PostgreSQL.

The load is open: subscribers' messages are created at the offered rate whatever the bot does
(each subscriber writes every `subscribers / rate` seconds, below Telegram's ~1 msg/s per chat).
Latency = message created in the emulator -> the bot's answer received by the emulator. Achieved
rate = answers / (first message of the window -> last answer); CPU ms = the bot process's CPU
time per answer (load-independent: the machine may be shared); DB ms = the local PostgreSQL
server's CPU time per answer (0 on SQLite, where the database works inside the bot's process);
load ms = this process's (the emulator's and the load's) CPU time per answer. The three share the
machine's cores: their sum per answer bounds the rate a run can reach (2 cores / 8 ms = 250 msg/s).
Telegram's 30 msg/s per-bot cap is lifted in supportbot (SUPPORTBOT_TELEGRAM__RATE_OVERALL=5000):
the echo bot has none either. Also printed: seconds from process start to /healthz answering 200
(readiness).

    .venv/bin/python bench/ceiling.py                          # SQLite, 300 and 600 msg/s
    .venv/bin/python bench/ceiling.py --backend postgres --rates 300 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulators.telegram import TelegramEmulator  # noqa: E402

TOKEN = "7000000018:CEILING-token"
SECRET = "ceiling-secret"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "supportbot_ceiling"
FIRST_USER = 180_000
# Questions subscribers really ask, phrased 144 ways (no per-text cache can make the load easy);
# each gets exactly one answer from the reference content (checked in the warm-up).
TEXTS = [
    f"{before}{question}{after}"
    for before in ("", "подскажите, ", "скажите пожалуйста ", "а ", "привет! ", "добрый день, ")
    for question in (
        "где оплатить?",
        "как пополнить баланс?",
        "где можно оплатить связь",
        "как оплатить интернет",
        "где заплатить за связь",
        "как положить деньги на счет",
    )
    for after in ("", " пожалуйста", " срочно", "?")
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and the processes it started (supportbot's NLU helper,
    nlu/offload.py) have used so far (Linux /proc; 0 elsewhere)."""
    stats: dict[int, list[str]] = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(path.parent.name)] = path.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
    total, tree = 0, {pid}
    for _ in range(3):  # the wrapper (--wrap), the bot, its helper
        tree |= {p for p, fields in stats.items() if int(fields[1]) in tree}
    for p in tree:
        if p in stats:
            total += int(stats[p][11]) + int(stats[p][12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time the local PostgreSQL server's processes have used so far (its backends serve the
    bot; they share the machine's cores with it). 0 when the server is not on this machine."""
    total = 0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = path.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue
        if name == "postgres":  # with the backends that ended, counted in the postmaster's
            parts = fields.split()
            total += sum(int(n) for n in parts[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


# --------------------------------------------------------------------------- the echo bot


def serve_echo(port: int, api_base: str) -> None:
    """The bare aiogram 3 echo bot (runs in the child process started with --serve-echo)."""
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    async def on_startup(bot: Bot) -> None:
        await bot.set_webhook(f"http://127.0.0.1:{port}/webhook", secret_token=SECRET)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    dp = Dispatcher()
    dp.include_router(router)
    dp.startup.register(on_startup)
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=SECRET).register(app, "/webhook")
    setup_application(app, dp, bot=bot)
    loop = asyncio.new_event_loop()
    with contextlib.suppress(ImportError):  # the same event loop supportbot uses
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=loop)


# --------------------------------------------------------------------------- processes


@dataclass
class Started:
    proc: asyncio.subprocess.Process
    ready_s: float  # process start -> /healthz 200
    ready_cpu: float  # CPU seconds the process used by then (load-independent)
    log: Path


async def start_process(
    argv: list[str], env: dict[str, str], cwd: Path, port: int, emu: TelegramEmulator
) -> Started:
    log = cwd / "process.log"
    out = log.open("ab")
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
    )
    out.close()
    ready = None
    ready_cpu = 0.0
    deadline = t0 + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{argv[1:3]} exited with {proc.returncode}:\n{tail}")
            if ready is None:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            ready = time.monotonic() - t0
                            ready_cpu = cpu_seconds(proc.pid)
            if ready is not None and emu._webhook is not None:  # the webhook is registered
                return Started(proc, ready, ready_cpu, log)
            await asyncio.sleep(0.02)
    proc.kill()
    raise TimeoutError(f"{argv[1:3]} did not become ready in 120 s")


async def stop_process(proc: asyncio.subprocess.Process, *, interrupt: bool = False) -> None:
    """SIGTERM (or SIGINT: a profiler writes its file on Ctrl-C), then SIGKILL after 20 s."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT if interrupt else signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def reset_postgres(admin_url: str) -> str:
    """A fresh database for the run; SystemExit with the reason when PostgreSQL can't be used."""
    try:
        import asyncpg

        conn = await asyncpg.connect(admin_url.replace("postgresql://", "postgres://"), timeout=5)
    except Exception as exc:
        raise SystemExit(f"ceiling: PostgreSQL at {admin_url} cannot be used: {exc}") from None
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {PG_DB}")
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + PG_DB


# --------------------------------------------------------------------------- the load


@dataclass
class Result:
    offered: float
    sent: int
    answered: int
    achieved: float
    p50_ms: float
    p99_ms: float
    extra_replies: int
    cpu_ms: float = 0.0  # the bot process's CPU time per answered message in the window
    db_ms: float = 0.0  # the local PostgreSQL server's CPU time per answered message
    load_ms: float = 0.0  # this process's (the emulator's and the load's) CPU per answer


async def drive(
    emu: TelegramEmulator, rate: float, seconds: float, subscribers: int, settle: float, pid: int
) -> Result:
    """Warm every chat with one message, then offer `rate` msg/s for `seconds`."""
    pending: dict[int, deque[float]] = {}
    latencies: list[float] = []
    extra = 0
    last_answer = 0.0
    done = asyncio.Event()
    expected = 0

    def on_sent(entry: dict[str, object]) -> None:
        nonlocal extra, last_answer
        queue = pending.get(int(str(entry["chat_id"])))
        if not queue:
            extra += 1
            return
        at = float(str(entry["at"]))
        latencies.append(at - queue.popleft())
        last_answer = at
        if len(latencies) >= expected:
            done.set()

    emu.on_sent.append(on_sent)
    users = [FIRST_USER + i for i in range(subscribers)]
    for uid in users:
        pending[uid] = deque()

    async def offer(count: int, first: int) -> float:
        """Create `count` messages at `rate`; returns when the first was created."""
        t0 = time.monotonic()
        k = 0
        while k < count:
            due = min(count, int((time.monotonic() - t0) * rate) + 1)
            while k < due:
                uid = users[(first + k) % subscribers]
                pending[uid].append(time.monotonic())
                emu.send_text(uid, TEXTS[(first + k) % len(TEXTS)])
                k += 1
            await asyncio.sleep(0.002)
        return t0

    async def settled(timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)

    try:
        expected = subscribers  # warm-up: every chat once (accounts and conversations exist)
        await offer(subscribers, 0)
        await settled(60)
        if len(latencies) < subscribers:
            raise RuntimeError(f"warm-up: only {len(latencies)} of {subscribers} answered")
        await asyncio.sleep(1.0)  # late extra replies would show here
        if extra:
            raise RuntimeError(f"warm-up: {extra} replies beyond one per message")
        latencies.clear()
        done.clear()
        count = int(rate * seconds)
        expected = count
        cpu0, db0, load0 = cpu_seconds(pid), postgres_cpu_seconds(), time.process_time()
        t0 = await offer(count, subscribers)
        await settled(seconds + settle)
        cpu = cpu_seconds(pid) - cpu0
        db = postgres_cpu_seconds() - db0
        load = time.process_time() - load0
        measured = sorted(latencies)
        answered = len(measured)
        elapsed = max(last_answer - t0, 1e-9)
    finally:
        emu.on_sent.remove(on_sent)
    return Result(
        offered=rate,
        sent=count,
        answered=answered,
        achieved=answered / elapsed,
        p50_ms=statistics.median(measured) * 1000 if measured else float("nan"),
        p99_ms=measured[max(0, int(answered * 0.99) - 1)] * 1000 if measured else float("nan"),
        extra_replies=extra,
        cpu_ms=cpu * 1000 / max(1, answered),
        db_ms=db * 1000 / max(1, answered),
        load_ms=load * 1000 / max(1, answered),
    )


async def run_bot(
    kind: str, rate: float, args: argparse.Namespace, db_url: str | None
) -> tuple[Result, float]:
    emu = TelegramEmulator(TOKEN, webhook_retry_delay=0.05)
    emu_url = await emu.start()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"ceiling-{kind}-"))
    argv, env = command(kind, args, port, emu_url, workdir, db_url)
    started = await start_process(argv, env, workdir, port, emu)
    try:
        chats = args.subscribers or int(rate * 2)
        result = await drive(emu, rate, args.seconds, chats, 30, started.proc.pid)
    finally:
        await stop_process(started.proc, interrupt=bool(args.wrap))
        await emu.stop()
    shutil.rmtree(workdir, ignore_errors=True)  # kept (with process.log) when the run failed
    return result, started.ready_s


def command(
    kind: str, args: argparse.Namespace, port: int, emu_url: str, workdir: Path, db_url: str | None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the echo bot or of `supportbot run` (webhook mode)."""
    if kind == "echo":
        argv = [sys.executable, __file__, "--serve-echo", str(port), "--api", emu_url]
        env = dict(os.environ)
    else:
        argv = [*args.wrap.split(), sys.executable, "-m", "supportbot", "run"]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SUPPORTBOT_DATABASE_URL": db_url or f"sqlite:///{workdir / 'bench.db'}",
            "SUPPORTBOT_CONTENT_DIR": str(ROOT / "content"),
            "SUPPORTBOT_DATA_DIR": str(workdir),
            "SUPPORTBOT_HTTP_PORT": str(port),
            "SUPPORTBOT_LOG_LEVEL": "WARNING",
            "SUPPORTBOT_TELEGRAM__TOKEN": TOKEN,
            "SUPPORTBOT_TELEGRAM__API_BASE": emu_url,
            "SUPPORTBOT_TELEGRAM__MODE": "webhook",
            "SUPPORTBOT_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/webhook/telegram",
            "SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET": SECRET,
            "SUPPORTBOT_TELEGRAM__RATE_OVERALL": "5000",
        }
    return argv, env


def row(name: str, r: Result, ready: float) -> str:
    return (
        f"{name:<22} {r.offered:>7.0f} {r.achieved:>8.1f} {r.answered:>6}/{r.sent:<6} "
        f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {ready:>7.2f} {r.cpu_ms:>7.2f} "
        f"{r.db_ms:>6.2f} {r.load_ms:>7.2f}"
    )


async def startup(args: argparse.Namespace, db_url: str | None) -> None:
    """Start each bot `args.startup` times (webhook mode): seconds to /healthz 200. supportbot's
    first start is on an empty data dir and database (it migrates, trains the NLU, indexes the
    knowledge base); the others restart it on the same ones, as after a crash or a deploy."""
    print(f"start -> /healthz 200, {args.startup} starts each; {load_average()}", flush=True)
    for kind in ("echo", "supportbot") if args.only is None else (args.only,):
        times, cpus = [], []
        workdir = Path(tempfile.mkdtemp(prefix=f"ceiling-{kind}-"))
        for _ in range(args.startup):
            emu = TelegramEmulator(TOKEN)
            emu_url = await emu.start()
            port = free_port()
            argv, env = command(kind, args, port, emu_url, workdir, db_url)
            try:
                started = await start_process(argv, env, workdir, port, emu)
                times.append(started.ready_s)
                cpus.append(started.ready_cpu)
                await stop_process(started.proc, interrupt=bool(args.wrap))
            finally:
                await emu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shown = " ".join(f"{t:.2f}" for t in times)
        cpu = " ".join(f"{t:.2f}" for t in cpus)
        if kind == "echo":
            print(
                f"{kind:<12} median {statistics.median(times):.2f} s  ({shown}); CPU s {cpu}",
                flush=True,
            )
        else:
            again = statistics.median(times[1:]) if len(times) > 1 else float("nan")
            print(
                f"{kind:<12} first start {times[0]:.2f} s, restarts median {again:.2f} s  "
                f"({shown}); CPU s {cpu}",
                flush=True,
            )
    print(load_average(), flush=True)


async def main(args: argparse.Namespace) -> None:
    db_url = await reset_postgres(args.pg_admin) if args.backend == "postgres" else None
    if args.startup:
        await startup(args, db_url)
        return
    print(f"bench/ceiling.py: {args.seconds:.0f} s per rate; {load_average()}", flush=True)
    print(
        f"{'bot':<22} {'offered':>7} {'achieved':>8} {'answered':>13} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'ready s':>7} {'CPU ms':>7} {'DB ms':>6} {'load ms':>7}",
        flush=True,
    )
    for n, rate in enumerate(args.rates):
        if args.only == "supportbot":
            if args.backend == "postgres" and n:  # the emulator numbers its updates from 1 again
                db_url = await reset_postgres(args.pg_admin)
            ours, ours_ready = await run_bot("supportbot", rate, args, db_url)
            print(row(f"supportbot ({args.backend})", ours, ours_ready), flush=True)
            continue
        echo, echo_ready = await run_bot("echo", rate, args, None)
        print(row("aiogram echo", echo, echo_ready), flush=True)
        if args.backend == "postgres":
            db_url = await reset_postgres(args.pg_admin)
        ours, ours_ready = await run_bot("supportbot", rate, args, db_url)
        print(row(f"supportbot ({args.backend})", ours, ours_ready), flush=True)
        print(
            f"{'':<22} ratio supportbot/echo: {ours.achieved / echo.achieved:.2f} "
            f"(target {'>= 0.95 and p99 < 100 ms' if rate <= 300 else '>= 0.8'}); "
            f"{load_average()}",
            flush=True,
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="PostgreSQL to create the bench DB in")
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[300.0, 600.0],
        help="offered msg/s, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument(
        "--subscribers", type=int, default=0, help="chats (default: 2 x rate, 0.5 msg/s each)"
    )
    parser.add_argument(
        "--startup",
        type=int,
        default=0,
        help="only measure start-up: start each bot N times, print the median time to /healthz",
    )
    parser.add_argument(
        "--only", choices=["supportbot"], default=None, help="skip the echo bot (profiling)"
    )
    parser.add_argument(
        "--wrap",
        default="",
        help="command put before `python -m supportbot run`, e.g. a profiler: "
        "'py-spy record -o flame.svg --'",
    )
    parser.add_argument("--serve-echo", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--api", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_echo is not None:
        serve_echo(arguments.serve_echo, arguments.api)
    else:
        asyncio.run(main(arguments))
