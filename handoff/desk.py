"""The operators' desk: everything that happens to a handed-off chat after it is queued.

- `assign_waiting`: automatic assignment. Per skill group, the longest-waiting chats (higher
  priority first) go to online operators of that group with a free seat, least-loaded first.
  Chats and operators are locked with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several app
  processes never assign a chat twice or overfill an operator.
  The scan reads the whole line, so chats the free operators can't take (they missed them)
  never block the chats behind them.
- `missed`: an assigned operator who hasn't answered within `missed_after` seconds misses the
  chat: it is recorded and re-offered to someone else (it keeps its place in the queue). A chat
  missed by every online operator of its group goes back to all of them ("offered_again" event
  naming who missed it; the "missed" events stay): the queue never stops on it.
- operator actions: `take` (manual, from the queue), `reply`, `transfer` (to a group or an
  operator, with a note), `return_to_bot`, `close` (with a resolution code; the subscriber is
  asked for CSAT), `set_status`.
- operator status: only "online" operators get new chats (assignment and the queue's estimate
  count nobody else). "away" (a break) keeps the chats the operator has: they finish them, and one
  not answered yet goes back to the queue as a missed chat after `missed_after`. Going "offline"
  with `release=True` (the console, after the operator confirms; logging out) hands every chat the
  operator still has back to the queue at its old place, ahead of new arrivals (a "released"
  event, as when an admin disables an account: `handoff.auth.release_chats`; audited as
  `chat_released`), and tells each subscriber a colleague will take it over; without it (the
  CLI, tests) the chats stay theirs.
Every change is a stored conversation event (SLA figures come from them) and a live event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs import outgoing
from dialogs.limits import MAX_TEXT
from dialogs.messages import Button, Outbound
from dialogs.responses import ContentSource, say
from dialogs.verify import SECRET_PAYLOAD, SECRET_TITLE
from handoff.auth import release_chats
from handoff.config import HandoffSettings
from handoff.queue import HandoffQueue
from services import audit
from storage import repo
from storage.db import Database, note_event
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    Operator,
    OperatorRole,
    OperatorStatus,
    utcnow,
)

log = logging.getLogger(__name__)
RESOLUTIONS = ("solved", "not_solved", "duplicate", "spam", "no_reply")
SUPERVISORS = (OperatorRole.SUPERVISOR, OperatorRole.ADMIN)
CSAT_PAYLOAD, NPS_PAYLOAD = "csat:", "nps:"


class DeskError(Exception):
    """An operator action that can't be done; `status` is the HTTP status the console answers."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Assignment:
    conversation_id: int
    operator_id: int


