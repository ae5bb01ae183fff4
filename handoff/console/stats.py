"""The supervisor's figures: live queue lengths and waits, operators' status and load, and today's
service levels computed from the stored conversation timestamps and events.

Definitions (also printed on the supervisor page; "today" starts at midnight in
`handoff.timezone`):
- timely first response: of the chats whose first operator reply came today, the share where
  `first_response_at - queued_at <= handoff.first_response_target`;
- average first response: the mean of `first_response_at - queued_at` over the same chats;
- response inside the session: after a chat's first operator reply, the mean time from a
  subscriber message to the next operator reply (the gaps whose reply came today);
- missed chats: chats with a "missed" event today (an assigned operator did not answer within
  `handoff.missed_after`) / chats assigned to an operator today (auto-assigned, taken or
  transferred to a person);
- CSAT: of the chats closed today that the subscriber rated, the share of 4-5 scores, and the
  average score.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.console.views import STATUS_LABELS, seconds
from handoff.desk import SUPERVISORS
from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
    Operator,
    OperatorRole,
    utcnow,
)


def day_start(now: datetime, timezone: str) -> datetime:
    tz = ZoneInfo(timezone)
    return datetime.combine(now.astimezone(tz).date(), time(0), tz).astimezone(UTC)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


async def supervisor_view(
    session: AsyncSession,
    *,
    groups: list[str],
    timezone: str,
    first_response_target: float,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    start = day_start(now, timezone)

    waiting = (
        await session.execute(
            select(
                Conversation.skill_group,
                func.count(Conversation.id),
                func.min(Conversation.queued_at),
            )
            .where(Conversation.state == ConversationState.QUEUED)
            .group_by(Conversation.skill_group)
        )
    ).all()
    by_group = {str(g or "—"): (int(n), oldest) for g, n, oldest in waiting}
    queues = [
        {
            "group": group,
            "waiting": by_group.get(group, (0, None))[0],
            "longest_wait_s": seconds(by_group.get(group, (0, None))[1], now),
        }
        for group in [*groups, *sorted(set(by_group) - set(groups))]
    ]

    staff = (
        await session.scalars(
            select(Operator).where(Operator.role != OperatorRole.EDITOR).order_by(Operator.name)
        )
    ).all()
    loads = dict(
        (
            await session.execute(
                select(Conversation.operator_id, func.count(Conversation.id))
                .where(Conversation.state == ConversationState.WITH_OPERATOR)
                .group_by(Conversation.operator_id)
            )
        ).all()
    )
    operators = [
        {
            "id": op.id,
            "name": op.name,
            "login": op.login,
            "role": op.role,
            "supervisor": op.role in SUPERVISORS,
            "groups": list(op.groups),
            "status": op.status,
            "status_label": STATUS_LABELS.get(op.status, op.status),
            "load": int(loads.get(op.id, 0)),
            "max_chats": op.max_chats,
        }
        for op in staff
    ]

    responses = (
        await session.execute(
            select(Conversation.queued_at, Conversation.first_response_at).where(
                Conversation.first_response_at >= start, Conversation.queued_at.is_not(None)
            )
        )
    ).all()
    spans = [(fr - q).total_seconds() for q, fr in responses if q is not None and fr is not None]
    timely = sum(1 for s in spans if s <= first_response_target)

    inside = await _inside_session_gaps(session, start)

    assigned = await session.scalar(
        select(func.count(func.distinct(ConversationEvent.conversation_id))).where(
            ConversationEvent.at >= start,
            ConversationEvent.to_state == ConversationState.WITH_OPERATOR,
        )
    )
    missed = await session.scalar(
        select(func.count(func.distinct(ConversationEvent.conversation_id))).where(
            ConversationEvent.at >= start, ConversationEvent.kind == "missed"
        )
    )
    scores = [
        int(s)
        for s in (
            await session.scalars(
                select(Conversation.csat).where(
                    Conversation.closed_at >= start, Conversation.csat.is_not(None)
                )
            )
        ).all()
        if s is not None
    ]
    return {
        "queues": queues,
        "waiting_total": sum(q["waiting"] for q in queues),
        "operators": operators,
        "online": sum(1 for op in operators if op["status"] == "online"),
        "today": {
            "since": start.isoformat(),
            "first_responses": len(spans),
            "timely_first_response_pct": _pct(timely, len(spans)),
            "first_response_target_s": first_response_target,
            "avg_first_response_s": round(sum(spans) / len(spans), 1) if spans else None,
            "avg_response_in_session_s": round(sum(inside) / len(inside), 1) if inside else None,
            "responses_in_session": len(inside),
            "assigned": int(assigned or 0),
            "missed": int(missed or 0),
            "missed_pct": _pct(int(missed or 0), int(assigned or 0)),
            "rated": len(scores),
            "csat_pct": _pct(sum(1 for s in scores if s >= 4), len(scores)),
            "csat_avg": round(sum(scores) / len(scores), 2) if scores else None,
        },
    }


async def _inside_session_gaps(session: AsyncSession, start: datetime) -> list[float]:
    """Seconds from a subscriber message to the operator's next reply, after the first reply."""
    rows = (
        await session.execute(
            select(Message.conversation_id, Message.author, Message.created_at)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.operator_replied_at >= start,
                Conversation.first_response_at.is_not(None),
                Message.created_at >= Conversation.first_response_at,
            )
            .order_by(Message.conversation_id, Message.created_at, Message.id)
        )
    ).all()
    gaps: list[float] = []
    pending: dict[int, datetime] = {}
    for conv_id, author, at in rows:
        if author == Author.SUBSCRIBER:
            pending.setdefault(conv_id, at)
        elif author == Author.OPERATOR and conv_id in pending:
            asked = pending.pop(conv_id)
            if at >= start:
                gaps.append((at - asked).total_seconds())
    return gaps
