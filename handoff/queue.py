"""The operator queue: putting a chat in line for a skill group and telling the subscriber where
they stand.

`HandoffQueue.escalate` is what the dialog engine calls on `handoff: <group>` (it implements
`dialogs.responder.Escalator`): in the conversation's own transaction the chat becomes `queued`
for the group, and the subscriber is told their position and expected wait, or, outside the
group's working hours, when operators are back (their messages wait in the queue for them).
`estimate` is the position/ETA arithmetic; `updates` finds the waiting subscribers whose position
changed enough to tell them again.

Expected wait = the chats ahead that free operator seats can't take at once, times the group's
recent average handling time (closed chats: assigned -> closed, last 50; 5 min when there is no
history yet), divided by the seats of the operators online.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
HISTORY = 50


@dataclass(frozen=True, slots=True)
class Estimate:
    position: int  # 1 = next
    eta_minutes: int
    operators_online: int

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "eta_minutes": self.eta_minutes,
            "operators_online": self.operators_online,
        }


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
        data = {"group": group, "reason": reason, **({"note": note} if note else {})}
        await repo.set_state(session, conv, ConversationState.QUEUED, kind="escalated", data=data)
        conv.skill_group = group
        conv.queued_at = conv.queued_at or now
        conv.handoff_reason = reason[:200]
        conv.operator_id = None
        conv.assigned_at = None
        await session.flush()
        note_event(session, {"type": "queued", "conversation_id": conv.id, "group": group})
        content = self.content.current
        hours = self.hours(group)
        if not hours.is_open(now):
            scope = {**_scope(account), "queue": {"returns": hours.describe_return(now)}}
            return [render(content.responses["after_hours"], scope, account.channel)]
        estimate = await self.estimate(session, conv)
        conv.slots = {**conv.slots, "_queue_told": estimate.to_json()}
        return [self._say(content, "queue_position", estimate, account)]

    def _say(
        self, content: Content, name: str, estimate: Estimate, account: ChannelAccount
    ) -> Outbound:
        scope = {**_scope(account), "queue": estimate.to_json()}
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

    async def _estimate(
        self,
        session: AsyncSession,
        group: str,
        position: int,
        cache: dict[str, tuple[int, int, int, float]] | None = None,
    ) -> Estimate:
        known = cache.get(group) if cache is not None else None
        if known is None:
            seats, free, online = await self.capacity(session, group)
            known = (seats, free, online, await self.average_handle_seconds(session, group))
            if cache is not None:
                cache[group] = known
        seats, free, online, handle = known
        waiting_for_seat = max(0, position - free)
        eta = math.ceil(waiting_for_seat * handle / max(seats, 1) / 60) + 1
        return Estimate(position, eta, online)

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

    async def updates(self, session: AsyncSession) -> list[tuple[Conversation, Outbound]]:
        """Waiting subscribers to tell again: moved up by 2+ places, became next in line, or the
        expected wait changed by 3+ minutes. Stores what was told."""
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
        groups: dict[str, tuple[int, int, int, float]] = {}  # one capacity query per group
        for conv in queued:
            group = conv.skill_group or ""
            positions[group] = positions.get(group, 0) + 1
            if not self.hours(group).is_open(now):
                continue
            told = conv.slots.get("_queue_told") or {}
            position = positions[group]
            moved = int(told.get("position", position)) - position
            estimate = await self._estimate(session, group, position, groups)
            changed_eta = abs(
                int(told.get("eta_minutes", estimate.eta_minutes)) - estimate.eta_minutes
            )
            if (
                not told
                or moved >= 2
                or (position == 1 and int(told.get("position", 1)) > 1)
                or changed_eta >= 3
            ):
                if not told:
                    conv.slots = {**conv.slots, "_queue_told": estimate.to_json()}
                    continue
                account = await session.get(ChannelAccount, conv.channel_account_id)
                if account is None:
                    continue
                conv.slots = {**conv.slots, "_queue_told": estimate.to_json()}
                out.append((conv, self._say(content, "queue_update", estimate, account)))
        return out


def _scope(account: ChannelAccount) -> dict[str, Any]:
    return {"first_name": account.first_name or "друг", "channel": account.channel}
