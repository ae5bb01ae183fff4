"""One person across Telegram and VK: linking two channel accounts by a one-time code.

A claim is never enough. The subscriber who asks to link (in channel A) has told us a phone or
account number; every account in another channel whose owner gave the same number gets a
one-time code there, and only typing that code back in A proves both accounts are the same
person. Then the two subscribers merge: accounts, conversations, tickets and outage
subscriptions move to the older one, so history, tickets and open chats are shared. Unlinking
gives the account a fresh subscriber again and takes its own conversations with it.

Limits: a code lives CODE_TTL; an account may ask for MAX_REQUESTS codes per hour; a code
accepts MAX_ATTEMPTS wrong tries and is then burned. Only a hash of the code is stored.

Flows run it through the actions `link_send`, `link_confirm` and `unlink` (`actions()`);
failures are `LinkError`s whose `reason` the content branches on (`error.reason`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs import outgoing
from dialogs.actions import Action, ActionContext, ActionError, Render
from dialogs.messages import Outbound
from storage.models import (
    ChannelAccount,
    Conversation,
    IncidentSubscriber,
    LinkCode,
    OutageReport,
    Subscriber,
    Ticket,
    Verification,
    utcnow,
)

CODE_TTL = timedelta(minutes=10)
MAX_REQUESTS = 3  # codes asked for per account per hour
MAX_ATTEMPTS = 5  # wrong codes typed against one code before it is burned
CHANNEL_TITLES = {"telegram": "Telegram", "vk": "ВКонтакте"}


class LinkError(ActionError):
    """Linking refused; `reason` is one of: no_customer, no_other_account, already_linked,
    rate_limited,
    no_code, expired, wrong_code, too_many_attempts, not_linked."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason, reason)


@dataclass(frozen=True, slots=True)
class Sent:
    channels: list[str]  # where codes went
    minutes: int  # how long they live


def _hash(account_id: int, target_id: int, code: str) -> str:
    return hashlib.sha256(f"{account_id}:{target_id}:{code}".encode()).hexdigest()


def channel_titles(channels: list[str]) -> str:
    titles = list(dict.fromkeys(CHANNEL_TITLES.get(c, c) for c in channels))
    return " и ".join(titles)


async def candidates(
    session: AsyncSession, account: ChannelAccount, *, phone: str | None, number: str | None
) -> list[ChannelAccount]:
    """Accounts in other channels whose owner gave the same phone or account number and that
    are not this person's already."""
    same = [c for c in ((Subscriber.phone, phone), (Subscriber.account_number, number)) if c[1]]
    if not same:
        return []
    query = (
        select(ChannelAccount)
        .join(Subscriber, Subscriber.id == ChannelAccount.subscriber_id)
        .where(
            or_(*(column == value for column, value in same)),
            Subscriber.merged_into.is_(None),
            ChannelAccount.channel != account.channel,
            ChannelAccount.subscriber_id != account.subscriber_id,
            ChannelAccount.unreachable_at.is_(None),
        )
        .order_by(ChannelAccount.id)
    )
    return list((await session.scalars(query)).all())


