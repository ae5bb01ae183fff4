"""Service analytics for supervisors: how much the bot solves by itself, how well it understands,
why chats reach operators, and the operators' service levels, per day, channel and skill group.
Computed from the stored messages, conversation events and ratings (no counters of its own).
The console's analytics page (handoff/console/analytics_page.py) shows these figures with the same
definitions in Russian; the supervisor's "today" figures (handoff/console/stats.py) are
`operator_figures` for today, so both pages always agree.

Definitions. Days are calendar days in `handoff.timezone`; a period is whole days, both ends
included.
- A message **the bot answered**: a subscriber message stored with a bot reply in the same turn.
  The pipeline (dialogs/pipeline.py) inserts a subscriber message and the replies of its turn in
  one statement with one `created_at`, and only the bot (or the rating step) replies there; so
  messages to a queued chat or an operator (no bot reply) and rating answers (written after the
  chat's `closed_at`) are not the bot's. Button presses and media count too. (One known
  exception: when a linked subscriber's queued chat follows them to the channel they now write
  in, the «продолжим здесь» notice is a reply of that turn, so that one message counts.)
- **Contact** (обращение): a conversation on a day its subscriber wrote to the bot (at least one
  message the bot answered that day), per channel the messages were written in. A bot
  conversation stays open until an operator closes it, so one conversation can span weeks: the
  day is the unit, not the conversation.
- **Handed off**: a contact whose conversation got an "escalated" event that same day (the bot,
  the subscriber or a transfer put it in an operator queue). **Contained** = the other contacts.
  **Containment** = contained / contacts.
- **Fallback rate**: of the texts the bot answered that went through the NLU (`nlu.intent` set;
  commands like /start and button presses excluded), the share marked `nlu.handled_as = "miss"`
  (the bot said it did not understand, offered guesses, or gave up).
- **Top intents**: those same texts that were requests: not a miss, not an answer to a form's
  question (`handled_as = "form:<slot>"`), not "cancel"; counted by NLU intent.
- **Top fallback texts**: the texts of misses, lowercased with whitespace collapsed, by count: the
  raw material for new training examples.
- **Handoff reasons**: every "escalated" event of the period (transfers between groups included)
  by its `reason` and the group it was sent to.
- Operator figures (the same as the supervisor's "today"):
  - **timely first response**: of the chats whose first operator reply came that day, the share
    whose wait was at most `first_response_target`; the wait runs from the chat's last handoff
    by the bot before that reply (its "escalated" event from the bot; `queued_at` if there is
    none) to `first_response_at`. Not `queued_at` itself: a transfer to another group restarts
    it. **Average first response** is the mean wait;
  - **response inside the session**: after a chat's first operator reply, the time from a
    subscriber message (the earliest unanswered one) to the next operator reply, on the day of
    the reply;
  - **missed**: chats with a "missed" event that day (the assigned operator did not answer in
    time) / chats assigned to an operator that day (auto-assigned, taken, transferred to a
    person), each chat counted once a day;
  - **CSAT**: of the chats closed that day and rated, the share of 4-5 scores, and the average;
    **NPS**: of the NPS answers of chats closed that day, % promoters (9-10) minus % detractors
    (0-6).
- **Group**: operator figures and handed-off contacts belong to a skill group (operator figures:
  the chat's current group; handed-off contacts and handoff reasons: the group the chat was
  sent to). What the bot did by itself (contained contacts, fallback rate, intents, fallback
  texts) belongs to no group (`None`, filter value `NO_GROUP`).
Totals are sums of the rows' counts, so a chat assigned on two days counts on both.

Cost: the messages of the period are read once (one statement over a materialized CTE; the NLU
JSON is the expensive part), everything else is aggregated in SQL or reads handed-off chats
only. bench/analytics.py measures it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    String,
    case,
    exists,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
)

NO_GROUP = "none"  # the group filter for what the bot did by itself
TOP = 10
MISS = "miss"
Cell = tuple[date, str, str | None]  # (day, channel, group)


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def mean(total: float, n: int, digits: int = 1) -> float | None:
    return round(total / n, digits) if n else None


@dataclass(slots=True)
class Figures:
    """Counts and sums of one cell (or a total); the rates are derived from them."""

    contacts: int = 0
    handed_off: int = 0
    bot_texts: int = 0
    misses: int = 0
    first_responses: int = 0
    timely: int = 0
    first_response_total_s: float = 0.0
    session_responses: int = 0
    session_response_total_s: float = 0.0
    assigned: int = 0
    missed: int = 0
    rated: int = 0
    csat_good: int = 0
    csat_total: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def total(cls, parts: Iterable[Figures]) -> Figures:
        out = cls()
        for part in parts:
            out.add(part)
        return out

    @property
    def contained(self) -> int:
        return self.contacts - self.handed_off

    @property
    def containment_pct(self) -> float | None:
        return pct(self.contained, self.contacts)

    @property
    def fallback_pct(self) -> float | None:
        return pct(self.misses, self.bot_texts)

    @property
    def timely_pct(self) -> float | None:
        return pct(self.timely, self.first_responses)

    @property
    def avg_first_response_s(self) -> float | None:
        return mean(self.first_response_total_s, self.first_responses)

    @property
    def avg_response_in_session_s(self) -> float | None:
        return mean(self.session_response_total_s, self.session_responses)

    @property
    def missed_pct(self) -> float | None:
        return pct(self.missed, self.assigned)

    @property
    def csat_pct(self) -> float | None:
        return pct(self.csat_good, self.rated)

    @property
    def csat_avg(self) -> float | None:
        return mean(self.csat_total, self.rated, 2)

    @property
    def nps(self) -> float | None:
        return pct(self.promoters - self.detractors, self.nps_answers)

    def to_json(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "contained": self.contained,
            "handed_off": self.handed_off,
            "containment_pct": self.containment_pct,
            "bot_texts": self.bot_texts,
            "misses": self.misses,
            "fallback_pct": self.fallback_pct,
            "first_responses": self.first_responses,
            "timely": self.timely,
            "timely_first_response_pct": self.timely_pct,
            "avg_first_response_s": self.avg_first_response_s,
            "responses_in_session": self.session_responses,
            "avg_response_in_session_s": self.avg_response_in_session_s,
            "assigned": self.assigned,
            "missed": self.missed,
            "missed_pct": self.missed_pct,
            "rated": self.rated,
            "csat_pct": self.csat_pct,
            "csat_avg": self.csat_avg,
            "nps_answers": self.nps_answers,
            "promoters": self.promoters,
            "detractors": self.detractors,
            "nps": self.nps,
        }


@dataclass(frozen=True, slots=True)
class Row:
    day: date
    channel: str
    group: str | None  # None: the bot by itself
    figures: Figures

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "channel": self.channel,
            "group": self.group,
            **self.figures.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Count:
    key: str  # an intent, a normalised text
    count: int


@dataclass(frozen=True, slots=True)
class Reason:
    reason: str
    group: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days `first`..`last` and their UTC bounds [since, until)."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def since(self) -> datetime:
        return local_midnight(self.first, self.tz)

    @property
    def until(self) -> datetime:
        return local_midnight(self.last + timedelta(days=1), self.tz)

    def day_of(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    channel: str | None  # None: every channel
    group: str | None  # None: every group; NO_GROUP: the bot's own work
    first_response_target: float
    rows: list[Row]  # one per day x channel x group that had anything, in that order
    top_intents: list[Count]
    top_fallback_texts: list[Count]
    handoff_reasons: list[Reason]
    handoffs: int = 0  # "escalated" events behind handoff_reasons (the list is cut at TOP)
    totals: Figures = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "totals", Figures.total(r.figures for r in self.rows))

    def by_day(self) -> list[tuple[date, Figures]]:
        """Every day of the period (empty days too: the charts need them)."""
        out = {d: Figures() for d in self.period.days}
        for r in self.rows:
            out[r.day].add(r.figures)
        return list(out.items())

    def by_channel(self) -> list[tuple[str, Figures]]:
        out: dict[str, Figures] = defaultdict(Figures)
        for r in self.rows:
            out[r.channel].add(r.figures)
        return sorted(out.items())

    def by_group(self) -> list[tuple[str | None, Figures]]:
        out: dict[str | None, Figures] = defaultdict(Figures)
        for r in self.rows:
            out[r.group].add(r.figures)
        return sorted(out.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {
                "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(),
                "timezone": self.period.tz.key,
                "since": self.period.since.isoformat(),
                "until": self.period.until.isoformat(),
            },
            "filters": {"channel": self.channel, "group": self.group},
            "first_response_target_s": self.first_response_target,
            "totals": self.totals.to_json(),
            "days": [{"day": d.isoformat(), **f.to_json()} for d, f in self.by_day()],
            "channels": [{"channel": c, **f.to_json()} for c, f in self.by_channel()],
            "groups": [{"group": g, **f.to_json()} for g, f in self.by_group()],
            "rows": [r.to_json() for r in self.rows],
            "top_intents": [{"intent": c.key, "count": c.count} for c in self.top_intents],
            "top_fallback_texts": [
                {"text": c.key, "count": c.count} for c in self.top_fallback_texts
            ],
            "handoff_reasons": [
                {"reason": r.reason, "group": r.group, "count": r.count}
                for r in self.handoff_reasons
            ],
            "handoffs": self.handoffs,
        }


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


async def service_report(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    timezone: str,
    first_response_target: float,
    channel: str | None = None,
    group: str | None = None,
    top: int = TOP,
) -> Report:
    """The figures of local days `start`..`end` (both included), optionally of one channel and
    one group (`NO_GROUP`: the bot's own work)."""
    if end < start:
        raise ValueError("the period ends before it starts")
    period = Period(start, end, ZoneInfo(timezone))
    cells: dict[Cell, Figures] = defaultdict(Figures)

    def wanted(g: str | None) -> bool:
        return group is None or g == (None if group == NO_GROUP else group)

    bot_side = wanted(None)
    escalations = await _escalations(session, period)
    work = await _bot_figures(session, period, channel, escalations, cells, bot_side=bot_side)
    operator = await operator_figures(
        session, period, first_response_target=first_response_target, channel=channel
    )
    for cell, figures in operator.items():
        cells[cell].add(figures)

    rows = [
        Row(day, ch, g, f)
        for (day, ch, g), f in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] is not None, kv[0][2] or "")
        )
        if wanted(g)
    ]
    reasons = Counter(
        (e.reason, e.group) for e in escalations if wanted(e.group) and channel in (None, e.channel)
    )
    return Report(
        period=period,
        channel=channel,
        group=group,
        first_response_target=first_response_target,
        rows=rows,
        top_intents=_top(work.intents, top) if bot_side else [],
        top_fallback_texts=_top(work.miss_texts, top) if bot_side else [],
        handoff_reasons=[
            Reason(reason, g, n)
            for (reason, g), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0][0]))[:top]
        ],
        handoffs=sum(reasons.values()),
    )


