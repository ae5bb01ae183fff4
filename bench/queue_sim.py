"""Queue simulation: the real operators' desk against queueing theory, on a simulated clock.

Subscribers arrive as a Poisson process (rate --arrivals per hour) and ask for an operator; the
real `HandoffQueue.escalate` queues each chat and says what to tell them (that promise is kept
from `_queue_told`); the real `Desk` assigns, re-offers missed chats and tells positions, on
SQLite (or PostgreSQL with --pg URL). c operators (--operators, --seats chats each) answer an
assigned chat after 3..20 s, or, with probability --miss, never (the desk takes it back after
`missed_after` = 60 s, checked every 5 s as the app's worker does); a chat is handled for an
exponential time (mean --handle s) from its assignment, then closed. The desk and the queue run
on the simulated clock (`clock=`), so hours of traffic take seconds; every desk call is a real
transaction on the database.

Printed:
- mean wait for a seat (arrival -> the assignment that was answered) and the first response,
  vs a perfect FCFS M/M/c queue fed the same arrivals and handling times, and vs Erlang C's
  mean wait in queue for the same lambda, mu, c (one run's sample differs from the formula;
  misses make ours longer: a missed chat holds a seat for a minute);
- ETA kept %: of the answered chats, the share whose first reply came within the wait they were
  told at arrival (the upper end of «2–4 мин», 1 min for «меньше минуты»/«уже подключается»);
- missed offers, chats offered again after every online operator missed them, position updates;
- stuck chats: waiting more than 5 s while an operator who may take them (online, a free seat,
  hasn't missed it, or every online operator missed it) was free. Must be 0.

    .venv/bin/python bench/queue_sim.py [--arrivals 50] [--operators 3] [--seats 1]
        [--handle 180] [--miss 0.1] [--chats 1000] [--seed 1] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handoff.auth import add_operator  # noqa: E402
from handoff.config import HandoffSettings  # noqa: E402
from handoff.desk import Desk  # noqa: E402
from handoff.queue import HandoffQueue  # noqa: E402
from storage import migrate, repo  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Conversation, ConversationState, Operator  # noqa: E402
from tests.support import content_source  # noqa: E402

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, 10:00 in Moscow
WORKER_SLOW = 5.0  # the app's worker checks missed chats every 5 s
STUCK_AFTER = 5.0
GIVE_UP = 4 * 3600.0  # the run ends this long after the last arrival even if chats still wait


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> datetime:
        return START + timedelta(seconds=self.t)


@dataclass
class Chat:
    arrived: float
    told_s: float | None
    mode: str
    assigned: float | None = None
    answered: float | None = None
    stuck_since: float | None = None
    stuck: bool = False
    offers: list[int] = field(default_factory=list)


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C), seconds; inf when overloaded."""
    a = lam / mu
    if a >= c:
        return math.inf
    top = a**c / math.factorial(c) * c / (c - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def ideal_fcfs_wait(arrivals: list[float], services: list[float], c: int) -> float:
    """Mean wait of a perfect first-come-first-served queue with c seats, no platform delay."""
    free = [0.0] * c
    waits = []
    for arrived, service in zip(arrivals, services, strict=True):
        seat = heapq.heappop(free)
        start = max(arrived, seat)
        waits.append(start - arrived)
        heapq.heappush(free, start + service)
    return statistics.fmean(waits)


async def fresh_db(pg: str | None, tmp: str) -> Database:
    if pg is None:
        db = Database(f"sqlite:///{tmp}/sim.db")
    else:
        db = Database(pg)
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await migrate.upgrade(db)
    return db


async def simulate(args: argparse.Namespace, db: Database) -> None:
    rnd = random.Random(args.seed)
    clock = SimClock()
    settings = HandoffSettings(hours={}, max_chats=args.seats)
    content = content_source()
    queue = HandoffQueue(content, settings, clock=clock)
    desk = Desk(db, queue, content, settings, clock=clock)
    ops = []
    async with db.transaction() as s:
        for i in range(args.operators):
            op = await add_operator(
                s, login=f"op{i}", name=f"Оператор {i}", password="sim-password",
                groups=["consult"], max_chats=args.seats,
            )  # fmt: skip
            ops.append(op.id)
    for op_id in ops:
        await desk.set_status(op_id, "online")

    lam = args.arrivals / 3600.0
    chats: dict[int, Chat] = {}
    events: list[tuple[float, int, str, int]] = []  # (time, seq, kind, conv id / n)
    seq = 0

    def at(t: float, kind: str, ref: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, ref))

    t = 0.0
    arrivals, services = [], []  # drawn up front: the ideal queue below gets the same ones
    for n in range(args.chats):
        t += rnd.expovariate(lam)
        arrivals.append(t)
        services.append(rnd.expovariate(1.0 / args.handle))
        at(t, "arrive", n)
    last_arrival = t
    service_of: dict[int, float] = {}
    at(WORKER_SLOW, "slow")
    misses = updates = 0
    closed = 0

    async def assign() -> None:
        for a in await desk.assign_waiting():
            chat = chats[a.conversation_id]
            chat.offers.append(a.operator_id)
            if chat.stuck_since is not None and clock.t - chat.stuck_since > STUCK_AFTER:
                chat.stuck = True
            chat.stuck_since = None
            if rnd.random() < args.miss:
                continue  # never answered: the desk takes it back after missed_after
            reply = clock.t + rnd.uniform(3.0, 20.0)
            at(reply, "reply", a.conversation_id)

    async def watch_stuck() -> None:
        """Mark queued chats an operator free to take them is not taking."""
        async with db.session() as s:
            queued = (
                await s.scalars(
                    select(Conversation).where(Conversation.state == ConversationState.QUEUED)
                )
            ).all()
            loads = dict(
                (
                    await s.execute(
                        select(Conversation.operator_id, func.count(Conversation.id))
                        .where(Conversation.state == ConversationState.WITH_OPERATOR)
                        .group_by(Conversation.operator_id)
                    )
                ).all()
            )
            online = (await s.scalars(select(Operator.id).where(Operator.status == "online"))).all()
        free = {op for op in online if loads.get(op, 0) < args.seats}
        for conv in queued:
            declined = set(conv.declined_by)
            may = free if set(online) <= declined else free - declined
            chat = chats[conv.id]
            if not may:
                chat.stuck_since = None
            elif chat.stuck_since is None:
                chat.stuck_since = clock.t
            elif clock.t - chat.stuck_since > STUCK_AFTER:
                chat.stuck = True

    started = time.perf_counter()
    while events:
        clock.t, _, kind, ref = heapq.heappop(events)
        if kind == "arrive":
            async with db.transaction() as s:
                account = await repo.get_or_create_account(
                    s, channel="telegram", user_id=f"sim{ref}", chat_id=f"sim{ref}",
                    first_name="Абонент",
                )  # fmt: skip
                conv, _ = await repo.open_conversation(s, account)
                await queue.escalate(s, conv, account, group="consult", reason="sim")
                told = conv.slots.get("_queue_told") or {}
                chats[conv.id] = Chat(clock.t, told.get("told_s"), str(told.get("mode")))
                service_of[conv.id] = services[ref]
        elif kind == "reply":
            chat = chats[ref]
            async with db.session() as s:
                row = await s.get(Conversation, ref)
                assert row is not None and row.assigned_at is not None
                owner, state = row.operator_id, row.state
                assigned = (row.assigned_at.replace(tzinfo=UTC) - START).total_seconds()
            if state != ConversationState.WITH_OPERATOR or owner is None:
                continue
            chat.assigned, chat.answered = assigned, clock.t
            await desk.reply(owner, ref, "Здравствуйте! Смотрю ваш вопрос.")
            handled = assigned + service_of[ref]
            at(max(clock.t + 0.5, handled), "close", ref)
        elif kind == "close":
            async with db.session() as s:
                row = await s.get(Conversation, ref)
                assert row is not None
                owner = row.operator_id
            if owner is not None:
                await desk.close(owner, ref, "solved")
                closed += 1
        elif kind == "slow":
            found = await desk.missed()
            misses += len(found)
            updates += await desk.tell_positions()
            if closed < args.chats and clock.t < last_arrival + GIVE_UP:
                at(clock.t + WORKER_SLOW, "slow")
        await assign()
        await watch_stuck()
    offered_again = await _offered_again(db)
    elapsed = time.perf_counter() - started

    answered = [c for c in chats.values() if c.answered is not None]
    seat_waits = [c.assigned - c.arrived for c in answered if c.assigned is not None]
    first = [c.answered - c.arrived for c in answered if c.answered is not None]
    told = [c for c in answered if c.told_s is not None]
    kept = sum(1 for c in told if c.answered is not None and c.answered - c.arrived <= c.told_s)
    stuck = sum(1 for c in chats.values() if c.stuck)
    mu = 1.0 / args.handle
    erlang = erlang_c_wait(lam, mu, args.operators * args.seats)
    ideal = ideal_fcfs_wait(arrivals, services, args.operators * args.seats)
    rho = lam / (mu * args.operators * args.seats)
    print(
        f"queue_sim: {len(chats)} chats, lambda {args.arrivals}/h, mean handling {args.handle:.0f} s,"
        f" c = {args.operators} x {args.seats} seats, load {rho:.2f}, miss {args.miss:.0%},"
        f" {'PostgreSQL' if args.pg else 'SQLite'}; {elapsed:.1f} s real for"
        f" {clock.t / 3600:.1f} h simulated"
    )
    print(
        f"  mean wait for a seat {statistics.fmean(seat_waits):.1f} s"
        f" (ideal FCFS M/M/c on the same arrivals and handling times {ideal:.1f} s,"
        f" Erlang C {erlang:.1f} s); mean first response {statistics.fmean(first):.1f} s,"
        f" p90 {_pct(first, 0.9):.0f} s; answered {len(answered)}/{len(chats)}"
    )
    modes = {m: sum(1 for c in chats.values() if c.mode == m) for m in ("joining", "waiting")}
    print(
        f"  ETA kept {100.0 * kept / max(1, len(told)):.1f}% ({kept}/{len(told)});"
        f" told «уже подключается» {modes['joining']}, a range {modes['waiting']};"
        f" median told {statistics.median([c.told_s for c in told if c.told_s]):.0f} s"
        f" vs median first response {statistics.median(first):.0f} s"
    )
    print(
        f"  missed offers {misses}; offered again after every operator missed {offered_again};"
        f" position updates {updates}; stuck chats {stuck}"
    )


async def _offered_again(db: Database) -> int:
    async with db.session() as s:
        return int(
            await s.scalar(
                text("select count(*) from conversation_events where kind = 'offered_again'")
            )
            or 0
        )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=float, default=50.0, help="chats per hour")
    parser.add_argument("--operators", type=int, default=3)
    parser.add_argument("--seats", type=int, default=1, help="chats at once per operator")
    parser.add_argument("--handle", type=float, default=180.0, help="mean handling time, s")
    parser.add_argument("--miss", type=float, default=0.1, help="probability to miss an offer")
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (its schema is DROPPED)")
    args = parser.parse_args()
    if not 0 <= args.miss < 1:
        parser.error("--miss must be in [0, 1)")
    with tempfile.TemporaryDirectory() as tmp:
        db = await fresh_db(args.pg, tmp)
        try:
            await simulate(args, db)
        finally:
            await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
