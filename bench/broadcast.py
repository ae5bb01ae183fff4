"""Broadcast benchmark: a proactive notice to N subscribers, from `services.notify` to delivery.

The real app runs in this process (outbox workers, aiogram, vkbottle) against the Telegram and VK
emulators, both enforcing the platforms' limits (Telegram: 429 above 30 msg/s; VK: error 6 above
20 requests/s). N subscribers (default 60% Telegram, 40% VK, 1% of them linked to an account in
the other channel) are written straight into the database, then:
- enqueue: one `notify` call (render + store + outbox, one transaction), wall time;
- delivery per channel: messages, seconds from the wake to the last one, messages/s, the
  busiest 1-second window the emulator saw, and the 429s / VK errors (should be 0).

    .venv/bin/python bench/broadcast.py [--subscribers 2000] [--db sqlite|postgres]
    .venv/bin/python bench/broadcast.py --subscribers 20000 --enqueue-only
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from dialogs.content import Response, Variant  # noqa: E402
from dialogs.messages import Channel  # noqa: E402
from emulators.telegram import TelegramEmulator  # noqa: E402
from emulators.vk import VKEmulator  # noqa: E402
from handoff.config import HandoffSettings  # noqa: E402
from services.notify import notify  # noqa: E402
from storage.models import OutboxItem, OutboxStatus  # noqa: E402
from supportbot.app import App  # noqa: E402
from supportbot.settings import Settings, TelegramSettings, VKSettings  # noqa: E402
from tests.audience import Person, seed  # noqa: E402

TG_TOKEN = "7000000001:BENCH-broadcast"
VK_TOKEN = "vk1.a.bench-broadcast"
VK_GROUP = 229000999
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/supportbot_bench_broadcast"
NEWS = Response(
    "incident_closed",
    (Variant(text="{first_name}, связь по адресу {area} восстановлена. Спасибо за терпение!"),),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def reset_postgres() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://"))
    try:
        await conn.execute("DROP DATABASE IF EXISTS supportbot_bench_broadcast WITH (FORCE)")
        await conn.execute("CREATE DATABASE supportbot_bench_broadcast")
    finally:
        await conn.close()


def audience(n: int, tg_share: float) -> list[Person]:
    tg = round(n * tg_share)
    people = [Person((("telegram", 300_000 + i),)) for i in range(tg)]
    people += [Person((("vk", 400_000 + i),)) for i in range(n - tg)]
    for i in range(0, n, 100):  # 1%: linked, wrote last in the channel listed last
        first, *_ = people[i].accounts
        other = ("vk", 500_000 + i) if first[0] == "telegram" else ("telegram", 600_000 + i)
        people[i] = Person((other, first) if i % 200 else (first, other))
    return people


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--telegram-share", type=float, default=0.6)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--enqueue-only", action="store_true", help="no delivery, just notify()")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "postgres":
            await reset_postgres()
        url = PG_BENCH if args.db == "postgres" else f"sqlite:///{tmp}/bench.db"
        tg = TelegramEmulator(TG_TOKEN, enforce_limits=True)
        vk = VKEmulator(VK_TOKEN, VK_GROUP, enforce_limits=True)
        await tg.start()
        await vk.start()
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp),
            content_dir=ROOT / "content",
            http_port=free_port(),
            telegram=TelegramSettings(token=SecretStr(TG_TOKEN), api_base=tg.base_url),
            vk=VKSettings(token=SecretStr(VK_TOKEN), group_id=VK_GROUP, api_url=vk.api_url),
            handoff=HandoffSettings(hours={}),
        )
        app = App(settings)
        await app.start()
        try:
            await run(app, tg, vk, args)
        finally:
            await app.stop()
            await tg.stop()
            await vk.stop()


async def run(app: App, tg: TelegramEmulator, vk: VKEmulator, args: argparse.Namespace) -> None:
    if args.enqueue_only:  # nothing may go out meanwhile: the workers stop first
        for worker in app.workers.values():
            await worker.stop()
    people = audience(args.subscribers, args.telegram_share)
    for person in people:
        for channel, user_id in person.accounts:
            if channel == "telegram":
                tg.add_user(user_id)
    ids = await seed(app.db, people)
    if args.db == "postgres":  # planner statistics, as a live database has them
        async with app.db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))

    started = time.perf_counter()
    async with app.db.session() as s, s.begin():
        told = await notify(s, ids, NEWS, {"area": "ул. Садовая, 12"})
    enqueue = time.perf_counter() - started
    print(
        f"{args.db}: notify() for {len(ids)} subscribers: {enqueue * 1000:.0f} ms "
        f"({told.queued} queued, {enqueue / max(told.queued, 1) * 1e6:.0f} µs each)"
    )
    if args.enqueue_only:
        return
    woke = time.monotonic()
    for channel in told.channels:
        app.workers[Channel(channel)].wake()
    while True:
        async with app.db.session() as s:
            busy = await s.scalar(
                select(func.count(OutboxItem.id)).where(
                    OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
                )
            )
        if not busy:
            break
        await asyncio.sleep(0.5)
    tg_times = [m["at"] for m in tg.sent()]
    vk_times = [c["at"] for c in vk.calls if c["method"] == "messages.send" and not c["error"]]
    rows = [
        ("telegram", tg_times, tg.max_rate_per_second(),
         sum(c["status"] == 429 for c in tg.calls), "429s"),
        ("vk", vk_times, vk.max_rate_per_second(),
         sum(c["error"] is not None for c in vk.calls), "API errors"),
    ]  # fmt: skip
    for channel, times, busiest, errors, what in rows:
        if not times:
            continue
        took = max(times) - woke
        print(
            f"  {channel:8} {len(times):6} messages in {took:5.1f} s = {len(times) / took:5.1f}/s;"
            f" busiest second {busiest} (limit {30 if channel == 'telegram' else 20}); "
            f"{errors} {what}"
        )
    async with app.db.session() as s:
        statuses = Counter(
            {
                st: n
                for st, n in await s.execute(
                    select(OutboxItem.status, func.count()).group_by("status")
                )
            }
        )
    per_chat = Counter(str(m["chat_id"]) for m in tg.sent()) + Counter(
        str(m["peer_id"]) for m in vk.sent()
    )
    print(
        f"  outbox: {dict(statuses)}; chats told twice: "
        f"{sum(1 for n in per_chat.values() if n > 1)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
