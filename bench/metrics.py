"""What `/metrics` costs: a scrape's database read over a large outbox, and the counting per update.

- scrape: 100,000 outbox rows on PostgreSQL (SUPPORTBOT_TEST_PG_URL; its schema is recreated),
  once with a normal backlog (200 undelivered, 100 failed) and once with 40,000 undelivered or
  failed; 30 scrapes each (`Metrics.render`: the read plus the text), p50 and max;
- per update: `ObservedHandler` around a pipeline that returns at once, 200,000 calls, against
  the bare pipeline.

    SUPPORTBOT_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/metrics.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import delete, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialogs.messages import Channel, HandleResult, Inbound
from storage.models import OutboxItem
from supportbot.metrics import Metrics
from tests.conftest import fresh_postgres

ROWS = 100_000


def normal(i: int) -> str:
    return "pending" if i % 500 == 0 else "failed" if i % 1000 == 1 else "sent"


def piled_up(i: int) -> str:
    return ("pending", "sent", "sent", "sent", "failed")[i % 5]


async def scrapes() -> None:
    db = await fresh_postgres()
    metrics = Metrics(db, {Channel.TELEGRAM: object(), Channel.VK: object()}, ["consult"])
    try:
        for name, status in (("200 undelivered, 100 failed", normal),
                             ("20,000 undelivered, 20,000 failed", piled_up)):  # fmt: skip
            async with db.session() as s, s.begin():
                await s.execute(delete(OutboxItem))
                for start in range(0, ROWS, 10_000):
                    rows = [
                        {"channel": ("vk", "telegram")[i % 2], "chat_id": str(i),
                         "body": {"text": "x"}, "status": status(i)}
                        for i in range(start, start + 10_000)
                    ]  # fmt: skip
                    await s.execute(insert(OutboxItem), rows)
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE outbox")
            took = []
            for _ in range(30):
                started = time.perf_counter()
                await metrics.render()
                took.append(time.perf_counter() - started)
            print(f"scrape, {ROWS:,} outbox rows ({name}): p50 "
                  f"{statistics.median(took) * 1000:.1f} ms, max {max(took) * 1000:.1f} ms")  # fmt: skip
    finally:
        await db.dispose()


class Instant:
    async def handle(self, inbound: Inbound) -> HandleResult:
        return HandleResult(conversation_id=1)


async def per_update() -> None:
    metrics = Metrics(None, {}, [])  # type: ignore[arg-type]  # counting never reads the database
    inbound = Inbound(channel=Channel.TELEGRAM, chat_id="1", user_id="1", update_id="1", text="x")
    calls = 200_000
    for name, handler in (("bare", Instant()), ("counted", metrics.observe(Instant()))):
        started = time.perf_counter()
        for _ in range(calls):
            await handler.handle(inbound)
        print(f"per update, {name}: {(time.perf_counter() - started) / calls * 1e6:.2f} µs")


async def main() -> None:
    await scrapes()
    await per_update()


if __name__ == "__main__":
    asyncio.run(main())
