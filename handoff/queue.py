"""The operator queue: putting a chat in line for a skill group and telling the subscriber where
they stand and how long they will honestly wait.

`HandoffQueue.escalate` is what the dialog engine calls on `handoff: <group>` (it implements
`dialogs.responder.Escalator`): in the conversation's own transaction the chat becomes `queued`
for the group and the subscriber is told one of: an operator is joining now (a seat is free:
`queue_next`), their position and expected wait (`queue_position`), that nobody of the group is
at work right now and the line's hours (`queue_offline`), or, outside the group's working hours,
when operators are back (`after_hours`). A request coming from the bot (a first one, or one after
"return to bot") is a new queue entry: `queued_at`, `first_response_at` and the misses start
afresh, so waits and SLA figures count it on its own; a transfer keeps the entry.
`estimate` is the queue model; `updates` finds the waiting subscribers to tell again.

The model (M/M/c from the position): with `free` free seats the first `free` chats in line are
taken at once; the chat at position p > free needs k = p - free chats to end first. With every
seat busy, chats end at rate seats / h (h: the group's recent mean handling time, assigned ->
closed over the last 50 chats; 5 min with no history), so the wait for a seat is Erlang(k,
seats/h). The subscriber is told its 15th-85th percentile range, plus the time the group
recently took from a chat's first offer to an operator to the first reply, misses and re-offers
included (its 15th/85th percentile over the last 50 answered chats; 5-30 s with little history). Shown as whole minutes (rounded
outwards) or "меньше минуты": no fixed minute is added. bench/queue_sim.py measures how often
the upper end is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.content import Content
from dialogs.messages import Outbound
from dialogs.responses import ContentSource, render
from handoff.config import HandoffSettings
from handoff.hours import Hours
from storage import repo
from storage.db import note_event
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationState,
    Operator,
    OperatorStatus,
    utcnow,
)

DEFAULT_HANDLE_SECONDS = 300.0
DEFAULT_JOIN_SECONDS = (5.0, 30.0)  # no history: from being assigned to the first reply
HISTORY = 50
MIN_HISTORY = 5  # fewer recent answers than this: the default join time
LOW, HIGH = 0.15, 0.85  # the range told: most waits fall inside it
TELL_EVERY = 60.0  # seconds: a waiting subscriber hears an update at most this often
HANDOFF_STATES = (ConversationState.QUEUED, ConversationState.WITH_OPERATOR)


@dataclass(frozen=True, slots=True)
class Model:
    """One group's state for the estimate: seats of online operators, free seats, operators
    online, the recent mean handling time and the join time's (low, high) percentiles."""

    seats: int
    free: int
    online: int
    handle_s: float
    join_s: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Estimate:
    position: int  # 1 = next
    operators_online: int
    free_seats: int
    low_s: float | None  # the wait's range (None: nobody online to estimate from)
    high_s: float | None

    @property
    def mode(self) -> str:
        """'offline' (nobody of the group at work), 'joining' (a seat is free) or 'waiting'."""
        if self.operators_online == 0:
            return "offline"
        return "joining" if self.position <= self.free_seats else "waiting"

    @property
    def told_s(self) -> float | None:
        """The upper end as the subscriber reads it (whole minutes, or 60 s for «меньше
        минуты»): the promise bench/queue_sim.py checks."""
        if self.high_s is None:
            return None
        return 60.0 * max(1, math.ceil(self.high_s / 60))

    @property
    def wait(self) -> str:
        """The expected wait in Russian: «меньше минуты», «до 3 мин», «2–4 мин», «около 5 мин»."""
        if self.high_s is None or self.low_s is None:
            return "пока не знаю сколько"
        high = max(1, math.ceil(self.high_s / 60))
        if high == 1:
            return "меньше минуты"
        low = math.floor(self.low_s / 60)
        if low < 1:
            return f"до {high} мин"
        return f"около {high} мин" if low >= high else f"{low}–{high} мин"

    @property
    def eta_minutes(self) -> int | None:
        told = self.told_s
        return None if told is None else int(told // 60)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "mode": self.mode,
            "wait": self.wait,
            "eta_minutes": self.eta_minutes,
            "eta_s": None if self.high_s is None else round(self.high_s),
            "told_s": self.told_s,
            "operators_online": self.operators_online,
        }


