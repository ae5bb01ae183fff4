"""What the console shows, read from the database into plain JSON-able dicts: the queue, an
operator's chats, and a chat with its full context. The pages (jinja2) and the JSON API (the
page JS) render the same dicts, so both always show the same thing.

Who may see what is decided here too (`can_view`): supervisors and admins everything; an operator
their own chats and the waiting chats of their skill groups; an editor no chat at all. What each
role sees of the personal data in a chat is `handoff.console.privacy`'s policy, applied here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.content import Content
from handoff.console import notes, privacy, readable
from handoff.console.assist import bot_answer, suggested_article
from handoff.console.privacy import Policy
from handoff.console.security import Me
from handoff.console.uploads import upload_name
from handoff.desk import RESOLUTIONS
from storage.models import (
    Author,
    ChannelAccount,
    Conversation,
    ConversationState,
    Message,
    Operator,
    OperatorRole,
    Subscriber,
    Ticket,
    TicketStatus,
    Verification,
    VerificationMethod,
    utcnow,
)

CHANNELS = {"telegram": "Telegram", "vk": "VK"}
HANDLED_LABELS = {"cancel": "отмена формы", "command": "команда"}
EARLIER_MESSAGES = 30  # of a person's earlier chats, shown above the current one
STATES = {
    ConversationState.BOT: "с ботом",
    ConversationState.QUEUED: "в очереди",
    ConversationState.WITH_OPERATOR: "у оператора",
    ConversationState.RATING: "закрыт, ждём оценку",
    ConversationState.CLOSED: "закрыт",
}
RESOLUTION_LABELS = {
    "solved": "решено",
    "not_solved": "не решено",
    "duplicate": "дубликат",
    "spam": "спам",
    "no_reply": "абонент не ответил",
}
STATUS_LABELS = {"online": "на линии", "away": "отошёл", "offline": "не в сети"}
AUTHORS = {
    Author.SUBSCRIBER: "Абонент",
    Author.BOT: "Бот",
    Author.OPERATOR: "Оператор",
    Author.SYSTEM: "Система",
}
FIELD_LABELS = {
    "name": "Имя",
    "phone": "Телефон",
    "account": "Лицевой счёт",
    "address": "Адрес",
    "area": "Район",
    "id": "ID в биллинге",
}
ATTACHMENTS = {
    "photo": "фото",
    "sticker": "стикер",
    "voice": "голосовое",
    "audio_message": "голосовое",
    "video": "видео",
    "document": "файл",
    "doc": "файл",
    "audio": "аудио",
}
PREVIEW = 140
VERIFICATION_METHODS: dict[str, str] = {
    VerificationMethod.CONTACT: "поделился контактом в Telegram",
    VerificationMethod.SMS: "код из SMS",
    VerificationMethod.SECRET: "кодовое слово",
    VerificationMethod.OPERATOR: "проверил оператор",
}
NOT_VERIFIED = "не подтверждён"


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


# -- small formatting helpers -------------------------------------------------------------------


def local(at: datetime | None, tz: tzinfo, now: datetime | None = None) -> str | None:
    """'14:03' today, '03.11 14:03' another day, '03.11.2025 14:03' another year."""
    if at is None:
        return None
    here = at.astimezone(tz)
    today = (now or utcnow()).astimezone(tz)
    if here.date() == today.date():
        return here.strftime("%H:%M")
    if here.year == today.year:
        return here.strftime("%d.%m %H:%M")
    return here.strftime("%d.%m.%Y %H:%M")


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def seconds(since: datetime | None, now: datetime) -> int | None:
    return max(0, int((now - since).total_seconds())) if since is not None else None


def person(account: ChannelAccount | None, subscriber: Subscriber | None = None) -> str:
    if account is not None:
        name = " ".join(p for p in (account.first_name, account.last_name) if p)
        if name:
            return name
        if account.username:
            return f"@{account.username}"
    if subscriber is not None and subscriber.display_name:
        return subscriber.display_name
    return f"абонент {account.external_user_id}" if account is not None else "абонент"


def _shorten(text: str | None, limit: int = PREVIEW) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flatten(
    data: dict[str, Any], policy: Policy, prefix: str = "", *, scope: str = ""
) -> list[dict[str, str]]:
    """Key/value rows for display, masked by the role's policy (`scope`: what the data is, for
    that policy: "customer." for a billing record)."""
    rows: list[dict[str, str]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flatten(value, policy, f"{prefix}{key}.", scope=scope)
            continue
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        value = privacy.show(f"{scope}{prefix}{key}", value, policy)
        label = FIELD_LABELS.get(key, key)
        rows.append({"key": f"{prefix}{key}", "label": f"{prefix}{label}", "value": str(value)})
    return rows


# -- access ----------------------------------------------------------------------------------


def can_view(who: Me, conv: Conversation) -> bool:
    if who.editor:
        return False
    if who.supervisor or conv.operator_id == who.id:
        return True
    if conv.state == ConversationState.CLOSED:
        # A past conversation found by search: an operator helping the subscriber now needs
        # their history. Read-only (no action applies to a closed chat); opening it is audited.
        return True
    return conv.state == ConversationState.QUEUED and conv.skill_group in who.groups


def actions(who: Me, conv: Conversation) -> dict[str, bool]:
    """Which buttons make sense now (the desk re-checks every action anyway)."""
    mine = conv.state == ConversationState.WITH_OPERATOR and (
        conv.operator_id == who.id or who.supervisor
    )
    queued = conv.state == ConversationState.QUEUED
    take = (queued and (who.supervisor or conv.skill_group in who.groups)) or (
        who.supervisor
        and conv.state == ConversationState.WITH_OPERATOR
        and conv.operator_id != who.id
    )
    return {
        "take": take,
        "reply": mine,
        "transfer": mine,
        "return": mine,
        "verify": mine,
        "close": mine or (queued and who.supervisor),
    }


# -- the queue page ------------------------------------------------------------------------------


async def _accounts(session: AsyncSession, ids: Iterable[int]) -> dict[int, ChannelAccount]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.scalars(select(ChannelAccount).where(ChannelAccount.id.in_(wanted)))
    return {a.id: a for a in rows}


async def _last_messages(
    session: AsyncSession, conv_ids: list[int], author: str | None = None
) -> dict[int, Message]:
    if not conv_ids:
        return {}
    last = select(func.max(Message.id)).where(Message.conversation_id.in_(conv_ids))
    last = last.where(Message.author == author) if author else last
    rows = await session.scalars(
        select(Message).where(Message.id.in_(last.group_by(Message.conversation_id)))
    )
    return {m.conversation_id: m for m in rows}


async def queue_view(session: AsyncSession, who: Me, tz: tzinfo) -> dict[str, Any]:
    """Waiting chats of my groups (all groups for supervisors) and the chats I have."""
    now = utcnow()
    waiting_q = select(Conversation).where(Conversation.state == ConversationState.QUEUED)
    if not who.supervisor:
        waiting_q = waiting_q.where(Conversation.skill_group.in_(who.groups))
    waiting = (
        await session.scalars(
            waiting_q.order_by(
                Conversation.priority.desc(), Conversation.queued_at, Conversation.id
            )
        )
    ).all()
    mine = (
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.state == ConversationState.WITH_OPERATOR,
                Conversation.operator_id == who.id,
            )
            .order_by(Conversation.assigned_at, Conversation.id)
        )
    ).all()
    convs = [*waiting, *mine]
    accounts = await _accounts(session, (c.channel_account_id for c in convs))
    ids = [c.id for c in convs]
    from_subscriber = await _last_messages(session, ids, Author.SUBSCRIBER)
    last_any = await _last_messages(session, ids)
    policy = privacy.policy_for(who.role)

    def item(conv: Conversation) -> dict[str, Any]:
        preview = from_subscriber.get(conv.id)
        last = last_any.get(conv.id)
        return {
            "id": conv.id,
            "channel": conv.channel,
            "channel_label": CHANNELS.get(conv.channel, conv.channel),
            "name": person(accounts.get(conv.channel_account_id)),
            "group": conv.skill_group,
            "reason": readable.reason(conv.handoff_reason, None),
            "priority": conv.priority,
            "queued_at": iso(conv.queued_at),
            "waiting_s": seconds(conv.queued_at, now),
            "assigned_at": iso(conv.assigned_at),
            "preview": _shorten(
                privacy.message_text(preview.text or "", preview.author, policy)
                if preview
                else None
            ),
            "preview_time": local(preview.created_at, tz, now) if preview else None,
            "needs_answer": last is not None and last.author == Author.SUBSCRIBER,
        }

    return {
        "me": {
            "id": who.id,
            "name": who.name,
            "role": who.role,
            "groups": list(who.groups),
            "status": who.status,
        },
        "queue": [item(c) for c in waiting],
        "mine": [item(c) for c in mine],
    }


# -- one chat with its full context ------------------------------------------------------------


def _intent_title(content: Content | None, intent: str | None) -> str | None:
    if content is None or not intent:
        return None
    flow = content.intent_flows.get(intent)
    found = content.flows.get(flow) if flow else None
    return found.title if found is not None else None


def _nlu(
    nlu: dict[str, Any] | None, content: Content | None, policy: Policy
) -> dict[str, Any] | None:
    if not nlu or not nlu.get("intent"):
        return None
    confidence = float(nlu.get("confidence") or 0.0)
    ranking = [
        (str(r.get("name")), float(r.get("confidence") or 0))
        for r in (nlu.get("ranking") or [])[:4]
        if isinstance(r, dict)
    ]
    alternatives = [(name, conf) for name, conf in ranking if name != nlu["intent"]][:3]
    entities = [
        {
            "entity": str(e.get("entity")),
            "value": str(privacy.show(str(e.get("entity")), str(e.get("value")), policy) or ""),
        }
        for e in (nlu.get("entities") or [])
        if isinstance(e, dict)
    ]
    handled = str(nlu.get("handled_as") or "")
    if handled.startswith("form:") or handled in HANDLED_LABELS:  # the NLU's guess didn't matter
        return {
            "intent": HANDLED_LABELS.get(handled, "ответ в форме"),
            "title": handled.removeprefix("form:") if handled.startswith("form:") else None,
            "confidence": None,
            "percent": "",
            "alternatives": [],
            "entities": entities,
        }
    return {
        "intent": str(nlu["intent"]),
        "title": _intent_title(content, str(nlu["intent"])),
        "confidence": round(confidence, 3),
        "percent": f"{round(confidence * 100)}%",
        "alternatives": [f"{name} {round(conf * 100)}%" for name, conf in alternatives],
        "entities": entities,
    }


def _attachments(raw: list[Any], uploads: Path, base: str) -> list[dict[str, Any]]:
    out = []
    for item in raw or []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("kind") or item.get("type") or "file")
        ref = item.get("ref")
        url = None
        if isinstance(ref, str) and not ref.startswith(("http://", "https://")):
            path = Path(ref)
            # another app process may keep its data elsewhere: the upload's name is what counts
            if path.parent == uploads or upload_name(ref) is not None:
                url = f"{base}/api/uploads/{path.name}"
        out.append({"kind": kind, "label": ATTACHMENTS.get(kind, kind), "url": url})
    return out


def message_item(
    m: Message,
    *,
    tz: tzinfo,
    now: datetime,
    operators: dict[int, str],
    content: Content | None,
    uploads: Path,
    base: str,
    policy: Policy,
    channel: str | None = None,
    earlier: bool = False,
    slots: dict[str, Any] | None = None,
) -> dict[str, Any]:
    label = AUTHORS.get(Author(m.author), m.author) if m.author in tuple(Author) else m.author
    if m.author == Author.OPERATOR and m.operator_id in operators:
        label = operators[m.operator_id]
    return {
        "id": m.id,
        "author": m.author,
        "author_label": label,
        "direction": m.direction,
        "text": privacy.message_text(m.text or "", m.author, policy),
        # the pressed button by its title; the raw payload only for the tooltip
        "payload": readable.button_title(m.payload, content, slots or {}) if m.payload else None,
        "payload_raw": m.payload,
        "buttons": [str(b) for row in m.buttons or [] for b in (row or [])],
        "attachments": _attachments(m.attachments, uploads, base),
        "edited": m.edited,
        "at": iso(m.created_at),
        "time": local(m.created_at, tz, now),
        "nlu": _nlu(m.nlu, content, policy) if m.author == Author.SUBSCRIBER else None,
        "channel": m.channel or channel,
        "channel_label": CHANNELS.get(m.channel or channel or "", m.channel or channel),
        "conversation_id": m.conversation_id,
        "earlier": earlier,  # from another chat of this person (any of their channels)
    }


async def chat_view(
    session: AsyncSession,
    who: Me,
    conv_id: int,
    *,
    tz: tzinfo,
    content: Content | None,
    groups: list[str],
    uploads: Path,
    base: str,
) -> dict[str, Any]:
    """The chat and everything an operator needs to answer without asking again, with personal
    data masked by the role's policy (`handoff.console.privacy`)."""
    now = utcnow()
    policy = privacy.policy_for(who.role)
    conv = await session.get(Conversation, conv_id)
    if conv is None:
        raise NotFound(f"no chat {conv_id}")
    if not can_view(who, conv):
        raise Forbidden("this chat is not yours")
    account = await session.get(ChannelAccount, conv.channel_account_id)
    subscriber = await session.get(Subscriber, conv.subscriber_id)
    messages = (
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id)
            .order_by(Message.created_at, Message.id)
        )
    ).all()
    # One timeline per person: the latest messages of their other chats, in every channel,
    # interleaved by time with this one's.
    before = (
        await session.execute(
            select(Message, Conversation.channel)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.subscriber_id == conv.subscriber_id,
                Conversation.id != conv.id,
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(EARLIER_MESSAGES)
        )
    ).all()
    staff = (
        await session.scalars(
            select(Operator).where(Operator.role != OperatorRole.EDITOR).order_by(Operator.name)
        )
    ).all()
    names = {op.id: op.name for op in staff}
    channels = (
        await session.scalars(
            select(ChannelAccount)
            .where(ChannelAccount.subscriber_id == conv.subscriber_id)
            .order_by(ChannelAccount.id)
        )
    ).all()
    earlier = (
        await session.scalars(
            select(Conversation)
            .where(Conversation.subscriber_id == conv.subscriber_id, Conversation.id != conv.id)
            .order_by(Conversation.created_at.desc(), Conversation.id.desc())
            .limit(20)
        )
    ).all()
    tickets = (
        await session.scalars(
            select(Ticket)
            .where(Ticket.subscriber_id == conv.subscriber_id, Ticket.status == TicketStatus.OPEN)
            .order_by(Ticket.created_at.desc())
        )
    ).all()

    def item(m: Message, channel: str | None, *, earlier: bool = False) -> dict[str, Any]:
        return message_item(
            m,
            tz=tz,
            now=now,
            operators=names,
            content=content,
            uploads=uploads,
            base=base,
            policy=policy,
            channel=channel,
            earlier=earlier,
            slots=conv.slots,
        )

    data = subscriber.data if subscriber is not None else {}
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else None
    verified = await verification_of(session, conv.channel_account_id, now)
    return {
        "conversation": {
            "id": conv.id,
            "subscriber_id": conv.subscriber_id,
            "state": conv.state,
            "state_label": STATES.get(ConversationState(conv.state), conv.state),
            "channel": conv.channel,
            "channel_label": CHANNELS.get(conv.channel, conv.channel),
            "name": person(account, subscriber),
            "group": conv.skill_group,
            "reason": readable.reason(conv.handoff_reason, content),
            "operator": {"id": conv.operator_id, "name": names.get(conv.operator_id)}
            if conv.operator_id is not None
            else None,
            "mine": conv.operator_id == who.id,
            "created_at": iso(conv.created_at),
            "queued_at": iso(conv.queued_at),
            "queued_time": local(conv.queued_at, tz, now),
            "waiting_s": seconds(conv.queued_at, now)
            if conv.state == ConversationState.QUEUED
            else None,
            "assigned_time": local(conv.assigned_at, tz, now),
            "first_response_time": local(conv.first_response_at, tz, now),
            "resolution": conv.resolution,
            "resolution_label": RESOLUTION_LABELS.get(conv.resolution or "", conv.resolution),
        },
        "actions": actions(who, conv),
        "notes": await notes.listing(
            session, conv.id, names=names, when=lambda at: local(at, tz, now)
        ),
        "messages": sorted(
            [item(m, channel, earlier=True) for m, channel in before]
            + [item(m, conv.channel) for m in messages],
            key=lambda m: (m["at"] or "", m["id"]),
        ),
        "slots": readable.slot_rows(conv.slots, content, policy, tz),
        "subscriber": {
            "name": person(account, subscriber),
            "display_name": subscriber.display_name if subscriber else None,
            "phone": privacy.show("phone", subscriber.phone, policy) if subscriber else None,
            "account_number": privacy.show("account_number", subscriber.account_number, policy)
            if subscriber
            else None,
            "customer": _flatten(customer, policy, scope="customer.") if customer else [],
        },
        "verification": _verification(verified, policy, tz, now),
        "article": suggested_article(content, messages),
        "bot_answer": bot_answer(
            content, messages, conv.channel, account.first_name if account else None
        ),
        "masked": {"role": policy.role, "unmasked": policy.unmasked},
        "channels": [
            {
                "channel": a.channel,
                "channel_label": CHANNELS.get(a.channel, a.channel),
                "name": person(a),
                "username": a.username,
                "user_id": a.external_user_id,
                "unreachable": a.unreachable_at is not None,
                "since": local(a.created_at, tz, now),
            }
            for a in channels
        ],
        "history": [
            {
                "id": c.id,
                "channel_label": CHANNELS.get(c.channel, c.channel),
                "started": local(c.created_at, tz, now),
                "closed": local(c.closed_at, tz, now),
                "state_label": STATES.get(ConversationState(c.state), c.state),
                "group": c.skill_group,
                "resolution": RESOLUTION_LABELS.get(c.resolution or "", c.resolution),
                "csat": c.csat,
            }
            for c in earlier
        ],
        "tickets": [
            {
                "number": t.number,
                "kind": t.kind,
                "status": t.status,
                "created": local(t.created_at, tz, now),
                "due": local(t.due_at, tz, now),
                "overdue": t.due_at < now,
            }
            for t in tickets
        ],
        "choices": {
            "groups": groups,
            "operators": [
                {
                    "id": op.id,
                    "name": op.name,
                    "status": op.status,
                    "status_label": STATUS_LABELS.get(op.status, op.status),
                }
                for op in staff
                if op.id != who.id and op.disabled_at is None
            ],
            "resolutions": [{"code": r, "label": RESOLUTION_LABELS.get(r, r)} for r in RESOLUTIONS],
        },
    }


