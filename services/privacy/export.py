"""Subject access (152-ФЗ, art. 14): everything the bot keeps about one person, as JSON.

`export_person` gathers, for every subscriber row of the person (merged ones included):
the subscriber rows, their notification settings, channel accounts, every conversation with its
events and all its messages (the person's, the bot's, operators' and system notices, each with its
delivery status), tickets, outage reports and outage subscriptions, verifications, SMS and
link codes (never the code hashes), the editors' NLU reviews of their messages, and the audit
entries about them (who did what with their data; the actor's IP is left out: it is the
operator's, not the subject's). Operators appear by the name the subscriber was shown.

Operator uploads are listed by file name (`uploads` of a message); the images themselves stay on disk
(the subscriber received each of them in their chat). `summarise` is the short version the CLI
and the console show before an export or an erasure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nlu.phones import mask_phone
from services.privacy.person import Person
from services.privacy.scrub import upload_paths
from storage.models import (
    AuditEntry,
    Base,
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Incident,
    IncidentSubscriber,
    LinkCode,
    Message,
    NluReview,
    Operator,
    OutageReport,
    OutboxItem,
    Subscriber,
    Ticket,
    Verification,
    VerificationCode,
    utcnow,
)

FORMAT = "supportbot.subject-access/1"
SECRET_COLUMNS = {"code_hash"}  # one-time codes: a hash is still a secret, and not about them


def plain(value: Any) -> Any:
    """A column value as JSON: times as ISO 8601, decimals as numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_json(row: Base, *, without: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        col.key: plain(getattr(row, col.key))
        for col in row.__table__.columns
        if col.key not in without and col.key not in SECRET_COLUMNS
    }


@dataclass(frozen=True, slots=True)
class Summary:
    """What the CLI and the console show about a person before exporting or erasing."""

    primary: int
    subscriber_ids: tuple[int, ...]
    names: list[str]
    phone: str | None  # masked
    account_number: str | None  # masked
    channels: list[dict[str, Any]]
    created_at: datetime | None
    erased_at: datetime | None
    conversations: int
    messages: int
    tickets: int
    verifications: int

    @property
    def erased(self) -> bool:
        return self.erased_at is not None


def _mask_account(value: str | None) -> str | None:
    if not value:
        return None
    return "•" * max(len(value) - 4, 0) + value[-4:]


async def summarise(session: AsyncSession, person: Person) -> Summary:
    ids = person.subscriber_ids
    subs = list((await session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))).all())
    subs.sort(key=lambda s: ids.index(s.id))
    accounts = list(
        (
            await session.scalars(
                select(ChannelAccount)
                .where(ChannelAccount.subscriber_id.in_(ids))
                .order_by(ChannelAccount.id)
            )
        ).all()
    )
    convs = select(Conversation.id).where(Conversation.subscriber_id.in_(ids))
    n_convs = await session.scalar(select(func.count()).select_from(convs.subquery()))
    n_messages = await session.scalar(
        select(func.count()).select_from(Message).where(Message.conversation_id.in_(convs))
    )
    n_tickets = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.subscriber_id.in_(ids))
    )
    n_verifications = await session.scalar(
        select(func.count()).select_from(Verification).where(Verification.subscriber_id.in_(ids))
    )
    primary = subs[0] if subs else None
    names = [n for n in dict.fromkeys(s.display_name for s in subs) if n]
    erased = [s.erased_at for s in subs if s.erased_at is not None]
    return Summary(
        primary=person.primary,
        subscriber_ids=ids,
        names=names,
        phone=mask_phone(next((s.phone for s in subs if s.phone), None)),
        account_number=_mask_account(
            next((s.account_number for s in subs if s.account_number), None)
        ),
        channels=[
            {
                "channel": a.channel,
                "username": a.username,
                "name": " ".join(p for p in (a.first_name, a.last_name) if p) or None,
                "erased": a.external_user_id.startswith("erased:"),
            }
            for a in accounts
        ],
        created_at=primary.created_at if primary else None,
        erased_at=min(erased) if erased and len(erased) == len(subs) else None,
        conversations=int(n_convs or 0),
        messages=int(n_messages or 0),
        tickets=int(n_tickets or 0),
        verifications=int(n_verifications or 0),
    )