def erlang_quantile(k: int, rate: float, q: float) -> float:
    """The q-quantile of the time until k events of a Poisson process with `rate` (Erlang)."""
    if k <= 0:
        return 0.0
    if k > 150:  # normal approximation: mean k/rate, sd sqrt(k)/rate
        z = math.sqrt(2) * _erfinv(2 * q - 1)
        return max(0.0, (k + z * math.sqrt(k)) / rate)

    def cdf(t: float) -> float:
        x = rate * t
        term, total = 1.0, 1.0
        for i in range(1, k):
            term *= x / i
            total += term
        return 1.0 - math.exp(-x) * total

    lo, hi = 0.0, (k + 10 * math.sqrt(k) + 10) / rate
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def _erfinv(y: float) -> float:
    """Inverse error function by Newton's method (for the normal approximation)."""
    x = 0.0
    for _ in range(50):
        err = math.erf(x) - y
        x -= err / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def _offered_at(slots: Any) -> datetime | None:
    raw = slots.get("_offered_at") if isinstance(slots, dict) else None
    try:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class HandoffQueue:
    def __init__(
        self,
        content: ContentSource,
        settings: HandoffSettings,
        clock: Any = utcnow,
        *,
        groups: list[str] | None = None,
    ):
        self.content = content
        self.settings = settings
        self.clock = clock
        self.groups = (
            list(groups) if groups is not None else ["consult", "tech", "finance", "complaints"]
        )
        self._hours = {
            group: Hours.parse(spec, settings.timezone) for group, spec in settings.hours.items()
        }

    def hours(self, group: str) -> Hours:
        return self._hours.get(group) or Hours.parse("", self.settings.timezone)

    async def escalate(
        self,
        session: AsyncSession,
        conv: Conversation,
        account: ChannelAccount,
        *,
        group: str,
        reason: str,
        note: str | None = None,
    ) -> list[Outbound]:
        """Queue the chat for `group`; returns what to tell the subscriber."""
        now = self.clock()
        new_entry = conv.state not in HANDOFF_STATES  # from the bot: a new request
        data = {"group": group, "reason": reason, **({"note": note} if note else {})}
        await repo.set_state(session, conv, ConversationState.QUEUED, kind="escalated", data=data)
        conv.skill_group = group
        if new_entry or conv.queued_at is None:
            conv.queued_at = now
            conv.first_response_at = None
            conv.operator_replied_at = None
            conv.declined_by = []
            conv.priority = 0
            conv.slots = {k: v for k, v in conv.slots.items() if k != "_offered_at"}
        conv.handoff_reason = reason[:200]
        conv.operator_id = None
        conv.assigned_at = None
        await session.flush()
        note_event(session, {"type": "queued", "conversation_id": conv.id, "group": group})
        content = self.content.current
        hours = self.hours(group)
        if not hours.is_open(now):
            conv.slots = {**conv.slots, "_queue_told": {"mode": "closed", "at": now.isoformat()}}
            scope = {**_scope(account), "queue": {"returns": hours.describe_return(now)}}
            return [render(content.responses["after_hours"], scope, account.channel)]
        estimate = await self.estimate(session, conv)
        self._told(conv, estimate, now)
        return [self._say(content, _RESPONSE[estimate.mode], estimate, account, group, now)]

    def _told(self, conv: Conversation, estimate: Estimate, now: datetime) -> None:
        conv.slots = {**conv.slots, "_queue_told": {**estimate.to_json(), "at": now.isoformat()}}

    def _say(
        self,
        content: Content,
        name: str,
        estimate: Estimate,
        account: ChannelAccount,
        group: str,
        now: datetime,
    ) -> Outbound:
        hours = self.hours(group)
        queue = {**estimate.to_json(), "hours": hours.describe_today(now)}
        scope = {**_scope(account), "queue": queue}
        return render(content.responses[name], scope, account.channel)

    async def estimate(self, session: AsyncSession, conv: Conversation) -> Estimate:
        group = conv.skill_group or ""
        ahead = await session.scalar(
            select(func.count(Conversation.id)).where(
                Conversation.state == ConversationState.QUEUED,
                Conversation.skill_group == group,
                Conversation.id != conv.id,
                (Conversation.priority > conv.priority)
                | (
                    (Conversation.priority == conv.priority)
                    & (
                        (Conversation.queued_at < conv.queued_at)
                        | ((Conversation.queued_at == conv.queued_at) & (Conversation.id < conv.id))
                    )
                ),
            )
        )
        return await self._estimate(session, group, int(ahead or 0) + 1)

    async def model(self, session: AsyncSession, group: str) -> Model:
        seats, free, online = await self.capacity(session, group)
        handle = await self.average_handle_seconds(session, group)
        return Model(seats, free, online, handle, await self.join_seconds(session, group))

    async def _estimate(
        self,
        session: AsyncSession,
        group: str,
        position: int,
        cache: dict[str, Model] | None = None,
    ) -> Estimate:
        m = cache.get(group) if cache is not None else None
        if m is None:
            m = await self.model(session, group)
            if cache is not None:
                cache[group] = m
        return estimate_wait(m, position)

    async def capacity(self, session: AsyncSession, group: str) -> tuple[int, int, int]:
        """(seats, free seats, operators) of the group's online operators."""
        ops = [
            op
            for op in (
                await session.scalars(
                    select(Operator).where(Operator.status == OperatorStatus.ONLINE)
                )
            ).all()
            if group in op.groups
        ]
        if not ops:
            return 0, 0, 0
        loads = dict(
            (
                await session.execute(
                    select(Conversation.operator_id, func.count(Conversation.id))
                    .where(
                        Conversation.state == ConversationState.WITH_OPERATOR,
                        Conversation.operator_id.in_([op.id for op in ops]),
                    )
                    .group_by(Conversation.operator_id)
                )
            ).all()
        )
        seats = sum(op.max_chats for op in ops)
        free = sum(max(0, op.max_chats - int(loads.get(op.id, 0))) for op in ops)
        return seats, free, len(ops)

    async def average_handle_seconds(self, session: AsyncSession, group: str) -> float:
        rows = (
            await session.execute(
                select(Conversation.assigned_at, Conversation.closed_at)
                .where(
                    Conversation.skill_group == group,
                    Conversation.assigned_at.is_not(None),
                    Conversation.closed_at.is_not(None),
                )
                .order_by(Conversation.closed_at.desc())
                .limit(HISTORY)
            )
        ).all()
        spans = [(c - a).total_seconds() for a, c in rows if a is not None and c is not None]
        return sum(spans) / len(spans) if spans else DEFAULT_HANDLE_SECONDS

    async def join_seconds(self, session: AsyncSession, group: str) -> tuple[float, float]:
        """(low, high) percentiles of the recent time from a chat's first offer to an operator
        to the first reply (misses and re-offers included)."""
        rows = (
            await session.execute(
                select(Conversation.assigned_at, Conversation.first_response_at, Conversation.slots)
                .where(
                    Conversation.skill_group == group,
                    Conversation.assigned_at.is_not(None),
                    Conversation.first_response_at.is_not(None),
                )
                .order_by(Conversation.first_response_at.desc())
                .limit(HISTORY)
            )
        ).all()
        lags = []
        for assigned, first, slots in rows:
            offered = _offered_at(slots) or assigned
            if first is not None and offered is not None:
                lag = (_aware(first) - _aware(offered)).total_seconds()
                if lag >= 0:
                    lags.append(lag)
        if len(lags) < MIN_HISTORY:
            return DEFAULT_JOIN_SECONDS
        return _percentile(lags, LOW), _percentile(lags, HIGH)

    async def updates(self, session: AsyncSession) -> list[tuple[Conversation, Outbound]]:
        """Waiting subscribers to tell again, at most once a minute each: moved up by 2+
        places, became next in line, the expected wait changed a lot (by half and at least
        2 min), or operators of the group came online or all left. Stores what was told."""
        content = self.content.current
        now = self.clock()
        queued = (
            await session.scalars(
                select(Conversation)
                .where(Conversation.state == ConversationState.QUEUED)
                .order_by(
                    Conversation.skill_group,
                    Conversation.priority.desc(),
                    Conversation.queued_at,
                    Conversation.id,
                )
            )
        ).all()
        out: list[tuple[Conversation, Outbound]] = []
        positions: dict[str, int] = {}
        models: dict[str, Model] = {}  # one model per group
        for conv in queued:
            group = conv.skill_group or ""
            positions[group] = positions.get(group, 0) + 1
            if not self.hours(group).is_open(now):
                continue
            estimate = await self._estimate(session, group, positions[group], models)
            told = conv.slots.get("_queue_told") or {}
            if not told:
                self._told(conv, estimate, now)
                continue
            if estimate.mode == "joining":
                continue  # assignment is a moment away: "оператор подключился" comes next
            if not _worth_telling(told, estimate, now):
                continue
            account = await session.get(ChannelAccount, conv.channel_account_id)
            if account is None:
                continue
            self._told(conv, estimate, now)
            name = "queue_offline" if estimate.mode == "offline" else "queue_update"
            out.append((conv, self._say(content, name, estimate, account, group, now)))
        return out