# -- verified identity ---------------------------------------------------------------------------


async def verification_of(
    session: AsyncSession, account_id: int, now: datetime
) -> Verification | None:
    """The latest valid (not revoked, not expired) verification of a channel account: proof that
    whoever writes from *this* account is the customer. Per account, not per person: a linked
    account in the other channel proves nothing about who holds this one right now."""
    found: Verification | None = (
        await session.scalars(
            select(Verification)
            .where(
                Verification.account_id == account_id,
                Verification.revoked_at.is_(None),
                Verification.expires_at > now,
            )
            .order_by(Verification.verified_at.desc(), Verification.id.desc())
            .limit(1)
        )
    ).first()
    return found


def _verification(
    found: Verification | None, policy: Policy, tz: tzinfo, now: datetime
) -> dict[str, Any]:
    if found is None:
        return {"verified": False, "label": NOT_VERIFIED}
    method = VERIFICATION_METHODS.get(found.method, found.method)
    return {
        "verified": True,
        "label": f"подтверждён: {method}",
        "method": found.method,
        "method_label": method,
        "at": iso(found.verified_at),
        "time": local(found.verified_at, tz, now),
        "until": iso(found.expires_at),
        "until_time": local(found.expires_at, tz, now),
        "phone": privacy.show("phone", found.phone, policy),
        "account_number": privacy.show("account_number", found.account_number, policy),
    }
