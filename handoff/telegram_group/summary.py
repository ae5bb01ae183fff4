"""What the operators' group shows of a chat: the snapshot read from the database, the topic's
name and the context summary (masked: the group lives in Telegram's cloud)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from handoff.desk import RESOLUTIONS
from nlu.phones import mask_phone, mask_phones
from storage.models import (
    Author,
    ChannelAccount,
    Message,
    Subscriber,
    Ticket,
)

SUMMARY_MESSAGES = 10
MIN_CONFIDENCE = 0.5  # intents shown in a summary
LINE_LIMIT = 300  # characters of one transcript line in a summary
TOPIC_NAME_LIMIT = 128
CHANNEL_LABELS = {"telegram": "Telegram", "vk": "VK"}
AUTHOR_ICONS: dict[str, str] = {
    Author.SUBSCRIBER: "👤",
    Author.BOT: "🤖",
    Author.OPERATOR: "👩‍💻",
    Author.SYSTEM: "⚙️",
}
MEDIA_NAMES = {
    "photo": "фото",
    "sticker": "стикер",
    "document": "файл",
    "voice": "голосовое",
    "audio": "аудио",
    "video": "видео",
    "location": "геопозиция",
    "other": "вложение",
}
HELP = (
    "Пиши сюда — ответ уйдёт абоненту (первое сообщение берёт чат из очереди).\n"
    "/take — взять чат\n"
    f"/close [{'|'.join(RESOLUTIONS)}] — закрыть (по умолчанию solved), абоненту уйдёт оценка\n"
    "/bot — вернуть чат боту"
)


# --------------------------------------------------------------------------- rendering


def mask_data(value: Any) -> Any:
    """Phone numbers in a text (or in JSON-ish data) masked: the group lives in Telegram's cloud."""
    if isinstance(value, str):
        return mask_phones(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_data(v) for v in value]
    return value


def clip(text: str, limit: int = LINE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Snapshot:
    """A conversation as the group needs it, read in one go."""

    id: int
    state: str
    topic_id: str | None
    channel: str
    skill_group: str | None
    handoff_reason: str | None
    resolution: str | None
    slots: dict[str, Any]
    subscriber_id: int
    name: str
    username: str | None
    phone: str | None
    operator_name: str | None
    messages: list[Message] = field(default_factory=list)
    asked: list[Message] = field(default_factory=list)  # the subscriber's recent messages
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def label(self) -> str:
        return CHANNEL_LABELS.get(self.channel, self.channel)

    def topic_name(self) -> str:
        name = f"#{self.id} {self.name} ({self.label}) · {self.skill_group or '—'}"
        return name if len(name) <= TOPIC_NAME_LIMIT else name[: TOPIC_NAME_LIMIT - 1] + "…"


def message_line(m: Message, tz: ZoneInfo) -> str:
    icon = AUTHOR_ICONS.get(m.author, "•")
    parts: list[str] = []
    for att in m.attachments or []:
        parts.append(f"[{MEDIA_NAMES.get(str(att.get('kind')), 'вложение')}]")
    if m.text:
        parts.append(m.text)
    elif m.payload:
        parts.append(f"[кнопка {m.payload}]")
    when = m.created_at.astimezone(tz).strftime("%H:%M")
    return f"{icon} {when} {clip(mask_data(' '.join(parts)) or '—')}"


def render_summary(snap: Snapshot, tz: ZoneInfo) -> str:
    """The context an operator reads before answering (operator-facing, Russian)."""
    head = f"🆕 #{snap.id} · {snap.name} ({snap.label})"
    if snap.username:
        head += f" · @{snap.username}"
    lines = [head, f"Группа: {snap.skill_group or '—'} · Причина: {snap.handoff_reason or '—'}"]
    if snap.phone:
        lines.append(f"Телефон: {mask_phone(snap.phone)}")
    intents: list[str] = []
    for m in snap.asked or snap.messages:
        if m.author != Author.SUBSCRIBER:
            continue
        nlu = m.nlu or {}
        confidence = float(nlu.get("confidence") or 0)
        if nlu.get("handled_as"):  # a form answer, a code, a cancel: not a request
            continue
        if nlu.get("intent") and confidence >= MIN_CONFIDENCE:
            intents.append(f"{nlu['intent']} ({confidence:.2f})")
        elif m.payload and m.payload.startswith("intent:"):
            intents.append(f"{m.payload.removeprefix('intent:')} (кнопка)")
    if intents:
        lines.append("Интенты: " + " → ".join(intents))
    form = {k: v for k, v in snap.slots.items() if not k.startswith("_")}
    if form:
        lines.append("Данные формы:")
        for key, value in form.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"  {key}: {clip(str(mask_data(shown)), 200)}")
    if snap.tickets:
        lines.append("Открытые заявки:")
        for t in snap.tickets:
            due = t.due_at.astimezone(tz).strftime("%d.%m %H:%M")
            lines.append(f"  №{t.number} · {t.kind} · срок {due}")
    if snap.messages:
        lines.append(f"— Переписка (последние {len(snap.messages)}) —")
        lines.extend(message_line(m, tz) for m in snap.messages)
    lines.append("")
    lines.append(HELP)
    return "\n".join(lines)


def display_name(account: ChannelAccount, subscriber: Subscriber | None) -> str:
    full = " ".join(p for p in (account.first_name, account.last_name) if p)
    return (
        (subscriber.display_name if subscriber else None)
        or full
        or account.username
        or f"id{account.external_user_id}"
    )