_RESPONSE = {"offline": "queue_offline", "joining": "queue_next", "waiting": "queue_position"}


def estimate_wait(m: Model, position: int) -> Estimate:
    """The wait of the chat at `position` in a group in state `m` (the model: module doc)."""
    if m.online == 0 or m.seats == 0:
        return Estimate(position, m.online, m.free, None, None)
    k = position - m.free
    rate = m.seats / max(m.handle_s, 1.0)
    low = erlang_quantile(k, rate, LOW) + m.join_s[0]
    high = erlang_quantile(k, rate, HIGH) + m.join_s[1]
    return Estimate(position, m.online, m.free, low, high)


def _worth_telling(told: dict[str, Any], estimate: Estimate, now: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(told.get("at")))
    except ValueError:
        at = None
    if at is not None and (now - at).total_seconds() < TELL_EVERY:
        return False
    was_mode = told.get("mode", "waiting")
    if was_mode != estimate.mode:
        return True
    if estimate.mode == "offline":
        return False
    was = int(told.get("position", estimate.position))
    if was - estimate.position >= 2 or (estimate.position == 1 and was > 1):
        return True
    old, new = told.get("told_s"), estimate.told_s
    if old is None or new is None:
        return False
    return abs(float(old) - new) >= max(120.0, 0.5 * float(old))


def _scope(account: ChannelAccount) -> dict[str, Any]:
    return {"first_name": account.first_name or "друг", "channel": account.channel}