# -- the bot's own work ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Escalation:
    conversation_id: int
    day: date
    channel: str  # the conversation's
    group: str | None  # where it was sent
    reason: str


async def _escalations(session: AsyncSession, period: Period) -> list[_Escalation]:
    """The period's "escalated" events, oldest first."""
    e, c = ConversationEvent, Conversation
    query = (
        select(
            e.conversation_id,
            e.at,
            e.data["group"].as_string(),
            e.data["reason"].as_string(),
            c.channel,
            c.skill_group,
        )
        .join(c, c.id == e.conversation_id)
        .where(e.kind == "escalated", e.at >= period.since, e.at < period.until)
        .order_by(e.at, e.id)
    )
    return [
        _Escalation(
            conversation_id=int(conv_id),
            day=period.day_of(at),
            channel=str(channel),
            group=sent_to or current_group or None,
            reason=reason or "—",
        )
        for conv_id, at, sent_to, reason, channel, current_group in (
            await session.execute(query)
        ).all()
    ]


def _bot_answered(
    session: AsyncSession, period: Period, channel: str | None, *, escalated_only: Any = None
) -> Any:
    """Subscriber messages of the period the bot answered (the turn rule in the module
    docstring), as a materialized CTE: cid, day, channel, text, intent, handled_as. Read once,
    with each JSON field extracted once per row (the costly part), by every aggregate below.
    `escalated_only`: a select of conversation ids; then just cid, day, channel of those."""
    m, c, reply = Message, Conversation, aliased(Message)
    written_in = func.coalesce(m.channel, c.channel)
    columns = [
        m.conversation_id.label("cid"),
        local_day(session, m.created_at, period).label("day"),
        written_in.label("channel"),
    ]
    if escalated_only is None:
        columns += [
            m.text.label("text"),
            m.nlu["intent"].as_string().label("intent"),
            m.nlu["handled_as"].as_string().label("handled_as"),
        ]
    query = (
        select(*columns)
        .join(c, c.id == m.conversation_id)
        .where(
            m.author == Author.SUBSCRIBER,
            m.created_at >= period.since,
            m.created_at < period.until,
            or_(c.closed_at.is_(None), m.created_at < c.closed_at),
            exists().where(
                reply.conversation_id == m.conversation_id,
                reply.created_at == m.created_at,
                reply.author == Author.BOT,
                reply.created_at >= period.since,  # implied; lets the planner narrow it down
                reply.created_at < period.until,
            ),
        )
    )
    if channel is not None:
        query = query.where(written_in == channel)
    if escalated_only is not None:
        query = query.where(m.conversation_id.in_(escalated_only))
    return query.cte("answered").prefix_with("MATERIALIZED")


