"""Proactive notifications: one message per subscriber, in their preferred channel, via the outbox.

An incident closes, a ticket is resolved: the people concerned are told. `notify` renders the
response for each subscriber (their name, their channel), stores it as a bot message in their
conversation and puts it in the outbox in the same transaction, in bulk (dialogs/outgoing.py: a few
statements per 500 subscribers), so a broadcast to thousands is written in well under a second and then goes out
at the pace the outbox workers keep (delivery/worker.py: per chat and per bot, counted in
platform requests).

A linked subscriber (a Telegram and a VK account) gets ONE message, to the reachable account they
wrote from most recently. Proactive messages skip subscribers who opted out
(`Subscriber.notifications_off_at`); a reply they are owed (a ticket result) does not.
The caller owns the transaction (`Database.transaction()`); the senders of the channels written
to are woken once it commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs import outgoing
from dialogs.content import Response
from dialogs.outgoing import Outgoing, Recipient
from dialogs.responses import account_scope, render
from storage.models import ChannelAccount, Conversation, Direction, Message, Subscriber

CHUNK = 500  # ids per IN-list and rows per INSERT

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NotifyResult:
    queued: int  # messages put in the outbox
    opted_out: int  # skipped: notifications_off_at set (only when proactive)
    unreachable: int  # skipped: no reachable account with a conversation, or merged into another
    channels: frozenset[str]  # channels that got messages: wake those senders after the commit


async def notify(
    session: AsyncSession,
    subscriber_ids: Iterable[int],
    response: Response,
    scope: Mapping[str, Any],
    *,
    proactive: bool = True,
    conversation_ids: Mapping[int, int] | None = None,
) -> NotifyResult:
    """Queue `response` for each subscriber (duplicates count once) in their preferred channel.

    `scope` fills the templates; `first_name` and `channel` are added per subscriber. The message
    is stored in `conversation_ids[subscriber]` if given, else in the conversation holding their
    latest message from the chosen account (else that account's latest conversation); someone
    with no conversation at all counts as unreachable (none is made for them)."""
    ids = list(dict.fromkeys(subscriber_ids))
    wanted: list[int] = []
    opted_out = 0
    for chunk in _chunks(ids):
        found = await session.execute(
            select(Subscriber.id, Subscriber.notifications_off_at).where(
                Subscriber.id.in_(chunk), Subscriber.merged_into.is_(None)
            )
        )
        for sub_id, off_at in found:
            if proactive and off_at is not None:
                opted_out += 1
            else:
                wanted.append(sub_id)
    chosen = await _choose(session, wanted)
    given = conversation_ids or {}
    messages: list[Outgoing] = []
    for sub_id in wanted:
        pick = chosen.get(sub_id)
        if pick is None:
            continue
        account, their_conversation = pick
        conversation_id = given.get(sub_id, their_conversation)
        if conversation_id is None:
            continue
        reply = render(response, {**scope, **account_scope(account)}, account.channel)
        messages.append(Outgoing(Recipient.of(conversation_id, account), reply))
    await outgoing.write(session, messages)
    return NotifyResult(
        queued=len(messages),
        opted_out=opted_out,
        unreachable=len(ids) - opted_out - len(messages),
        channels=frozenset(m.to.channel for m in messages),
    )


async def preferred_accounts(
    session: AsyncSession, subscriber_ids: Iterable[int]
) -> dict[int, ChannelAccount]:
    """subscriber_id -> the reachable account they wrote from most recently (latest inbound
    message; without any, the one with the latest conversation). Subscribers without a
    reachable account are left out."""
    chosen = await _choose(session, list(dict.fromkeys(subscriber_ids)), conversations=False)
    return {sub_id: account for sub_id, (account, _) in chosen.items()}


async def _choose(
    session: AsyncSession, subscriber_ids: Sequence[int], *, conversations: bool = True
) -> dict[int, tuple[ChannelAccount, int | None]]:
    """subscriber_id -> (preferred reachable account, the conversation to write in: the one
    holding their latest message from that account, else its latest one; None if it has none)."""
    accounts: list[ChannelAccount] = []
    for chunk in _chunks(subscriber_ids):
        found = await session.scalars(
            select(ChannelAccount).where(ChannelAccount.subscriber_id.in_(chunk))
        )
        accounts.extend(found)
    by_id = {a.id: a for a in accounts}
    # The latest inbound message per account and per channel it was written in: a conversation
    # can move to the subscriber's linked account in another channel (`messages.channel`; NULL on
    # rows older than that column = the conversation's own channel).
    written = func.coalesce(Message.channel, Conversation.channel)
    last_in: dict[int, int] = {}  # account id -> latest message id written from it
    # Written in another account's conversation (one that moved channels) -> the subscriber's
    # account in the channel it was written in: (subscriber, channel) -> message id.
    elsewhere: dict[tuple[int, str], int] = {}
    latest_conversation: dict[int, int] = {}  # account id -> its latest conversation id
    for chunk in _chunks(list(by_id)):
        latest = await session.execute(
            select(Conversation.channel_account_id, written, func.max(Message.id))
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Conversation.channel_account_id.in_(chunk), Message.direction == Direction.IN)
            .group_by(Conversation.channel_account_id, written)
        )
        for account_id, channel, message_id in latest:
            account = by_id[account_id]
            if channel == account.channel:
                last_in[account_id] = max(last_in.get(account_id, 0), message_id)
            else:
                key = (account.subscriber_id, channel)
                elsewhere[key] = max(elsewhere.get(key, 0), message_id)
        newest = await session.execute(
            select(Conversation.channel_account_id, func.max(Conversation.id))
            .where(Conversation.channel_account_id.in_(chunk))
            .group_by(Conversation.channel_account_id)
        )
        latest_conversation.update({account_id: conv_id for account_id, conv_id in newest})

    def wrote(account: ChannelAccount) -> int:
        """The id of the latest message written from this account, 0 if none."""
        there = elsewhere.get((account.subscriber_id, account.channel), 0)
        return max(last_in.get(account.id, 0), there)

    def rank(account: ChannelAccount) -> tuple[int, int, int]:
        return wrote(account), latest_conversation.get(account.id, 0), account.id

    best: dict[int, ChannelAccount] = {}
    for account in accounts:
        if account.unreachable_at is not None:
            continue
        current = best.get(account.subscriber_id)
        if current is None or rank(account) > rank(current):
            best[account.subscriber_id] = account
    holding: dict[int, int] = {}  # message id -> its conversation
    if conversations:
        for chunk in _chunks(sorted({wrote(a) for a in best.values()} - {0})):
            held = await session.execute(
                select(Message.id, Message.conversation_id).where(Message.id.in_(chunk))
            )
            holding.update({message_id: conv_id for message_id, conv_id in held})
    return {
        sub: (acc, holding.get(wrote(acc)) or latest_conversation.get(acc.id))
        for sub, acc in best.items()
    }


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


__all__ = ["NotifyResult", "notify", "preferred_accounts"]
