"""Analytics benchmark: how long the supervisors' service report takes on a realistic volume.

Seeds N conversations (default 20,000, about 5 messages each: ~105,000 messages with NLU JSON
as the pipeline stores it, plus their events and ratings) spread over `--days` days, the way the
app writes them: a subscriber message and the bot's replies share one created_at; 30 % of the
conversations are handed to an operator (events: escalated, assigned, some missed, closed, rated).
Then it times `handoff.analytics.service_report` for the last 14 days (all channels and groups,
then one channel, then one group) and the supervisor's "today" figures, on SQLite and, if it
answers, on PostgreSQL (a database of its own: it is dropped and recreated).

    .venv/bin/python bench/analytics.py [--conversations 20000] [--days 14] [--repeat 5]
        [--pg postgresql://postgres@127.0.0.1:5432/supportbot_bench | --pg none]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handoff.analytics import Report, service_report  # noqa: E402
from handoff.console.analytics_page import in_worker_thread  # noqa: E402
from handoff.console.stats import supervisor_view  # noqa: E402
from storage import migrate  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import (  # noqa: E402
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Message,
    Subscriber,
)
from supportbot.app import tune_gc  # noqa: E402

TZ = "Europe/Moscow"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/supportbot_bench"
INTENTS = [
    "payment_methods", "balance", "tariff_current", "tariff_list", "internet_down", "tv_down",
    "promised_payment", "roaming", "sim_card", "offices", "operator", "greet", "thanks",
]  # fmt: skip
TEXTS = {
    "payment_methods": "где оплатить?", "balance": "какой у меня баланс", "tariff_current":
    "мой тариф", "tariff_list": "какие есть тарифы", "internet_down": "не работает интернет",
    "tv_down": "нет каналов", "promised_payment": "обещанный платёж", "roaming": "роуминг в турции",
    "sim_card": "потерял симку", "offices": "где ваш офис", "operator": "позовите оператора",
    "greet": "привет", "thanks": "спасибо",
}  # fmt: skip
GROUPS = ["consult", "tech", "finance", "complaints"]


def nlu(rng: random.Random, text_: str, intent: str, handled_as: str | None) -> dict[str, Any]:
    """What the pipeline stores: Parse.to_json() with a 10-entry ranking (plus handled_as)."""
    others = rng.sample(INTENTS, 10)
    out: dict[str, Any] = {
        "text": text_,
        "intent": intent,
        "confidence": round(rng.uniform(0.1, 0.99), 4),
        "ranking": [{"name": n, "confidence": round(rng.random(), 4)} for n in others],
        "entities": [],
        "engine": "embedded",
        "extra": {},
    }
    if handled_as:
        out["handled_as"] = handled_as
    return out


def build(n: int, days: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    rows: dict[str, list[dict[str, Any]]] = {
        "subscribers": [],
        "channel_accounts": [],
        "conversations": [],
        "messages": [],
        "conversation_events": [],
    }
    misses = [f"абракадабра {i}" for i in range(300)]
    for cid in range(1, n + 1):
        channel = "telegram" if rng.random() < 0.6 else "vk"
        rows["subscribers"].append({"id": cid, "data": {}, "display_name": f"Абонент {cid}"})
        rows["channel_accounts"].append(
            {"id": cid, "subscriber_id": cid, "channel": channel,
             "external_user_id": str(cid), "chat_id": str(cid)}
        )  # fmt: skip
        at = start + timedelta(seconds=rng.uniform(0, days * 86400 - 3600))
        conv: dict[str, Any] = {
            "id": cid, "subscriber_id": cid, "channel_account_id": cid, "channel": channel,
            "state": "bot", "slots": {}, "declined_by": [], "priority": 0, "created_at": at,
            "updated_at": at,
        }  # fmt: skip
        events = [
            {"conversation_id": cid, "kind": "state", "to_state": "bot", "data": {}, "at": at}
        ]
        escalate = rng.random() < 0.3
        turns = 2 if escalate else rng.choice([2, 2, 3])
        for turn in range(turns):
            at += timedelta(seconds=rng.uniform(5, 90))
            if rng.random() < 0.15:
                text_, intent, handled = rng.choice(misses), "out_of_scope", "miss"
            elif escalate and turn == turns - 1:
                text_, intent, handled = TEXTS["operator"], "operator", None
            else:
                intent = rng.choice(INTENTS[:-3])
                text_, handled = TEXTS[intent], None
            rows["messages"] += [
                {"conversation_id": cid, "direction": "in", "author": "subscriber",
                 "text": text_, "nlu": nlu(rng, text_, intent, handled), "channel": channel,
                 "created_at": at},
                {"conversation_id": cid, "direction": "out", "author": "bot",
                 "text": "Ответ бота " * 8, "nlu": None, "channel": channel, "created_at": at},
            ]  # fmt: skip
        if escalate:
            group = rng.choice(GROUPS)
            events.append(
                {"conversation_id": cid, "kind": "escalated", "from_state": "bot",
                 "to_state": "queued", "data": {"group": group, "reason": "asked for a human"},
                 "at": at}
            )  # fmt: skip
            queued = at
            at += timedelta(seconds=rng.uniform(2, 30))
            if rng.random() < 0.05:
                events.append(
                    {"conversation_id": cid, "kind": "assigned", "to_state": "with_operator",
                     "data": {"operator_id": 1}, "at": at}
                )  # fmt: skip
                at += timedelta(seconds=60)
                events.append(
                    {"conversation_id": cid, "kind": "missed", "from_state": "with_operator",
                     "to_state": "queued", "data": {"operator_id": 1}, "at": at}
                )  # fmt: skip
            events.append(
                {"conversation_id": cid, "kind": "assigned", "to_state": "with_operator",
                 "data": {"operator_id": 2, "group": group}, "at": at}
            )  # fmt: skip
            first = at + timedelta(seconds=rng.uniform(5, 120))
            asked = first + timedelta(seconds=rng.uniform(10, 60))
            replied = asked + timedelta(seconds=rng.uniform(10, 120))
            rows["messages"] += [
                {"conversation_id": cid, "direction": "out", "author": "operator",
                 "text": "Здравствуйте!", "nlu": None, "channel": channel, "created_at": first},
                {"conversation_id": cid, "direction": "in", "author": "subscriber",
                 "text": "а когда?", "nlu": nlu(rng, "а когда?", "out_of_scope", None),
                 "channel": channel, "created_at": asked},
                {"conversation_id": cid, "direction": "out", "author": "operator",
                 "text": "Уже сделал", "nlu": None, "channel": channel, "created_at": replied},
            ]  # fmt: skip
            closed = replied + timedelta(seconds=30)
            events.append(
                {"conversation_id": cid, "kind": "closed", "from_state": "with_operator",
                 "to_state": "rating", "data": {"resolution": "solved"}, "at": closed}
            )  # fmt: skip
            conv.update(
                state="closed", skill_group=group, queued_at=queued, assigned_at=at,
                first_response_at=first, operator_replied_at=replied, closed_at=closed,
                handoff_reason="asked for a human", resolution="solved",
            )  # fmt: skip
            if rng.random() < 0.6:
                conv["csat"] = rng.choice([1, 2, 3, 4, 4, 5, 5, 5])
                if rng.random() < 0.5:
                    conv["nps"] = rng.randint(0, 10)
        rows["conversations"].append(conv)
        rows["conversation_events"] += events
    return rows


async def fill(db: Database, rows: dict[str, list[dict[str, Any]]]) -> None:
    models = {
        "subscribers": Subscriber,
        "channel_accounts": ChannelAccount,
        "conversations": Conversation,
        "messages": Message,
        "conversation_events": ConversationEvent,
    }
    for table, model in models.items():
        batch = rows[table]
        for i in range(0, len(batch), 5000):
            async with db.session() as s, s.begin():
                await s.execute(insert(model), batch[i : i + 5000])


async def timed(repeat: int, make: Any) -> tuple[float, float, float, Any]:
    """(median wall s, best wall s, best CPU s of this process, result). On SQLite every
    statement runs in this process, so CPU time is the cost even when the machine is busy."""
    spent, cpu, result = [], [], None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = await make()
        spent.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(spent), min(spent), min(cpu), result


async def bench(db: Database, name: str, repeat: int) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo(TZ)).date()
    first = today - timedelta(days=13)

    async def report(**kw: Any) -> Any:
        async with db.session() as s:
            return await service_report(
                s, start=first, end=today, timezone=TZ, first_response_target=60, **kw
            )

    async def today_view() -> Any:
        async with db.session() as s:
            return await supervisor_view(s, groups=GROUPS, timezone=TZ, first_response_target=60)

    for label, make in (
        ("14 days, everything", lambda: report()),
        ("14 days, telegram", lambda: report(channel="telegram")),
        ("14 days, group tech", lambda: report(group="tech")),
    ):
        median, best, cpu, r = await timed(repeat, make)
        t = r.totals
        print(
            f"{name}: report {label}: median {median * 1000:.0f} ms, best {best * 1000:.0f} ms, "
            f"CPU here {cpu * 1000:.0f} ms ({len(r.rows)} rows; contacts {t.contacts}, "
            f"texts {t.bot_texts}, "
            f"containment {t.containment_pct} %, fallback {t.fallback_pct} %)"
        )
    median, best, cpu, _ = await timed(repeat, today_view)
    print(
        f"{name}: supervisor 'today': median {median * 1000:.0f} ms, best {best * 1000:.0f} ms, "
        f"CPU here {cpu * 1000:.0f} ms"
    )


async def longest_stall(make: Any) -> float:
    """The longest the event loop went without running a 1 ms ticker while `make()` ran."""
    worst, done = 0.0, False

    async def tick() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    await make()
    done = True
    await ticker
    return worst


async def bench_stall(db: Database) -> None:
    """SQLite runs statements on the event loop: how long do the bots wait for a report?"""
    today = datetime.now(UTC).astimezone(ZoneInfo(TZ)).date()

    async def compute(database: Database) -> Report:
        async with database.session() as s:
            return await service_report(
                s, start=today - timedelta(days=13), end=today, timezone=TZ,
                first_response_target=60,
            )  # fmt: skip

    inline = await longest_stall(lambda: compute(db))
    threaded = await longest_stall(lambda: asyncio.to_thread(in_worker_thread, db.url, compute))
    print(
        f"SQLite: longest event-loop stall during a 14-day report: inline {inline * 1000:.0f} ms, "
        f"the console's way (own connection, worker thread) {threaded * 1000:.0f} ms"
    )


async def fresh_pg(url: str) -> Database | None:
    import asyncpg

    target = make_url(url)
    try:
        admin = await asyncio.wait_for(
            asyncpg.connect(
                host=target.host or "127.0.0.1", port=target.port or 5432,
                user=target.username or "postgres", password=target.password, database="postgres",
            ),
            5,
        )  # fmt: skip
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL at {url} unreachable ({exc!r}): skipped")
        return None
    try:
        if not await admin.fetchval(
            "select 1 from pg_database where datname = $1", target.database
        ):
            await admin.execute(f'create database "{target.database}"')
    finally:
        await admin.close()
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await migrate.upgrade(db)
    return db


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=PG_DEFAULT, help="a PostgreSQL URL, or 'none'")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    rows = build(args.conversations, args.days)
    print(
        f"data: {len(rows['conversations'])} conversations, {len(rows['messages'])} messages, "
        f"{len(rows['conversation_events'])} events over {args.days} days "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    tune_gc()  # the collector as the running app sets it (supportbot/app.py), not the default
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        await migrate.upgrade(db)
        started = time.perf_counter()
        await fill(db, rows)
        print(f"SQLite: seeded in {time.perf_counter() - started:.1f} s")
        await bench(db, "SQLite", args.repeat)
        await bench_stall(db)
        await db.dispose()
    if args.pg != "none":
        pg = await fresh_pg(args.pg)
        if pg is not None:
            started = time.perf_counter()
            await fill(pg, rows)
            async with pg.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
            print(f"PostgreSQL: seeded in {time.perf_counter() - started:.1f} s")
            await bench(pg, "PostgreSQL", args.repeat)
            await pg.dispose()


if __name__ == "__main__":
    asyncio.run(main())
