"""The supervisor's figures: live queue lengths and waits, operators' status and load, and today's
service levels computed from the stored conversation timestamps and events.

Definitions (also printed on the supervisor page; "today" starts at midnight in
`handoff.timezone`). A queue entry is one request for an operator: from the bot's handoff
(a transfer continues it; a new request after "return to bot" is a new one) to the first
operator reply (answered), to leaving operators without one (abandoned: closed, returned to the
bot, or a new request began), or still unanswered now (waiting):
- answered / waiting / abandoned: entries answered today, unanswered now, left unanswered today;
- timely first response: answered within `handoff.first_response_target`, of the entries
  answered today plus the unanswered ones (waiting, or abandoned today) that waited longer than
  the target (short abandons and short waits so far are left out);
- average first response: the mean wait of the entries answered today; average wait (all): the
  mean over answered, waiting (so far) and abandoned (until they left);
- response inside the session: after a chat's first operator reply, the mean time from a
  subscriber message to the next operator reply (the gaps whose reply came today);
- missed chats: chats with a "missed" event today (an assigned operator did not answer within
  `handoff.missed_after`) / chats assigned to an operator today (auto-assigned, taken or
  transferred to a person);
- CSAT: of the chats closed today that the subscriber rated, the share of 4-5 scores, and the
  average score.
These are handoff.analytics' operator figures for today: the analytics page counts the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.analytics import Figures, Period, operator_figures
from handoff.console.views import ROLE_LABELS, STATUS_LABELS, seconds
from handoff.desk import SUPERVISORS
from storage.models import (
    Conversation,
    ConversationState,
    Operator,
    OperatorRole,
    utcnow,
)


async def supervisor_view(
    session: AsyncSession,
    *,
    groups: list[str],
    timezone: str,
    first_response_target: float,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    tz = ZoneInfo(timezone)
    today = Period(now.astimezone(tz).date(), now.astimezone(tz).date(), tz)

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
            select(Operator)
            .where(Operator.role != OperatorRole.EDITOR, Operator.disabled_at.is_(None))
            .order_by(Operator.name)
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
            "role_label": ROLE_LABELS.get(op.role, op.role),
            "supervisor": op.role in SUPERVISORS,
            "groups": list(op.groups),
            "status": op.status,
            "status_label": STATUS_LABELS.get(op.status, op.status),
            "load": int(loads.get(op.id, 0)),
            "max_chats": op.max_chats,
        }
        for op in staff
    ]

    figures = await operator_figures(
        session,
        today,
        first_response_target=first_response_target,
        now=now,
    )
    t = Figures.total(figures.values())
    return {
        "queues": queues,
        "waiting_total": sum(q["waiting"] for q in queues),
        "operators": operators,
        "online": sum(1 for op in operators if op["status"] == "online"),
        "today": {
            "since": today.since.isoformat(),
            "first_responses": t.first_responses,
            "answered": t.first_responses,
            "waiting": t.waiting,
            "abandoned": t.abandoned,
            "late_unanswered": t.late_unanswered,
            "answered_pct": t.answered_pct,
            "avg_wait_all_s": t.avg_wait_all_s,
            "timely_first_response_pct": t.timely_pct,
            "first_response_target_s": first_response_target,
            "avg_first_response_s": t.avg_first_response_s,
            "avg_response_in_session_s": t.avg_response_in_session_s,
            "responses_in_session": t.session_responses,
            "assigned": t.assigned,
            "missed": t.missed,
            "missed_pct": t.missed_pct,
            "rated": t.rated,
            "csat_pct": t.csat_pct,
            "csat_avg": t.csat_avg,
        },
    }
