"""One report: the bot's and the operators' figures of a period, filtered and ordered."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handoff.analytics.bot import article_uses, bot_figures, escalations_of, top_counts
from handoff.analytics.figures import NO_GROUP, TOP, Cell, Figures, Period, Reason, Report, Row
from handoff.analytics.operators import operator_figures
from handoff.analytics.resolution import resolution_by_topic


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
    escalations = await escalations_of(session, period)
    work = await bot_figures(session, period, channel, escalations, cells, bot_side=bot_side)
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
    handed = {(e.conversation_id, e.day) for e in escalations}
    resolution = await resolution_by_topic(session, period, channel, handed) if bot_side else []
    articles = (
        await article_uses(session, period, channel, work.kb_answers, top) if bot_side else []
    )
    reasons = Counter(
        (e.reason, e.group) for e in escalations if wanted(e.group) and channel in (None, e.channel)
    )
    return Report(
        period=period,
        channel=channel,
        group=group,
        first_response_target=first_response_target,
        rows=rows,
        top_intents=top_counts(work.intents, top) if bot_side else [],
        top_fallback_texts=top_counts(work.miss_texts, top) if bot_side else [],
        handoff_reasons=[
            Reason(reason, g, n)
            for (reason, g), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0][0]))[:top]
        ],
        handoffs=sum(reasons.values()),
        resolution=resolution,
        articles=articles,
    )
