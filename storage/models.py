"""The database schema: typed SQLAlchemy 2 models. One module, because the tables reference each other.

Runs unchanged on SQLite (the embedded default, storage/sqlite_inline.py) and PostgreSQL
(asyncpg); Alembic migrations in storage/migrations create it. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Always returns aware UTC datetimes (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ConversationState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"  # handed off, waiting for an operator
    WITH_OPERATOR = "with_operator"
    RATING = "rating"  # the operator closed it; the subscriber is asked for CSAT (and NPS)
    CLOSED = "closed"


class OperatorRole(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    EDITOR = "editor"
    ADMIN = "admin"


class OperatorStatus(StrEnum):
    ONLINE = "online"
    AWAY = "away"  # logged in, takes no new chats
    OFFLINE = "offline"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Author(StrEnum):
    SUBSCRIBER = "subscriber"
    BOT = "bot"
    OPERATOR = "operator"
    SYSTEM = "system"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # permanent error: kept for a human, never retried
    UNREACHABLE = "unreachable"  # the subscriber blocked the bot


class TicketStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"  # by the subscriber, before it was done


class Subscriber(Base):
    """A person. May own several channel accounts (a Telegram and a VK one)."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    account_number: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Proactive messages (outage over, announcements) are not sent while this is set.
    notifications_off_at: Mapped[datetime | None] = mapped_column()
    # Set when this person proved they are also another subscriber: their accounts moved there.
    merged_into: Mapped[int | None] = mapped_column(BigInteger)
    # Set when their personal data was erased on request (152-ФЗ): names, phones, texts gone.
    erased_at: Mapped[datetime | None] = mapped_column()

    accounts: Mapped[list[ChannelAccount]] = relationship(back_populates="subscriber")


class ChannelAccount(Base):
    """A subscriber's identity in one channel: the platform user id and the chat we answer in."""

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("channel", "external_user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(100))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    unreachable_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="accounts")


class Conversation(Base):
    """One episode of support, from the first message until it is closed."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_account_state", "channel_account_id", "state"),
        Index("ix_conversations_queue", "state", "skill_group", "queued_at"),
        Index("ix_conversations_operator", "operator_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    channel_account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=ConversationState.BOT)
    skill_group: Mapped[str | None] = mapped_column(String(32))
    operator_id: Mapped[int | None] = mapped_column(BigInteger)
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    # Handoff (handoff/): when it joined the queue, who has it, SLA marks, the outcome.
    queued_at: Mapped[datetime | None] = mapped_column()
    assigned_at: Mapped[datetime | None] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column()
    operator_replied_at: Mapped[datetime | None] = mapped_column()  # the latest operator reply
    # when its operator last had it open in the console: their unread count runs from here
    operator_read_at: Mapped[datetime | None] = mapped_column()
    handoff_reason: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(default=0)
    declined_by: Mapped[list[Any]] = mapped_column(default=list)  # operators who missed it
    resolution: Mapped[str | None] = mapped_column(String(32))
    csat: Mapped[int | None] = mapped_column()
    csat_comment: Mapped[str | None] = mapped_column(Text)
    nps: Mapped[int | None] = mapped_column()
    topic_id: Mapped[str | None] = mapped_column(String(32))  # Telegram operator group thread


class ConversationEvent(Base):
    """A state change or other notable moment; SLA figures are computed from these rows."""

    __tablename__ = "conversation_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "state", "escalated", "assigned", ...
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Message(Base):
    """Every turn of a conversation, both directions, whoever wrote it."""

    __tablename__ = "messages"
    # Analytics and the NLU review list read recent messages by time.
    __table_args__ = (Index("ix_messages_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))
    author: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(String(300))
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    buttons: Mapped[list[Any]] = mapped_column(default=list)
    edited: Mapped[bool] = mapped_column(default=False)
    platform_update_id: Mapped[str | None] = mapped_column(String(64))
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    nlu: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The channel it was written or delivered in: a conversation can move between a linked
    # subscriber's channels ("продолжим здесь"), so the timeline marks each message.
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessedUpdate(Base):
    """Platform update ids already accepted: a redelivered update is dropped here."""

    __tablename__ = "processed_updates"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(Base):
    """A subscriber's update the bot could not process for a reason retrying cannot fix (a bug,
    data the database refuses): kept for supervisors (console "Сбои") instead of being
    retried in a loop; the subscriber got an apology. `resolved_at` when someone looked at it."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class OutboxItem(Base):
    """A reply waiting for (or done with) delivery; written in the same transaction as its message."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "channel", "status", "not_before"),
        Index("ix_outbox_chat", "channel", "chat_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    channel_account_id: Mapped[int | None] = mapped_column(ForeignKey("channel_accounts.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    body: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    parts_sent: Mapped[int] = mapped_column(default=0)
    platform_message_ids: Mapped[list[Any]] = mapped_column(default=list)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()

    message: Mapped[Message | None] = relationship()


class Ticket(Base):
    """The bot's own record of a ticket it created in the operator's systems (visit, complaint, ...).

    `number` is what the backend issued and the subscriber quotes; `due_at` is the promised time,
    so open tickets past it can be found by (status, due_at)."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # "technician_visit", "complaint", ...
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
    result: Mapped[str | None] = mapped_column(Text)


