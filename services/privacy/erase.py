"""Erasure on request (152-ФЗ, the subject's right to have their data destroyed).

`erase_person` removes what identifies a person or what they said, everywhere the bot keeps it,
in the caller's transaction, and keeps the rows the service figures are counted from:
- subscribers (the person's every merged row): name, phone, account number, `data` (the
  billing's customer record) cleared, `erased_at` set (the first erasure's time is kept);
- channel accounts: names and username cleared; the platform user id and chat id replaced by
  `erased:<account id>`. So the bot no longer recognises the person: when they write again they
  are a new subscriber with a new account and no history (the decision: an erased person's
  identity can't be kept to reconnect them, that is what was erased);
- conversations: slots (form answers, the customer record) and the rating comment cleared,
  operators' transfer notes removed from the events; a chat still open is closed (event
  "erased"), so it leaves the queue and no operator writes into it;
- messages, outbox, processed updates, NLU reviews, operator uploads: services/privacy/scrub.py;
  every message of their conversations, the bot's and operators' turns included;
- tickets: kept (numbers, kinds, status, times) with `details` and `result` cleared;
- verifications: phone, account number and the backend's customer id cleared, revoked;
  SMS codes and link codes of their accounts (or to their phones) deleted;
- outage subscriptions deleted (no one to tell any more); outage reports kept: they name a
  street, not a person, and the incidents' counts rest on them;
- the audit log is kept, and an entry `subject_erased` (who, when, what was removed) added.
Idempotent: a second erasure finds nothing left and records zero counts.

Not reached from here (they are outside this database): the operator's billing/CRM, copies in
the Telegram operator group's topics, examples an editor added to content/nlu from the console.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.privacy.person import Person
from services.privacy.scrub import (
    ERASURE,
    Scrubbed,
    delete_uploads,
    has_json,
    marker,
    scrub_messages,
    scrub_outbox,
)
from storage import repo
from storage.db import note_event
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    ConversationState,
    IncidentSubscriber,
    LinkCode,
    Message,
    OutboxItem,
    Subscriber,
    Ticket,
    Verification,
    VerificationCode,
    utcnow,
)

ACTION = "subject_erased"
BATCH = 500


@dataclass(slots=True)
class Erasure:
    """What one erasure removed (the audit entry's details)."""

    subscriber_ids: list[int]
    already_erased: bool = False
    accounts: int = 0
    conversations: int = 0
    conversations_closed: int = 0
    messages: int = 0
    outbox: int = 0
    outbox_cancelled: int = 0
    processed_updates: int = 0
    nlu_reviews: int = 0
    uploads: int = 0
    tickets: int = 0
    verifications: int = 0
    codes: int = 0
    incident_subscriptions: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def erase_person(
    session: AsyncSession,
    person: Person,
    *,
    uploads: Path | None,
    actor: str,
    operator_id: int | None = None,
    ip: str | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> Erasure:
    """Erase `person` (see the module docstring) in the caller's transaction. `uploads`: the
    operator uploads directory (resolved), None to leave files alone. `actor`, `operator_id`,
    `ip`, `by` (e.g. the OS user of the CLI) go into the audit entry."""
    now = now or utcnow()
    ids = list(person.subscriber_ids)
    subs = list(
        (
            await session.scalars(
                select(Subscriber).where(Subscriber.id.in_(ids)).with_for_update()
            )
        ).all()
    )
    done = Erasure(subscriber_ids=ids)
    done.already_erased = bool(subs) and all(s.erased_at is not None for s in subs)
    accounts = list(
        (
            await session.scalars(
                select(ChannelAccount).where(ChannelAccount.subscriber_id.in_(ids))
            )
        ).all()
    )
    account_ids = [a.id for a in accounts]
    conv_filter = or_(
        Conversation.subscriber_id.in_(ids), Conversation.channel_account_id.in_(account_ids)
    )
    convs = list((await session.scalars(select(Conversation).where(conv_filter))).all())
    conv_ids = [c.id for c in convs]

    # Phones and SMS codes first: the phones to look for are about to be cleared.
    phones = {s.phone for s in subs if s.phone} | set(
        (
            await session.scalars(
                select(Verification.phone).where(
                    or_(
                        Verification.subscriber_id.in_(ids),
                        Verification.account_id.in_(account_ids),
                    ),
                    Verification.phone.is_not(None),
                )
            )
        ).all()
    )
    codes = await session.execute(
        delete(VerificationCode).where(
            or_(VerificationCode.account_id.in_(account_ids), VerificationCode.phone.in_(phones))
        )
    )
    links = await session.execute(
        delete(LinkCode).where(
            or_(LinkCode.account_id.in_(account_ids), LinkCode.target_account_id.in_(account_ids))
        )
    )
    done.codes = _count(codes) + _count(links)

    scrubbed = Scrubbed()
    if conv_ids:
        pending = select(Message.id).where(
            Message.conversation_id.in_(conv_ids),
            or_(marker().is_(None), marker() != ERASURE),
        )
        last = 0
        while batch := list(
            (
                await session.scalars(
                    pending.where(Message.id > last).order_by(Message.id).limit(BATCH)
                )
            ).all()
        ):
            scrubbed.add(await scrub_messages(session, batch, why=ERASURE, uploads=uploads))
            last = batch[-1]
    if account_ids:  # rows to their chats with no message (none today, but the outbox allows it)
        extra, extra_cancelled = await scrub_outbox(
            session, OutboxItem.channel_account_id.in_(account_ids), reason=ERASURE
        )
        scrubbed.outbox += extra
        scrubbed.outbox_cancelled += extra_cancelled
    done.messages = scrubbed.messages
    done.outbox, done.outbox_cancelled = scrubbed.outbox, scrubbed.outbox_cancelled
    done.processed_updates, done.nlu_reviews = scrubbed.processed_updates, scrubbed.nlu_reviews

    for conv in convs:
        changed = bool(conv.slots) or conv.csat_comment is not None
        if conv.state != ConversationState.CLOSED:
            await repo.set_state(session, conv, ConversationState.CLOSED, kind="erased")
            note_event(session, {"type": "closed", "conversation_id": conv.id})
            done.conversations_closed += 1
            changed = True
        if changed:
            conv.slots = {}
            conv.csat_comment = None
            done.conversations += 1
    if conv_ids:
        await _drop_notes(session, conv_ids)

    for acc in accounts:
        tomb = f"erased:{acc.id}"
        if acc.external_user_id != tomb or acc.first_name or acc.last_name or acc.username:
            done.accounts += 1
        acc.external_user_id = tomb
        acc.chat_id = tomb
        acc.first_name = acc.last_name = acc.username = None

    tickets = await session.execute(
        update(Ticket)
        .where(
            Ticket.subscriber_id.in_(ids), or_(has_json(Ticket.details), Ticket.result.is_not(None))
        )
        .values(details={}, result=None)
    )
    done.tickets = _count(tickets)
    ver_filter = or_(Verification.subscriber_id.in_(ids), Verification.account_id.in_(account_ids))
    verifications = await session.execute(
        update(Verification)
        .where(
            ver_filter,
            or_(
                Verification.phone.is_not(None),
                Verification.account_number.is_not(None),
                Verification.customer_id != "",
            ),
        )
        .values(phone=None, account_number=None, customer_id="")
    )
    done.verifications = _count(verifications)
    await session.execute(
        update(Verification)
        .where(ver_filter, Verification.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="erased")
    )
    subscriptions = await session.execute(
        delete(IncidentSubscriber).where(IncidentSubscriber.subscriber_id.in_(ids))
    )
    done.incident_subscriptions = _count(subscriptions)

    for sub in subs:
        sub.display_name = sub.phone = sub.account_number = None
        sub.data = {}
        sub.erased_at = sub.erased_at or now

    # Files last, still inside the transaction: if the commit then fails, the person asked for
    # them to be gone anyway, and a second erasure finishes the rest.
    done.uploads = await delete_uploads(scrubbed)
    details = done.to_json()
    if by:
        details["by"] = by
    audit.record(
        session,
        ACTION,
        actor=actor,
        operator_id=operator_id,
        subscriber_id=person.primary,
        details=details,
        ip=ip,
    )
    await session.flush()
    return done


async def _drop_notes(session: AsyncSession, conv_ids: list[int]) -> None:
    """Operators' free-text notes (transfers) leave the events; groups and reasons stay."""
    rows = (
        await session.execute(
            select(ConversationEvent.id, ConversationEvent.data).where(
                ConversationEvent.conversation_id.in_(conv_ids),
                ConversationEvent.data["note"].as_string().is_not(None),
            )
        )
    ).all()
    changes = [
        {"id": event_id, "data": {k: v for k, v in (data or {}).items() if k != "note"}}
        for event_id, data in rows
    ]
    if changes:
        await session.execute(update(ConversationEvent), changes)


def _count(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