@dataclass(slots=True)
class _BotWork:
    intents: Counter[str] = field(default_factory=Counter)
    miss_texts: Counter[str] = field(default_factory=Counter)


async def _bot_figures(
    session: AsyncSession,
    period: Period,
    channel: str | None,
    escalations: list[_Escalation],
    cells: dict[Cell, Figures],
    *,
    bot_side: bool = True,
) -> _BotWork:
    """Contacts, texts and misses into `cells`; the requests' intents and the misses' texts
    (normalised here: SQLite's lower() knows only ASCII) counted for the top lists. One
    statement: three aggregates of the answered messages, told apart by their first column.
    Without `bot_side` (a group's report) only the contacts handed off to groups."""
    e = ConversationEvent
    escalated_ids = select(e.conversation_id).where(
        e.kind == "escalated", e.at >= period.since, e.at < period.until
    )
    a = _bot_answered(session, period, channel, escalated_only=None if bot_side else escalated_ids)
    none = null().cast(String)
    handed = (
        select(
            literal_column("'handed'"),
            a.c.day,
            a.c.channel,
            a.c.cid.cast(String),
            none,
            none,
            func.count(),
        )
        .where(a.c.cid.in_(escalated_ids))
        .group_by(a.c.cid, a.c.day, a.c.channel)
    )
    statement: Any = handed
    if bot_side:
        contacts = select(
            literal_column("'contacts'"), a.c.day, a.c.channel, none, none, none,
            func.count(func.distinct(a.c.cid)),
        ).group_by(a.c.day, a.c.channel)  # fmt: skip
        miss_text = case((a.c.handled_as == MISS, a.c.text), else_=None)
        texts = (
            select(
                literal_column("'texts'"),
                a.c.day,
                a.c.channel,
                a.c.intent,
                a.c.handled_as,
                miss_text,
                func.count(),
            )
            .where(a.c.intent.is_not(None), not_(a.c.text.startswith("/")))  # NLU, no /command
            .group_by(a.c.day, a.c.channel, a.c.intent, a.c.handled_as, miss_text)
        )
        statement = union_all(contacts, texts, handed)
    sent_to = {(e.conversation_id, e.day): e.group for e in escalations}  # the day's last
    work = _BotWork()
    for kind, day, ch, key, handled_as, text, n in (await session.execute(statement)).all():
        day = _as_date(day)
        bot = cells[(day, str(ch), None)]
        if kind == "contacts":
            bot.contacts += int(n)
        elif kind == "texts":
            bot.bot_texts += int(n)
            if handled_as == MISS:
                bot.misses += int(n)
                if normalised := normalise(str(text or "")):
                    work.miss_texts[normalised] += int(n)
            elif handled_as is None:
                work.intents[str(key)] += int(n)
        elif (int(key), day) in sent_to:  # a contact handed off that day: to the group's row
            bot.contacts -= 1
            group = cells[(day, str(ch), sent_to[(int(key), day)])]
            group.contacts += 1
            group.handed_off += 1
    return work


