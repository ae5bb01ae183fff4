"""Channel-neutral messages: what a frontend hands in (`Inbound`) and what it must send (`Outbound`).

Frontends (bots/telegram.py, bots/vk.py) translate platform updates into `Inbound` and render
`Outbound` into platform API calls; nothing else in the code knows a platform's wire format.
`Outbound` is stored in the outbox as JSON (`to_json` / `from_json`), so it must stay plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal, Protocol


class Channel(StrEnum):
    TELEGRAM = "telegram"
    VK = "vk"


AttachmentKind = Literal[
    "photo", "sticker", "document", "voice", "audio", "video", "location", "contact", "other"
]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file or sticker the subscriber sent. `ref` is the platform's id (file_id, photo{o}_{id}, sticker id)."""

    kind: AttachmentKind
    ref: str | None = None
    url: str | None = None
    emoji: str | None = None


@dataclass(frozen=True, slots=True)
class SharedContact:
    """A phone contact the subscriber shared (Telegram's «Поделиться номером»). `own` is True
    only when the contact's user id is the sender's own: a forwarded contact of someone else is
    not proof of anything."""

    phone: str
    own: bool
    user_id: str | None = None  # the contact's Telegram user id, if it is a Telegram user


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a subscriber did in a channel: a text, a button press, a photo, a sticker, an edit.

    `update_id` is the platform's own id of the update/event; the pipeline drops a second delivery
    of the same (channel, update_id), so a frontend must pass the id the platform retries with.
    """

    channel: Channel
    chat_id: str
    user_id: str
    update_id: str
    text: str | None = None
    payload: str | None = None
    attachments: tuple[Attachment, ...] = ()
    edited: bool = False
    platform_message_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    contact: SharedContact | None = None  # a shared phone contact (also an attachment "contact")

    def storable(self) -> Inbound:
        """The same message as the database can always store it: NUL characters dropped (a
        message PostgreSQL refuses would be retried forever), lone surrogates replaced, names
        cut to their columns' 100 characters. The pipeline stores and reads only this."""
        clean = replace(
            self,
            text=_storable(self.text),
            first_name=_storable(self.first_name, NAME_LIMIT),
            last_name=_storable(self.last_name, NAME_LIMIT),
            username=_storable(self.username, NAME_LIMIT),
            attachments=tuple(
                replace(a, ref=_storable(a.ref), url=_storable(a.url), emoji=_storable(a.emoji))
                for a in self.attachments
            ),
        )
        return self if clean == self else clean


NAME_LIMIT = 100  # storage/models.py ChannelAccount names


def _storable(value: str | None, limit: int | None = None) -> str | None:
    if value is None:
        return None
    clean = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:limit] if limit is not None else clean


@dataclass(frozen=True, slots=True)
class Button:
    """A reply button: one of `payload` (pressed -> comes back as Inbound.payload), `url`, or
    `request` = "contact" (Telegram's «Поделиться номером»: the press comes back as
    Inbound.contact; a channel that has no such button leaves it out)."""

    title: str
    payload: str | None = None
    url: str | None = None
    request: str | None = None


def vars_of(button: Button) -> dict[str, str | None]:
    return {
        "title": button.title,
        "payload": button.payload,
        "url": button.url,
        "request": button.request,
    }


@dataclass(frozen=True, slots=True)
class Outbound:
    """One reply as the subscriber should see it; a frontend may split it into several API calls.

    - `text`: any length; the frontend splits it at the platform limit (4096), buttons on the last part.
    - `buttons`: rows of buttons shown under the message.
    - `image`: a local file path or an http(s) URL; sent as a photo with `text` as caption if short.
    - `sticker`: a sticker id already resolved for the target channel (Telegram file_id, VK sticker_id).
    """

    text: str | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    image: str | None = None
    sticker: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.text is not None:
            data["text"] = self.text
        if self.buttons:
            data["buttons"] = [
                [{k: v for k, v in vars_of(b).items() if v is not None} for b in row]
                for row in self.buttons
            ]
        if self.image is not None:
            data["image"] = self.image
        if self.sticker is not None:
            data["sticker"] = self.sticker
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outbound:
        rows = tuple(tuple(Button(**b) for b in row) for row in data.get("buttons", ()))
        return cls(
            text=data.get("text"),
            buttons=rows,
            image=data.get("image"),
            sticker=data.get("sticker"),
        )


@dataclass(slots=True)
class HandleResult:
    """What the pipeline did with an Inbound (frontends use it only for logging and acks)."""

    duplicate: bool = False
    conversation_id: int | None = None
    replies: list[Outbound] = field(default_factory=list)


class InboundHandler(Protocol):
    """The single entry both frontends call (implemented by dialogs.pipeline.ConversationService)."""

    async def handle(self, inbound: Inbound) -> HandleResult: ...
