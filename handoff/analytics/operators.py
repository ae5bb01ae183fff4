"""The operators' figures (also the supervisor's "today"): first responses, responses inside
the session, assignments and misses, CSAT and NPS. Definitions: __init__.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import (
    case,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.analytics.figures import Cell, Figures, Period, as_date, local_day
from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
)


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
