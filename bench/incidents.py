"""Incidents benchmark: what outage detection costs per contact, and how fast a close is queued.

- check: `Incidents.check` (the `outage` flow action), timed inside a transaction like a turn's
  (the commit is the turn's anyway), for contacts from distinct subscribers spread over S streets
  (threshold 5, 15 min window: detection runs every time), then for N contacts on one street
  (the 5th opens an incident, the rest take the open-incident path); p50/p99 per contact. The
  baseline is the demo backend's `outage_at` alone (what the action cost before incidents);
- close: closing an incident with K subscribers: render + store + enqueue every closing message
  (services.notify), one transaction, wall time.

    .venv/bin/python bench/incidents.py [--db sqlite|postgres] [--contacts 2000] [--subscribers 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialogs.content import load_content  # noqa: E402
from nlu.data import load_training_data  # noqa: E402
from services.actions import flow_actions  # noqa: E402
from services.backend import BackendContext  # noqa: E402
from services.backend.demo import DemoBackend  # noqa: E402
from services.outages import Incidents, Rules  # noqa: E402
from storage import migrate, repo  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import utcnow  # noqa: E402

CONTENT = ROOT / "content"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/test"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/supportbot_bench_incidents"  # never the tests' db


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def street(n: int) -> str:
    """A distinct street name without digits: 0 -> "Ааа", 1 -> "Ааб", ..."""
    letters = "абвгдежзиклмнопрстуфхцчшэюя"
    name = ""
    for _ in range(3):
        n, rest = divmod(n, len(letters))
        name = letters[rest] + name
    return name.capitalize()


def line(name: str, times: list[float]) -> None:
    ms = [t * 1000 for t in times]
    print(
        f"{name:<58} p50 {pct(ms, 0.5):6.2f} ms  p99 {pct(ms, 0.99):6.2f} ms  "
        f"mean {statistics.mean(ms):6.2f} ms  (n={len(ms)})"
    )


async def people(db: Database, n: int, start: int) -> list[tuple[int, int]]:
    """n subscribers with a Telegram account and a conversation: (subscriber id, conversation)."""
    out = []
    async with db.session() as s, s.begin():
        for i in range(start, start + n):
            account = await repo.get_or_create_account(
                s, channel="telegram", user_id=str(i), chat_id=str(i), first_name="Ира"
            )
            conv, _new = await repo.open_conversation(s, account)
            out.append((account.subscriber_id, conv.id))
    return out


async def run(db: Database, contacts: int, streets: int, audience: int) -> None:
    backend = DemoBackend()
    await backend.prepare(db)
    desk = Incidents(Rules(threshold=5), backend)
    who = await people(db, contacts, 1)

    async def contact(sub: tuple[int, int], address: str, *, baseline: bool = False) -> float:
        """The action's own time inside a turn's transaction (whose commit a turn pays anyway)."""
        async with db.session() as s, s.begin():
            ctx = BackendContext(s, "telegram", *sub)
            started = time.perf_counter()
            if baseline:
                await backend.outage_at(ctx, address)
            else:
                await desk.check(
                    ctx, address=address, customer=None, problem="internet_down", now=utcnow()
                )
            return time.perf_counter() - started

    base = [await contact(sub, f"Садовая {i}", baseline=True) for i, sub in enumerate(who)]
    line("backend outage_at alone (before incidents)", base)
    # 4 reporters per street at most: never an incident, every contact runs detection
    quiet = [
        await contact(sub, f"{street(i % streets)} улица, {i}")
        for i, sub in enumerate(who[: min(contacts, streets * 4)])
    ]
    line(f"check, below threshold ({streets} streets, report + count)", quiet)
    opened = [await contact(sub, f"Лесная {i}") for i, sub in enumerate(who)]
    line("check, Лесная: opens at the 5th, then the open incident", opened[5:])

    intents = load_training_data([CONTENT / "nlu"]).intents
    content = load_content(CONTENT, intents, actions=flow_actions(DemoBackend()))
    extra = await people(db, audience, 100_000)
    async with db.session() as s, s.begin():
        made = await desk.declare(
            s, area="Берёзовая", description="Авария", eta=None, operator_id=None, now=utcnow()
        )
        for sub in extra:
            await desk.check(
                BackendContext(s, "telegram", *sub),
                address="Берёзовая 1",
                customer=None,
                problem="internet_down",
                now=utcnow(),
            )
    started = time.perf_counter()
    async with db.session() as s, s.begin():
        done = await desk.close(
            s,
            made.id,
            content.responses["incident_closed"],
            resolution="Починили",
            operator_id=None,
            now=utcnow(),
        )
    took = time.perf_counter() - started
    print(f"close with {audience} subscribers: {done.told.queued} messages queued in {took:.2f} s")


async def reset_postgres() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute("DROP DATABASE IF EXISTS supportbot_bench_incidents WITH (FORCE)")
        await conn.execute("CREATE DATABASE supportbot_bench_incidents")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--streets", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        else:
            await reset_postgres()
            db = Database(PG_BENCH)
        await migrate.upgrade(db)
        print(f"database: {args.db}")
        try:
            await run(db, args.contacts, args.streets, args.subscribers)
        finally:
            await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