# --- The DEMO billing/CRM (services/backend/demo.py) ------------------------------------------
# Stand-ins for the operator's own systems, kept in the bot's database so the sandbox and the
# tests have subscribers to talk about. A real deployment's backend does not use these tables.


class DemoTariff(Base):
    __tablename__ = "demo_tariffs"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))  # roubles per month
    summary: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # "mobile" | "home"
    sort: Mapped[int] = mapped_column(default=0)


class DemoCustomer(Base):
    __tablename__ = "demo_customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(16), unique=True)  # e.g. +79161234567
    account: Mapped[str] = mapped_column(String(20), unique=True)  # digits
    address: Mapped[str | None] = mapped_column(String(200))  # home connection, if any
    area: Mapped[str | None] = mapped_column(String(100))  # outage area key of the address
    balance: Mapped[float] = mapped_column(Numeric(12, 2, asdecimal=False))
    tariff_code: Mapped[str] = mapped_column(ForeignKey("demo_tariffs.code"))  # mobile
    home_tariff_code: Mapped[str | None] = mapped_column(ForeignKey("demo_tariffs.code"))
    promised_until: Mapped[date | None] = mapped_column()


class DemoOutage(Base):
    __tablename__ = "demo_outages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(32), unique=True)  # monitoring id; seed key
    area: Mapped[str] = mapped_column(String(100), index=True)
    description: Mapped[str] = mapped_column(Text)
    eta: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class DemoTicket(Base):
    """The demo CRM's tickets; the autoincrement id makes numbers unique across processes."""

    __tablename__ = "demo_tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)  # set right after insert
    kind: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("demo_customers.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    updated_at: Mapped[datetime | None] = mapped_column()


class Operator(Base):
    """A person who answers handed-off chats (or supervises, or edits content)."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=OperatorRole.OPERATOR)
    groups: Mapped[list[Any]] = mapped_column(default=list)
    max_chats: Mapped[int] = mapped_column(default=3)
    telegram_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OperatorStatus.OFFLINE)
    status_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A disabled operator can't log in, and their console sessions end at once.
    disabled_at: Mapped[datetime | None] = mapped_column()


class ConsoleSession(Base):
    """A login to the operator console; the cookie holds a token whose hash is the id."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class CannedReply(Base):
    """A ready answer operators insert by shortcut ("/pay") or by searching."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    groups: Mapped[list[Any]] = mapped_column(default=list)  # empty = every group


class LinkCode(Base):
    """A one-time code proving one person owns two channel accounts: sent to `target_account`
    (the other channel), typed back in `account`. Only a hash is stored."""

    __tablename__ = "link_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"), index=True)
    target_account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)  # wrong codes typed against it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class IncidentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Incident(Base):
    """A known outage in an area: opened by detection (many contacts from one area), by a
    supervisor, or closed by one. While open, the bot tells subscribers there about it first."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_status_area", "status", "area"),
        # One open incident per area, even when two app processes detect it at once.
        Index(
            "uq_incidents_open_area",
            "area",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    area: Mapped[str] = mapped_column(String(100))  # normalised area key (a street, a district)
    area_title: Mapped[str] = mapped_column(String(200))  # as people write it
    status: Mapped[str] = mapped_column(String(16), default=IncidentStatus.OPEN)
    source: Mapped[str] = mapped_column(String(16))  # "detected" | "declared"
    description: Mapped[str] = mapped_column(Text)
    eta: Mapped[datetime | None] = mapped_column()
    reports: Mapped[int] = mapped_column(default=0)  # contacts that opened it or came later
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by: Mapped[int | None] = mapped_column(BigInteger)  # operator id; None = detection
    closed_at: Mapped[datetime | None] = mapped_column()
    closed_by: Mapped[int | None] = mapped_column(BigInteger)
    resolution: Mapped[str | None] = mapped_column(Text)  # what subscribers were told
    notified: Mapped[int] = mapped_column(default=0)  # subscribers messaged on close


class OutageReport(Base):
    """One subscriber's contact about no internet / no TV at an area: the detector counts these."""

    __tablename__ = "outage_reports"
    __table_args__ = (Index("ix_outage_reports_area_at", "area", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    area: Mapped[str] = mapped_column(String(100))
    area_title: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(String(32))  # the intent: internet_down, tv_down
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentSubscriber(Base):
    """Who is told when an incident closes; `notify` False = they said not to."""

    __tablename__ = "incident_subscribers"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    notify: Mapped[bool] = mapped_column(default=True)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column()


class NluReview(Base):
    """An editor's verdict on a subscriber message the NLU got wrong or was unsure of: the right
    intent (added to the training data) or None (ignored: not a useful example)."""

    __tablename__ = "nlu_reviews"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    intent: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    operator_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Verified identity and personal-data duties (152-ФЗ) ---------------------------------------


class VerificationMethod(StrEnum):
    CONTACT = "contact"  # Telegram: the subscriber shared their own contact
    SMS = "sms"  # a one-time code sent by SMS to the number, typed back
    SECRET = "secret"  # a secret the operator holds (code word, passport digits)
    OPERATOR = "operator"  # an operator checked it in the chat


class Verification(Base):
    """Proof that whoever writes from a channel account is a given customer of the operator.

    Valid from `verified_at` to `expires_at` unless revoked (unlink, «выйти», «это не мой
    номер», an operator). Flows ask for it before personal data or account actions; a "fresh"
    one (step-up) is a verification younger than the step-up window."""

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_account_at", "account_id", "verified_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))  # the backend's id of the customer
    phone: Mapped[str | None] = mapped_column(String(32))
    account_number: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))  # VerificationMethod
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class VerificationCode(Base):
    """A one-time code sent by SMS for `account` to type back. Only a hash is stored; it lives a
    few minutes and takes a few tries; codes are rate-limited per account and per phone."""

    __tablename__ = "verification_codes"
    __table_args__ = (
        Index("ix_verification_codes_account_at", "account_id", "created_at"),
        Index("ix_verification_codes_phone_at", "phone", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    phone: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base):
    """The audit log, append-only: who did what, to whose data. Kept when a person's data is
    erased (it names ids, not their texts)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_subscriber_at", "subscriber_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(16))  # operator | bot | system | cli
    operator_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(48))  # login, chat_opened, verified, ...
    subscriber_id: Mapped[int | None] = mapped_column(BigInteger)
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class DemoSms(Base):
    """The demo backend's SMS gateway: what it "sent" (the sandbox and GET /sandbox/sms show it)."""

    __tablename__ = "demo_sms"
    __table_args__ = (Index("ix_demo_sms_phone_at", "phone", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# An upload's name: random, with the extension its bytes were recognised as.
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif)$")


class Upload(Base):
    """An image an operator attached in the console (handoff/console/uploads.py), kept here so
    every app process behind a load balancer serves and sends it. Messages refer to it by
    `name` (`<32 hex>.png|jpg|gif`, the last part of their image path); retention and erasure
    delete the row."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_created_at", "created_at"),)

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(255))  # as the operator's browser named it
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContentBlob(Base):
    """One content file's bytes, stored once however many versions and drafts hold it (named
    by their SHA-256): a version of the whole content tree costs a row per file, not a copy."""

    __tablename__ = "content_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ContentVersion(Base):
    """A published version of the content tree (dialogs, slots, NLU data, knowledge articles,
    conversation tests, media): immutable once written. The newest is the one every app process
    serves (dialogs/versions.py); a restore of an older one is itself a new version."""

    __tablename__ = "content_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))  # seed | import | publish | restore
    parent_id: Mapped[int | None] = mapped_column(BigId)  # the version it replaced
    restored_from: Mapped[int | None] = mapped_column(BigId)
    # {"added": [...], "changed": [...], "removed": [...]} against the parent, and the diff text.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ContentVersionFile(Base):
    """Which bytes a version holds at a path relative to the content folder."""

    __tablename__ = "content_version_files"

    version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("content_versions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), ForeignKey("content_blobs.sha256"))


class ContentDraftFile(Base):
    """The deployment's one draft (shared by its editors): every file of the tree as it will be
    published. `revision` grows with each save of the file, so an editor saving over a change
    they have not seen is refused (the version check)."""

    __tablename__ = "content_draft_files"

    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), ForeignKey("content_blobs.sha256"))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContentTestRun(Base):
    """The conversation tests' result for one draft (by the tree's fingerprint): publishing
    that draft needs a passing run, whichever app process ran it."""

    __tablename__ = "content_test_runs"

    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    passed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    results: Mapped[list[Any]] = mapped_column(default=list)
    run_by: Mapped[str] = mapped_column(String(64))
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