async def export_person(
    session: AsyncSession,
    person: Person,
    *,
    uploads: Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything held about `person` (see the module docstring), JSON-ready."""
    ids = person.subscriber_ids
    subs = list((await session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))).all())
    subs.sort(key=lambda s: ids.index(s.id))
    accounts = list(
        (
            await session.scalars(
                select(ChannelAccount)
                .where(ChannelAccount.subscriber_id.in_(ids))
                .order_by(ChannelAccount.id)
            )
        ).all()
    )
    account_ids = [a.id for a in accounts]
    convs = list(
        (
            await session.scalars(
                select(Conversation)
                .where(
                    or_(
                        Conversation.subscriber_id.in_(ids),
                        Conversation.channel_account_id.in_(account_ids),
                    )
                )
                .order_by(Conversation.id)
            )
        ).all()
    )
    conv_ids = select(Conversation.id).where(
        or_(Conversation.subscriber_id.in_(ids), Conversation.channel_account_id.in_(account_ids))
    )
    messages = list(
        (
            await session.scalars(
                select(Message)
                .where(Message.conversation_id.in_(conv_ids))
                .order_by(Message.created_at, Message.id)
            )
        ).all()
    )
    events = list(
        (
            await session.scalars(
                select(ConversationEvent)
                .where(ConversationEvent.conversation_id.in_(conv_ids))
                .order_by(ConversationEvent.at, ConversationEvent.id)
            )
        ).all()
    )
    message_ids = select(Message.id).where(Message.conversation_id.in_(conv_ids))
    deliveries: dict[int, dict[str, Any]] = {}
    for row in (
        await session.scalars(
            select(OutboxItem).where(OutboxItem.message_id.in_(message_ids)).order_by(OutboxItem.id)
        )
    ).all():
        assert row.message_id is not None
        deliveries[row.message_id] = {
            "status": row.status,
            "attempts": row.attempts,
            "created_at": plain(row.created_at),
            "sent_at": plain(row.sent_at),
            "error": row.last_error,
        }
    operator_ids = {m.operator_id for m in messages if m.operator_id} | {
        c.operator_id for c in convs if c.operator_id
    }
    names = (
        dict(
            (
                await session.execute(
                    select(Operator.id, Operator.name).where(Operator.id.in_(operator_ids))
                )
            ).all()
        )
        if operator_ids
        else {}
    )
    reviews = (
        await session.scalars(select(NluReview).where(NluReview.message_id.in_(message_ids)))
    ).all()

    by_conv: dict[int, dict[str, list[dict[str, Any]]]] = {
        c.id: {"messages": [], "events": []} for c in convs
    }
    for m in messages:
        item = row_json(m, without=frozenset({"conversation_id"}))
        item["uploads"] = _uploads(m.attachments, uploads)
        if m.operator_id:
            item["operator_name"] = names.get(m.operator_id)
        if m.id in deliveries:
            item["delivery"] = deliveries[m.id]
        by_conv.setdefault(m.conversation_id, {"messages": [], "events": []})["messages"].append(
            item
        )
    for e in events:
        by_conv.setdefault(e.conversation_id, {"messages": [], "events": []})["events"].append(
            row_json(e, without=frozenset({"conversation_id"}))
        )

    subscriptions = (
        await session.execute(
            select(IncidentSubscriber, Incident.area_title, Incident.status)
            .join(Incident, Incident.id == IncidentSubscriber.incident_id)
            .where(IncidentSubscriber.subscriber_id.in_(ids))
            .order_by(IncidentSubscriber.joined_at)
        )
    ).all()
    conv_id_list = [c.id for c in convs]
    audit_rows = (
        await session.scalars(
            select(AuditEntry)
            .where(
                or_(
                    AuditEntry.subscriber_id.in_(ids),
                    AuditEntry.conversation_id.in_(conv_id_list),
                )
            )
            .order_by(AuditEntry.at, AuditEntry.id)
        )
    ).all()
    return {
        "format": FORMAT,
        "generated_at": plain(now or utcnow()),
        "person": {"primary_subscriber_id": person.primary, "subscriber_ids": list(ids)},
        "subscribers": [row_json(s) for s in subs],
        "notification_settings": {
            "proactive_messages_off_since": plain(
                next((s.notifications_off_at for s in subs if s.notifications_off_at), None)
            ),
            "outage_subscriptions": [
                {
                    **row_json(sub),
                    "incident_area": area,
                    "incident_status": status,
                }
                for sub, area, status in subscriptions
            ],
        },
        "channel_accounts": [row_json(a) for a in accounts],
        "conversations": [
            {
                **row_json(c),
                "operator_name": names.get(c.operator_id) if c.operator_id else None,
                "events": by_conv[c.id]["events"],
                "messages": by_conv[c.id]["messages"],
            }
            for c in convs
        ],
        "tickets": [
            row_json(t)
            for t in (
                await session.scalars(
                    select(Ticket).where(Ticket.subscriber_id.in_(ids)).order_by(Ticket.id)
                )
            ).all()
        ],
        "outage_reports": [
            row_json(r)
            for r in (
                await session.scalars(
                    select(OutageReport)
                    .where(OutageReport.subscriber_id.in_(ids))
                    .order_by(OutageReport.id)
                )
            ).all()
        ],
        "verifications": [
            row_json(v)
            for v in (
                await session.scalars(
                    select(Verification)
                    .where(
                        or_(
                            Verification.subscriber_id.in_(ids),
                            Verification.account_id.in_(account_ids),
                        )
                    )
                    .order_by(Verification.id)
                )
            ).all()
        ],
        "verification_codes": [
            row_json(v)
            for v in (
                await session.scalars(
                    select(VerificationCode)
                    .where(VerificationCode.account_id.in_(account_ids))
                    .order_by(VerificationCode.id)
                )
            ).all()
        ],
        "link_codes": [
            row_json(v)
            for v in (
                await session.scalars(
                    select(LinkCode)
                    .where(
                        or_(
                            LinkCode.account_id.in_(account_ids),
                            LinkCode.target_account_id.in_(account_ids),
                        )
                    )
                    .order_by(LinkCode.id)
                )
            ).all()
        ],
        "nlu_reviews": [row_json(r) for r in reviews],
        "audit": [row_json(a, without=frozenset({"ip"})) for a in audit_rows],
    }


def _uploads(attachments: Any, uploads: Path | None) -> list[str]:
    return [path.name for path in upload_paths(attachments, uploads)]