class Desk:
    def __init__(
        self,
        db: Database,
        queue: HandoffQueue,
        content: ContentSource,
        settings: HandoffSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.queue = queue
        self.content = content
        self.settings = settings
        self.clock = clock

    # -- telling the subscriber --------------------------------------------------------------

    async def _tell(
        self, session: AsyncSession, conv: Conversation, replies: list[Outbound]
    ) -> None:
        """System messages to the chat's subscriber (sent once the transaction commits)."""
        account = await session.get(ChannelAccount, conv.channel_account_id)
        assert account is not None
        await outgoing.reply(session, conv, account, replies, author=Author.SYSTEM)

    def _say(self, name: str, account: ChannelAccount, **scope: Any) -> Outbound:
        """A content response for this subscriber (their first name and channel)."""
        return say(self.content.current, name, account, **scope)

    # -- assignment ------------------------------------------------------------------------

    async def assign_waiting(self) -> list[Assignment]:
        """One pass of automatic assignment over every group with waiting chats."""
        done: list[Assignment] = []
        async with self.db.transaction() as session:
            now = self.clock()
            groups = (
                await session.scalars(
                    select(Conversation.skill_group)
                    .where(Conversation.state == ConversationState.QUEUED)
                    .distinct()
                )
            ).all()
            for group in groups:
                if group is None or not self.queue.hours(group).is_open(now):
                    continue
                done += await self._assign_group(session, group, now)
        return done

    async def _assign_group(
        self, session: AsyncSession, group: str, now: datetime
    ) -> list[Assignment]:
        online = (
            await session.scalars(
                select(Operator)
                .where(Operator.status == OperatorStatus.ONLINE)
                .order_by(Operator.id)
                .with_for_update(skip_locked=True)
            )
        ).all()
        ops = [op for op in online if group in op.groups]
        if not ops:
            return []
        loads = await self._loads(session, [op.id for op in ops])
        free = sum(max(0, op.max_chats - loads.get(op.id, 0)) for op in ops)
        if free == 0:
            return []
        # The whole line, unlocked and cheap (ids and who missed them): a chat the free
        # operators can't take never hides the chats behind it.
        line = (
            await session.execute(
                select(Conversation.id, Conversation.declined_by)
                .where(
                    Conversation.state == ConversationState.QUEUED,
                    Conversation.skill_group == group,
                )
                .order_by(Conversation.priority.desc(), Conversation.queued_at, Conversation.id)
            )
        ).all()
        online_ids = {op.id for op in ops}
        plan: dict[int, Operator] = {}
        offered_again: set[int] = set()
        for conv_id, declined in line:
            if free == 0:
                break
            declined = set(declined or ())
            if online_ids <= declined:  # every online operator of the group missed it
                offered_again.add(conv_id)
                declined = set()
            candidates = [
                op for op in ops if loads.get(op.id, 0) < op.max_chats and op.id not in declined
            ]
            if not candidates:
                continue
            op = min(candidates, key=lambda o: (loads.get(o.id, 0) / o.max_chats, o.id))
            loads[op.id] = loads.get(op.id, 0) + 1
            free -= 1
            plan[conv_id] = op
        if not plan:
            return []
        locked = (
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.id.in_(list(plan)),
                    Conversation.state == ConversationState.QUEUED,
                )
                .order_by(Conversation.priority.desc(), Conversation.queued_at, Conversation.id)
                .with_for_update(skip_locked=True)
            )
        ).all()
        out = []
        for conv in locked:  # another process may have taken some meanwhile: those are skipped
            op = plan[conv.id]
            if conv.id in offered_again and conv.declined_by:
                await self._offer_again(session, conv, now)
            if op.id in conv.declined_by:
                continue  # missed again since the line was read
            await self._assign(session, conv, op, now, kind="assigned")
            out.append(Assignment(conv.id, op.id))
        return out

    async def _offer_again(self, session: AsyncSession, conv: Conversation, now: datetime) -> None:
        """Every online operator of the group missed the chat: it goes back to all of them
        (the misses stay recorded as "missed" events; this one records who they were)."""
        session.add(
            ConversationEvent(
                conversation_id=conv.id,
                kind="offered_again",
                from_state=conv.state,
                to_state=conv.state,
                data={"missed_by": list(conv.declined_by)},
                at=now,
            )
        )
        conv.declined_by = []
        note_event(session, {"type": "offered_again", "conversation_id": conv.id})

    async def _loads(self, session: AsyncSession, operator_ids: list[int]) -> dict[int, int]:
        rows = await session.execute(
            select(Conversation.operator_id, func.count(Conversation.id))
            .where(
                Conversation.state == ConversationState.WITH_OPERATOR,
                Conversation.operator_id.in_(operator_ids),
            )
            .group_by(Conversation.operator_id)
        )
        return {int(op): int(n) for op, n in rows.all() if op is not None}

    async def _assign(
        self, session: AsyncSession, conv: Conversation, op: Operator, now: datetime, *, kind: str
    ) -> None:
        await repo.set_state(
            session,
            conv,
            ConversationState.WITH_OPERATOR,
            kind=kind,
            data={"operator_id": op.id, "group": conv.skill_group},
        )
        conv.operator_id = op.id
        conv.assigned_at = now
        if kind == "taken":  # they took it themselves: nothing in it is news to them
            conv.operator_read_at = now
        if "_offered_at" not in conv.slots:  # the entry's first offer: the join time runs from it
            conv.slots = {**conv.slots, "_offered_at": now.isoformat()}
        note_event(
            session,
            {"type": "assigned", "conversation_id": conv.id, "operator_id": op.id},
        )
        account = await session.get(ChannelAccount, conv.channel_account_id)
        assert account is not None
        joined = self._say("operator_joined", account, operator={"name": op.name})
        await self._tell(session, conv, [joined])

    async def missed(self) -> list[Assignment]:
        """Assigned chats whose operator hasn't answered in time go back to the queue (they keep
        their place) and to another operator; the miss is recorded for SLA figures."""
        limit = timedelta(seconds=self.settings.missed_after)
        out: list[Assignment] = []
        async with self.db.transaction() as session:
            now = self.clock()
            stale = (
                await session.scalars(
                    select(Conversation)
                    .where(
                        Conversation.state == ConversationState.WITH_OPERATOR,
                        Conversation.assigned_at < now - limit,
                        (Conversation.operator_replied_at.is_(None))
                        | (Conversation.operator_replied_at < Conversation.assigned_at),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for conv in stale:
                operator_id = conv.operator_id
                if operator_id is None:
                    continue
                await repo.set_state(
                    session,
                    conv,
                    ConversationState.QUEUED,
                    kind="missed",
                    data={
                        "operator_id": operator_id,
                        "after_s": round((now - conv.assigned_at).total_seconds())
                        if conv.assigned_at
                        else None,
                    },
                )
                conv.declined_by = [*conv.declined_by, operator_id]
                conv.operator_id = None
                conv.assigned_at = None
                note_event(
                    session,
                    {"type": "missed", "conversation_id": conv.id, "operator_id": operator_id},
                )
                out.append(Assignment(conv.id, operator_id))
        if out:
            log.info("handoff: %d missed chat(s) re-offered", len(out))
        return out

    async def tell_positions(self) -> int:
        """Tell waiting subscribers whose place in the queue changed materially; how many."""
        async with self.db.transaction() as session:
            updates = await self.queue.updates(session)
            for conv, reply in updates:
                await self._tell(session, conv, [reply])
        return len(updates)

    # -- operator actions ------------------------------------------------------------------

    async def _load(
        self, session: AsyncSession, operator_id: int, conv_id: int
    ) -> tuple[Operator, Conversation]:
        op = await session.get(Operator, operator_id)
        conv = await session.get(Conversation, conv_id, with_for_update=True)
        if op is None or op.disabled_at is not None:
            raise DeskError("unknown operator", 403)
        if conv is None:
            raise DeskError(f"no conversation {conv_id}", 404)
        return op, conv

    def _own(self, op: Operator, conv: Conversation) -> None:
        if conv.state != ConversationState.WITH_OPERATOR:
            raise DeskError(f"the chat is {conv.state}, not with an operator")
        if conv.operator_id != op.id and op.role not in SUPERVISORS:
            raise DeskError("another operator has this chat", 403)

    async def take(self, operator_id: int, conv_id: int) -> None:
        """Take a waiting chat from the queue (or, for a supervisor, any chat)."""
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            if conv.state == ConversationState.WITH_OPERATOR and op.role in SUPERVISORS:
                pass
            elif conv.state != ConversationState.QUEUED:
                raise DeskError(f"the chat is {conv.state}; only waiting chats can be taken")
            await self._assign(session, conv, op, self.clock(), kind="taken")
            _audit(session, "chat_taken", op, conv)

    async def reply(
        self, operator_id: int, conv_id: int, text: str, *, image: str | None = None
    ) -> int:
        text = text.strip()
        if not text and not image:
            raise DeskError("an empty reply", 400)
        if len(text) > MAX_TEXT:
            raise DeskError(f"a reply is at most {MAX_TEXT} characters", 400)
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            self._own(op, conv)
            now = self.clock()
            if conv.first_response_at is None:
                conv.first_response_at = now
            conv.operator_replied_at = now
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            message = Outbound(text=text or None, image=image)
            (message_id,) = await outgoing.reply(
                session, conv, account, [message], author=Author.OPERATOR, operator_id=op.id
            )
            note_event(
                session,
                {"type": "message", "conversation_id": conv.id, "operator_id": op.id},
            )
            _audit(session, "reply_sent", op, conv, message_id=message_id, image=bool(image))
        return message_id

    async def transfer(
        self,
        operator_id: int,
        conv_id: int,
        *,
        group: str | None = None,
        to_operator: int | None = None,
        note: str = "",
    ) -> None:
        if (group is None) == (to_operator is None):
            raise DeskError("transfer to a group or to an operator", 400)
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            self._own(op, conv)
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            if to_operator is not None:
                target = await session.get(Operator, to_operator, with_for_update=True)
                if target is None:
                    raise DeskError(f"no operator {to_operator}", 404)
                await repo.set_state(
                    session,
                    conv,
                    ConversationState.WITH_OPERATOR,
                    kind="transferred",
                    data={"from": op.id, "to_operator": target.id, "note": note},
                )
                conv.operator_id = target.id
                conv.assigned_at = self.clock()
                note_event(
                    session,
                    {"type": "assigned", "conversation_id": conv.id, "operator_id": target.id},
                )
                joined = self._say("operator_joined", account, operator={"name": target.name})
                await self._tell(session, conv, [joined])
                _audit(session, "chat_transferred", op, conv, to_operator=target.id)
            else:
                assert group is not None
                if group not in self.queue.groups:
                    raise DeskError(f"unknown group {group!r}", 400)
                conv.queued_at = self.clock()  # a new line, but ahead of new arrivals:
                conv.priority = max(conv.priority, 1)  # they already waited once
                replies = await self.queue.escalate(
                    session,
                    conv,
                    account,
                    group=group,
                    reason=f"transfer from {op.name}",
                    note=note,
                )
                moved = self._say("transferred", account)
                await self._tell(session, conv, [moved, *replies])
                _audit(session, "chat_transferred", op, conv, to_group=group)

    async def return_to_bot(self, operator_id: int, conv_id: int) -> None:
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            self._own(op, conv)
            await repo.set_state(
                session,
                conv,
                ConversationState.BOT,
                kind="returned",
                data={"operator_id": op.id},
            )
            conv.operator_id = None
            gone = ("_flow", "_misses", "_verify")  # a verification it asked for ends too
            conv.slots = {k: v for k, v in conv.slots.items() if k not in gone}
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            back = self._say("returned_to_bot", account)
            await self._tell(session, conv, [back])
            note_event(session, {"type": "returned", "conversation_id": conv.id})
            _audit(session, "returned_to_bot", op, conv)

    async def request_verification(self, operator_id: int, conv_id: int) -> None:
        """The operator asks the subscriber to verify who they are: the bot sends
        `verify_request` and talks the answers through (a contact, a number, the SMS code) while
        the chat stays with the operator; the chat page shows the result."""
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            self._own(op, conv)
            conv.slots = {
                **conv.slots,
                "_verify": {"level": "verified", "stage": "number", "resume": {}, "by": op.id},
            }
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            secret = ((Button(SECRET_TITLE, SECRET_PAYLOAD),),)
            ask = self._say("verify_request", account)
            ask = Outbound(ask.text, (*secret, *ask.buttons), ask.image, ask.sticker)
            await self._tell(session, conv, [ask])
            note_event(session, {"type": "message", "conversation_id": conv.id})
            _audit(session, "verification_requested", op, conv)

    async def close(self, operator_id: int, conv_id: int, resolution: str) -> None:
        if resolution not in RESOLUTIONS:
            raise DeskError(f"resolution must be one of {', '.join(RESOLUTIONS)}", 400)
        async with self.db.transaction() as session:
            op, conv = await self._load(session, operator_id, conv_id)
            if conv.state == ConversationState.QUEUED and op.role in SUPERVISORS:
                pass  # a supervisor may close spam straight from the queue
            else:
                self._own(op, conv)
            now = self.clock()
            await repo.set_state(
                session,
                conv,
                ConversationState.RATING,
                kind="closed",
                data={"operator_id": op.id, "resolution": resolution},
            )
            conv.resolution = resolution
            conv.closed_at = now
            conv.slots = {**conv.slots, "_rating": {"step": "score"}}
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            scores = tuple(Button(str(n), f"{CSAT_PAYLOAD}{n}") for n in range(1, 6))
            ask = self._say("csat_ask", account)
            ask = Outbound(ask.text, (scores, *ask.buttons), ask.image, ask.sticker)
            await self._tell(session, conv, [ask])
            note_event(session, {"type": "closed", "conversation_id": conv.id})
            _audit(session, "chat_closed", op, conv, resolution=resolution)

    async def set_status(
        self, operator_id: int, status: str, *, release: bool = False
    ) -> list[int]:
        """Set the operator's status; with `release` and "offline", their chats go back to the
        queue (see the module's note). Returns the ids of the chats handed back."""
        if status not in tuple(OperatorStatus):
            raise DeskError(f"status must be one of {', '.join(OperatorStatus)}", 400)
        released: list[int] = []
        async with self.db.transaction() as session:
            op = await session.get(Operator, operator_id, with_for_update=True)
            if op is None or op.disabled_at is not None:
                raise DeskError("unknown operator", 403)
            op.status, op.status_at = status, self.clock()
            note_event(session, {"type": "operator", "operator_id": op.id, "status": status})
            if release and status == OperatorStatus.OFFLINE:
                released = await self._release(session, op)
        if released:
            log.info(
                "handoff: %d chat(s) of an operator going offline back in the queue", len(released)
            )
        return released

    async def open_chats(self, operator_id: int) -> int:
        """How many chats the operator has now (the console warns before going offline)."""
        async with self.db.session() as session:
            return (await self._loads(session, [operator_id])).get(operator_id, 0)

    async def _release(self, session: AsyncSession, op: Operator) -> list[int]:
        convs = await release_chats(session, op)
        for conv in convs:
            account = await session.get(ChannelAccount, conv.channel_account_id)
            assert account is not None
            await self._tell(session, conv, [self._say("transferred", account)])
            _audit(session, "chat_released", op, conv)
        return [conv.id for conv in convs]


def _audit(
    session: AsyncSession, action: str, op: Operator, conv: Conversation, **details: Any
) -> None:
    """An operator's action on a chat, for the audit log (ids only: never the text)."""
    audit.record(
        session,
        action,
        actor="operator",
        operator_id=op.id,
        subscriber_id=conv.subscriber_id,
        conversation_id=conv.id,
        details=details,
    )