def _top(counts: Counter[str], top: int) -> list[Count]:
    return [Count(k, n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


# -- operators (also the supervisor's "today") -------------------------------------------------


async def operator_figures(
    session: AsyncSession,
    period: Period,
    *,
    first_response_target: float,
    channel: str | None = None,
) -> dict[Cell, Figures]:
    """First responses, responses inside the session, assignments and misses, CSAT and NPS of
    the period, per local day x channel x the chat's current group."""
    since, until = period.since, period.until
    c, e = Conversation, ConversationEvent
    cells: dict[Cell, Figures] = defaultdict(Figures)

    def cell(at: datetime, ch: str, group: str | None) -> Figures:
        return cells[(period.day_of(at), ch, group)]

    def of_channel(query: Any) -> Any:
        return query if channel is None else query.where(c.channel == channel)

    # When the subscriber started waiting: the chat's last handoff from the bot before the first
    # reply. `queued_at` alone is not it: a transfer to another group restarts it.
    waiting_since = (
        select(func.max(e.at))
        .where(
            e.conversation_id == c.id,
            e.kind == "escalated",
            e.at <= c.first_response_at,
            or_(e.from_state.is_(None), e.from_state != ConversationState.WITH_OPERATOR),
        )
        .correlate(c)
        .scalar_subquery()
    )
    responses = of_channel(
        select(c.channel, c.skill_group, waiting_since, c.queued_at, c.first_response_at).where(
            c.first_response_at >= since, c.first_response_at < until, c.queued_at.is_not(None)
        )
    )
    for ch, group, escalated, queued, first in (await session.execute(responses)).all():
        span = (first - (escalated or queued)).total_seconds()
        f = cell(first, ch, group)
        f.first_responses += 1
        f.timely += span <= first_response_target
        f.first_response_total_s += span

    for ch, group, replied, gap in await _session_gaps(session, since, until, channel):
        f = cell(replied, ch, group)
        f.session_responses += 1
        f.session_response_total_s += gap

    day = local_day(session, e.at, period).label("day")
    missed = (e.kind == "missed").label("missed")
    handovers = of_channel(
        select(day, c.channel, c.skill_group, missed, e.conversation_id)
        .join(c, c.id == e.conversation_id)
        .where(
            e.at >= since,
            e.at < until,
            or_(e.kind == "missed", e.to_state == ConversationState.WITH_OPERATOR),
        )
    ).subquery()
    h = handovers.c
    per_day = select(
        h.day, h.channel, h.skill_group, h.missed, func.count(func.distinct(h.conversation_id))
    )
    for d, ch, group, was_missed, n in (
        await session.execute(per_day.group_by(h.day, h.channel, h.skill_group, h.missed))
    ).all():
        f = cells[(_as_date(d), ch, group)]
        if was_missed:
            f.missed += n
        else:
            f.assigned += n

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    closed = local_day(session, c.closed_at, period).label("day")
    rated = of_channel(
        select(closed, c.channel, c.skill_group, c.csat, c.nps).where(
            c.closed_at >= since,
            c.closed_at < until,
            or_(c.csat.is_not(None), c.nps.is_not(None)),
        )
    ).subquery()
    r = rated.c
    ratings = select(
        r.day, r.channel, r.skill_group, func.count(r.csat), count_if(r.csat >= 4),
        func.coalesce(func.sum(r.csat), 0), func.count(r.nps), count_if(r.nps >= 9),
        count_if(r.nps <= 6),
    ).group_by(r.day, r.channel, r.skill_group)  # fmt: skip
    for d, ch, group, *counts in (await session.execute(ratings)).all():
        f = cells[(_as_date(d), ch, group)]
        n, good, total, answers, promoters, detractors = (int(x) for x in counts)
        f.rated += n
        f.csat_good += good
        f.csat_total += total
        f.nps_answers += answers
        f.promoters += promoters
        f.detractors += detractors
    return cells


async def _session_gaps(
    session: AsyncSession, since: datetime, until: datetime, channel: str | None
) -> list[tuple[str, str | None, datetime, float]]:
    """(channel, group, reply time, seconds) from a subscriber message to the operator's next
    reply, after the chat's first reply; the earliest unanswered message counts."""
    m, c = Message, Conversation
    chats = select(c.id).where(c.operator_replied_at >= since, c.first_response_at < until)
    if channel is not None:
        chats = chats.where(c.channel == channel)
    query = (
        select(m.conversation_id, m.created_at, m.id, m.author, c.channel, c.skill_group)
        .join(c, c.id == m.conversation_id)
        .where(
            m.conversation_id.in_(chats),  # SQLite starts from these chats, not all messages
            m.created_at >= c.first_response_at,
            m.created_at < until,
            m.author.in_([Author.SUBSCRIBER, Author.OPERATOR]),
        )
    )
    # Sorted here: asked to sort, SQLite walks every message in conversation order.
    rows = sorted((await session.execute(query)).all(), key=lambda r: (r[0], r[1], r[2]))
    gaps = []
    pending: dict[int, datetime] = {}
    for conv_id, at, _, author, ch, group in rows:
        if author == Author.SUBSCRIBER:
            pending.setdefault(conv_id, at)
        elif conv_id in pending:
            asked = pending.pop(conv_id)
            if at >= since:
                gaps.append((ch, group, at, (at - asked).total_seconds()))
    return gaps


# -- local days in SQL ---------------------------------------------------------------------------


def local_day(session: AsyncSession, column: Any, period: Period) -> Any:
    """The local calendar day of a UTC timestamp column, in SQL (a date on PostgreSQL, an ISO
    string on SQLite; `_as_date` reads both). SQLite knows no time zones: a fixed offset when
    the zone has one all period long (Moscow always), else a CASE over the days' boundaries."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(period.tz.key, column))
    days = period.days
    bounds = [local_midnight(d, period.tz) for d in [*days, period.last + timedelta(days=1)]]
    offsets = {b.astimezone(period.tz).utcoffset() for b in bounds}
    if len(offsets) == 1:
        (offset,) = offsets
        assert offset is not None
        # Whole seconds first: SQLite rounds microseconds to milliseconds, so 23:59:59.9999
        # would land on the next day.
        seconds = int(offset.total_seconds())
        return func.date(func.substr(column, 1, 19), f"{seconds:+d} seconds")
    return case(
        *[(column < bounds[i + 1], literal(d.isoformat())) for i, d in enumerate(days)],
        else_=None,
    )


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