async def send_codes(
    session: AsyncSession,
    account: ChannelAccount,
    customer: dict[str, Any],
    render: Render,
    *,
    now: datetime,
) -> Sent:
    """Send a fresh code to each candidate account (earlier unused codes of this account die)."""
    # One request sends one code per target (all stamped `now`): count requests, not codes.
    requests = await session.scalar(
        select(func.count(func.distinct(LinkCode.created_at))).where(
            LinkCode.account_id == account.id, LinkCode.created_at > now - timedelta(hours=1)
        )
    )
    if (requests or 0) >= MAX_REQUESTS:
        raise LinkError("rate_limited")
    targets = await candidates(
        session, account, phone=customer.get("phone"), number=customer.get("account")
    )
    if not targets:
        mine = await session.scalars(
            select(ChannelAccount.channel).where(
                ChannelAccount.subscriber_id == account.subscriber_id,
                ChannelAccount.id != account.id,
            )
        )
        raise LinkError("already_linked" if mine.first() is not None else "no_other_account")
    await session.execute(
        update(LinkCode)
        .where(LinkCode.account_id == account.id, LinkCode.used_at.is_(None))
        .values(expires_at=now)
    )
    for target in targets:
        code = f"{secrets.randbelow(10**6):06d}"
        session.add(
            LinkCode(
                account_id=account.id,
                target_account_id=target.id,
                code_hash=_hash(account.id, target.id, code),
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )
        scope = {
            "code": code,
            "first_name": target.first_name or "друг",
            "channel": target.channel,
            "from_channel": CHANNEL_TITLES.get(account.channel, account.channel),
            "minutes": int(CODE_TTL.total_seconds() // 60),
        }
        await _deliver(session, target, render("link_code", scope, target.channel))
    return Sent([t.channel for t in targets], int(CODE_TTL.total_seconds() // 60))


async def _deliver(session: AsyncSession, target: ChannelAccount, reply: Outbound) -> None:
    """Store the code message in the target account's latest conversation and queue it."""
    conv = await session.scalar(
        select(Conversation)
        .where(Conversation.channel_account_id == target.id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conv is None:  # candidates have written to us, so they have a conversation
        raise LinkError("no_other_account")
    await outgoing.reply(session, conv, target, [reply])


async def confirm(
    session: AsyncSession, account: ChannelAccount, code: str, *, now: datetime
) -> list[str]:
    """Check a typed code; on success merge the two subscribers. Returns the linked channels."""
    live = list(
        (
            await session.scalars(
                select(LinkCode)
                .where(LinkCode.account_id == account.id, LinkCode.used_at.is_(None))
                .order_by(LinkCode.id.desc())
                .with_for_update()
            )
        ).all()
    )
    if not live:
        raise LinkError("no_code")
    current = [c for c in live if c.expires_at > now]
    if not current:
        raise LinkError("expired")
    usable = [c for c in current if c.attempts < MAX_ATTEMPTS]
    if not usable:
        raise LinkError("too_many_attempts")
    for row in usable:
        if hmac.compare_digest(row.code_hash, _hash(account.id, row.target_account_id, code)):
            row.used_at = now
            target = await session.get(ChannelAccount, row.target_account_id)
            if target is None:
                raise LinkError("no_other_account")
            await merge(session, account.subscriber_id, target.subscriber_id)
            await session.execute(
                update(LinkCode)
                .where(LinkCode.account_id == account.id, LinkCode.used_at.is_(None))
                .values(expires_at=now)
            )
            channels = await session.scalars(
                select(ChannelAccount.channel).where(
                    ChannelAccount.subscriber_id == account.subscriber_id
                )
            )
            return sorted(set(channels))
    for row in usable:
        row.attempts += 1
    if all(row.attempts >= MAX_ATTEMPTS for row in usable):
        raise LinkError("too_many_attempts")
    raise LinkError("wrong_code")


async def merge(session: AsyncSession, a: int, b: int) -> int:
    """Make subscribers `a` and `b` one (the older id stays); returns the id kept."""
    keep, gone = min(a, b), max(a, b)
    if keep == gone:
        return keep
    kept = await session.get(Subscriber, keep)
    other = await session.get(Subscriber, gone)
    assert kept is not None and other is not None
    for model in (ChannelAccount, Conversation, Ticket, OutageReport, Verification):
        await session.execute(
            update(model).where(model.subscriber_id == gone).values(subscriber_id=keep)
        )
    already = select(IncidentSubscriber.incident_id).where(IncidentSubscriber.subscriber_id == keep)
    await session.execute(
        delete(IncidentSubscriber).where(
            IncidentSubscriber.subscriber_id == gone, IncidentSubscriber.incident_id.in_(already)
        )
    )
    await session.execute(
        update(IncidentSubscriber)
        .where(IncidentSubscriber.subscriber_id == gone)
        .values(subscriber_id=keep)
    )
    kept.phone = kept.phone or other.phone
    kept.account_number = kept.account_number or other.account_number
    kept.display_name = kept.display_name or other.display_name
    kept.data = {**other.data, **kept.data}
    if other.notifications_off_at is not None and kept.notifications_off_at is None:
        kept.notifications_off_at = other.notifications_off_at  # a "no" in either channel holds
    other.merged_into = keep
    return keep


async def unlink(session: AsyncSession, account: ChannelAccount) -> list[str]:
    """Give this account its own subscriber again, with its own conversations and their tickets.
    Returns the channels it was linked with."""
    others = list(
        (
            await session.scalars(
                select(ChannelAccount.channel).where(
                    ChannelAccount.subscriber_id == account.subscriber_id,
                    ChannelAccount.id != account.id,
                )
            )
        ).all()
    )
    if not others:
        raise LinkError("not_linked")
    name = " ".join(p for p in (account.first_name, account.last_name) if p) or account.username
    fresh = Subscriber(display_name=name, data={})
    session.add(fresh)
    await session.flush()
    own = select(Conversation.id).where(Conversation.channel_account_id == account.id)
    await session.execute(
        update(Ticket).where(Ticket.conversation_id.in_(own)).values(subscriber_id=fresh.id)
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.channel_account_id == account.id)
        .values(subscriber_id=fresh.id)
    )
    account.subscriber_id = fresh.id
    await session.execute(  # a verification belonged to the person as they were: it ends
        update(Verification)
        .where(Verification.account_id == account.id, Verification.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="unlinked")
    )
    return sorted(set(others))


def actions() -> list[Action]:
    """The linking steps flows run (`call: link_send` ...), for the action registry."""

    async def link_send(call: ActionContext) -> dict[str, Any]:
        customer = call.slots.get("customer")
        if not isinstance(customer, dict):
            raise LinkError("no_customer")
        sent = await send_codes(call.session, call.account, customer, call.render, now=call.now)
        return {"channels": channel_titles(sent.channels), "minutes": sent.minutes}

    async def link_confirm(call: ActionContext) -> dict[str, Any]:
        code = str(call.slots.get("link_code") or "")
        channels = await confirm(call.session, call.account, code, now=call.now)
        return {"channels": channel_titles(channels)}

    async def unlink_account(call: ActionContext) -> dict[str, Any]:
        return {"channels": channel_titles(await unlink(call.session, call.account))}

    return [
        Action(
            "link_send",
            link_send,
            level="verified",  # codes go to whoever gave this number elsewhere: prove it first
            doc="a one-time code to the subscriber's other channel",
        ),
        Action("link_confirm", link_confirm, needs=("link_code",), doc="check the typed code"),
        Action("unlink", unlink_account, doc="separate this account from the linked ones"),
    ]


__all__ = ["CHANNEL_TITLES", "LinkError", "actions", "confirm", "merge", "unlink"]
