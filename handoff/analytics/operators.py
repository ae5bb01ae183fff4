"""The operators' figures (also the supervisor's "today"): first responses, responses inside
the session, assignments and misses, CSAT and NPS. Definitions: __init__.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    case,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from handoff.analytics.figures import Cell, Figures, Period, as_date, local_day
from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
    utcnow,
)


async def operator_figures(
    session: AsyncSession,
    period: Period,
    *,
    first_response_target: float,
    channel: str | None = None,
    now: datetime | None = None,
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

    target = first_response_target
    for ch, group, started, answered, left, still in await _entries(session, period, channel):
        if answered is not None:
            if not since <= answered < until:
                continue
            span = (answered - started).total_seconds()
            f = cell(answered, ch, group)
            f.first_responses += 1
            f.timely += span <= target
            f.first_response_total_s += span
            continue
        if left is not None:
            if not since <= left < until:
                continue
            f, span = cell(left, ch, group), (left - started).total_seconds()
            f.abandoned += 1
        elif still and started < until:
            f = cell(max(started, since), ch, group)
            span = (min(now or utcnow(), until) - started).total_seconds()
            f.waiting += 1
        else:
            continue
        f.late_unanswered += span > target
        f.unanswered_wait_total_s += max(0.0, span)

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
        f = cells[(as_date(d), ch, group)]
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
        f = cells[(as_date(d), ch, group)]
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


LOOKBACK = timedelta(days=7)  # a queue entry answered or left in the period began at most this
# long before it (an entry still waiting counts however old it is)
_ENDS = (ConversationState.BOT, ConversationState.RATING, ConversationState.CLOSED)
_HANDOFF = (ConversationState.QUEUED, ConversationState.WITH_OPERATOR)


def _starts(e: Any) -> Any:
    """An "escalated" event that starts a queue entry: from the bot, not a transfer."""
    return (e.kind == "escalated") & (e.from_state.is_(None) | e.from_state.not_in(list(_HANDOFF)))


async def _entries(
    session: AsyncSession, period: Period, channel: str | None
) -> list[tuple[str, str | None, datetime, datetime | None, datetime | None, bool]]:
    """Queue entries that may count in the period: (channel, the chat's group, started, first
    operator answer, left the handoff before an answer, still in the handoff now). An entry runs
    from its "escalated" event to the next one from the bot; a transfer continues it."""
    c, e = Conversation, ConversationEvent
    nxt, end, m = aliased(ConversationEvent), aliased(ConversationEvent), Message
    next_start = (
        select(func.min(nxt.at))
        .where(nxt.conversation_id == e.conversation_id, nxt.at > e.at, _starts(nxt))
        .correlate(e)
        .scalar_subquery()
    )
    answered = (
        select(func.min(m.created_at))
        .where(
            m.conversation_id == e.conversation_id,
            m.author == Author.OPERATOR,
            m.created_at >= e.at,
        )
        .correlate(e)
        .scalar_subquery()
    )
    left = (
        select(func.min(end.at))
        .where(
            end.conversation_id == e.conversation_id,
            end.at >= e.at,
            end.from_state.in_(list(_HANDOFF)),
            end.to_state.in_(list(_ENDS)),
        )
        .correlate(e)
        .scalar_subquery()
    )
    query = (
        select(c.channel, c.skill_group, e.at, next_start, answered, left, c.state)
        .join(c, c.id == e.conversation_id)
        .where(
            _starts(e),
            e.at < period.until,
            or_(e.at >= period.since - LOOKBACK, c.state.in_(list(_HANDOFF))),
        )
    )
    if channel is not None:
        query = query.where(c.channel == channel)
    out: list[tuple[str, str | None, datetime, datetime | None, datetime | None, bool]] = []
    for ch, group, started, until, reply, left_at, state in (await session.execute(query)).all():
        first: datetime | None = (
            reply if reply is not None and (until is None or reply < until) else None
        )
        gone: datetime | None = (
            left_at if left_at is not None and (until is None or left_at < until) else None
        )
        if first is not None and gone is not None and gone < first:
            first = None
        if first is None and gone is None and until is not None:
            gone = until  # a new request began: this one ended unanswered
        still = first is None and gone is None and state in _HANDOFF
        out.append((ch, group, started, first, gone, still))
    return out
