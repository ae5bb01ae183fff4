"""The two chat panes of the sandbox, one per platform emulator: act as the subscriber (write,
press a button, send a test photo or sticker; in Telegram also share a contact and tap a reply
keyboard's button) and turn the emulator's records into bubbles.

A bubble is a plain JSON dict the page renders (always as text, never as HTML):

    key          stable within a pane's transcript
    side         "subscriber" | "bot" (who wrote it on the platform; app.py says which author)
    text         text or caption, or None
    image        URL of a picture the bot sent (served by the sandbox), or None
    sticker      an emoji or a short label for a sticker, or None
    attachment   what else the subscriber sent ("📷 фото"), or None
    pressed      the label of the button the subscriber pressed, or None
    buttons      rows of {"label", "url"} (opens a link) or {"label", "press"} (press it back
                 through POST /sandbox/api/<channel>/press with {"press": ...})
    platform_id  the platform's message id of a bot message (to find it in the database)

Besides the bubbles, a Telegram pane has the reply keyboard its chat shows under the input field
(`reply_keyboard`: rows of {"label", "kind": "text" | "contact"} and a placeholder, or None):
a "text" button is pressed through POST .../reply, a "contact" one shares the number through
POST .../contact.

Most of this uses the emulators' public API (`send_text`, `press_button`, `press_callback`,
`press_reply_button`, `send_contact`, `reply_keyboard`, `history`, `sent`, `set_user`). Two things have no public accessor yet and are read from the
emulators' state here, in one place each: the current Telegram message objects (buttons after
edits, photo file ids, sticker emoji) with the uploaded bytes, and the photo bytes a VK bot
uploaded (`_photo_bytes`).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from nlu.phones import normalise_phone

Bubble = dict[str, Any]
Press = dict[str, Any]
MAX_BUBBLES = 300  # the newest ones; a sandbox conversation is short

TELEGRAM_NAME = "Иван"
VK_NAME = ("Мария", "Смирнова")
TEST_STICKER_EMOJI = "👍"
OTHER_ATTACHMENTS = {
    "voice": "🎤 голосовое",
    "audio_message": "🎤 голосовое",
    "video": "🎬 видео",
    "document": "📄 файл",
    "doc": "📄 файл",
    "audio": "🎵 аудио",
    "location": "📍 геопозиция",
    "contact": "👤 контакт",
}
_VK_PHOTO = re.compile(r"^photo(-?\d+_\d+)(?:_\w+)?$")
_VK_PHOTO_REF = re.compile(r"^-?\d+_\d+$")


class PressError(ValueError):
    """A button press the page asked for that the message does not offer (or a bad request)."""


def _link(url: Any) -> str | None:
    """Only web links become clickable: never `javascript:` or other schemes."""
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


class Pane(ABC):
    """One platform's subscriber side. `media_base` is the URL prefix of the media route."""

    channel: str
    title: str
    start_text: str  # what the platform's "Start" sends for a new chat

    @abstractmethod
    def name(self, user_id: int) -> str: ...

    @abstractmethod
    def register(self, user_id: int) -> None:
        """A new subscriber appears on the platform (VK: their name for `users.get`)."""

    @abstractmethod
    def known_users(self) -> set[int]: ...

    @abstractmethod
    def send_text(self, user_id: int, text: str) -> None: ...

    @abstractmethod
    def start(self, user_id: int) -> None: ...

    @abstractmethod
    def press(self, user_id: int, press: Press) -> None: ...

    @abstractmethod
    def send_photo(self, user_id: int) -> None: ...

    @abstractmethod
    def send_sticker(self, user_id: int) -> None: ...

    def send_contact(self, user_id: int, phone: str, *, own: bool) -> None:
        """Share a phone contact: the subscriber's own number, or somebody else's."""
        raise PressError(f"{self.title} has no way to share a contact")

    def press_reply(self, user_id: int, text: str) -> None:
        """Tap a text button of the reply keyboard the chat shows."""
        raise PressError(f"{self.title} has no reply keyboard")

    def reply_keyboard(self, user_id: int) -> dict[str, Any] | None:
        """The reply keyboard the chat shows under the input field (see the module docstring)."""
        return None

    @abstractmethod
    def transcript(self, user_id: int, media_base: str) -> list[Bubble]: ...

    @abstractmethod
    def media(self, user_id: int, ref: str) -> bytes | None: ...


def _bubble(key: str, side: str, **fields: Any) -> Bubble:
    return {
        "key": key,
        "side": side,
        "text": None,
        "image": None,
        "sticker": None,
        "attachment": None,
        "pressed": None,
        "buttons": [],
        "platform_id": None,
        **fields,
    }


class TelegramPane(Pane):
    channel = "telegram"
    title = "Telegram"
    start_text = "/start"

    def __init__(self, emulator: TelegramEmulator) -> None:
        self.emulator = emulator

    def name(self, user_id: int) -> str:
        return TELEGRAM_NAME

    def register(self, user_id: int) -> None:
        """Nothing to do: Telegram tells the bot the name with every message (`send_text`)."""

    def known_users(self) -> set[int]:
        return {int(s["chat_id"]) for s in self.emulator.sent()}

    def send_text(self, user_id: int, text: str) -> None:
        self.emulator.send_text(user_id, text, first_name=TELEGRAM_NAME)

    def start(self, user_id: int) -> None:
        self.send_text(user_id, self.start_text)

    def press(self, user_id: int, press: Press) -> None:
        message_id, data = press.get("message_id"), press.get("data")
        if not isinstance(message_id, int) or not isinstance(data, str):
            raise PressError("press needs message_id (a number) and data (a string)")
        try:
            self.emulator.press_button(user_id, message_id, data)
        except ValueError as exc:  # the bot removed the buttons meanwhile, or a stale page
            raise PressError(str(exc)) from exc

    def send_photo(self, user_id: int) -> None:
        self.emulator.send_photo(user_id)

    def send_sticker(self, user_id: int) -> None:
        self.emulator.send_sticker(user_id, TEST_STICKER_EMOJI)

    def send_contact(self, user_id: int, phone: str, *, own: bool) -> None:
        if own:  # the account's number, international: "8 911 ..." is +7 911 ... to Telegram
            self.emulator.send_contact(user_id, normalise_phone(phone) or phone)
        else:  # a contact from the phone book, as typed there, of someone not on Telegram
            self.emulator.send_contact(user_id, phone, own=False, first_name="Пётр")

    def press_reply(self, user_id: int, text: str) -> None:
        try:
            self.emulator.press_reply_button(user_id, text)
        except ValueError as exc:  # the keyboard was replaced or hidden meanwhile
            raise PressError(str(exc)) from exc

    def reply_keyboard(self, user_id: int) -> dict[str, Any] | None:
        markup = self.emulator.reply_keyboard(user_id)
        if not markup:
            return None
        rows = []
        for row in markup.get("keyboard") or []:
            buttons = []
            for b in row if isinstance(row, list) else []:
                button = {"text": b} if isinstance(b, str) else b
                if not isinstance(button, dict):
                    continue
                if button.get("request_contact"):
                    buttons.append({"label": str(button.get("text")), "kind": "contact"})
                elif not any(k.startswith("request_") or k == "web_app" for k in button):
                    buttons.append({"label": str(button.get("text")), "kind": "text"})
            if buttons:
                rows.append(buttons)
        placeholder = markup.get("input_field_placeholder")
        return {"rows": rows, "placeholder": placeholder if isinstance(placeholder, str) else None}

    def _message(self, user_id: int, message_id: Any) -> dict[str, Any] | None:
        """The message as it is now (after edits); no public accessor in the emulator."""
        if not isinstance(message_id, int):
            return None
        found = self.emulator._s.messages.get((user_id, message_id))
        return found if isinstance(found, dict) else None

    def transcript(self, user_id: int, media_base: str) -> list[Bubble]:
        out: list[Bubble] = []
        history = self.emulator.history(user_id)
        start = max(0, len(history) - MAX_BUBBLES)
        for index, entry in enumerate(history[start:], start):
            message = self._message(user_id, entry.get("message_id"))
            key = f"t{index}"
            if entry.get("from") == "subscriber":
                out.append(self._subscriber(key, entry, message))
            else:
                out.append(self._bot(key, entry, message, user_id, media_base))
        return out

    def _subscriber(
        self, key: str, entry: dict[str, Any], message: dict[str, Any] | None
    ) -> Bubble:
        kind = entry.get("kind")
        if kind == "button":
            data = entry.get("data")
            label = next(
                (
                    b.get("text")
                    for row in _inline_rows(message)
                    for b in row
                    if b.get("callback_data") == data
                ),
                None,
            )
            return _bubble(key, "subscriber", pressed=str(label or data))
        if kind == "sticker":
            emoji = ((message or {}).get("sticker") or {}).get("emoji") or "стикер"
            return _bubble(key, "subscriber", sticker=str(emoji))
        if kind == "photo":
            return _bubble(key, "subscriber", attachment="📷 фото", text=entry.get("caption"))
        if kind == "contact":
            return _bubble(key, "subscriber", attachment=_contact_label(message))
        if kind == "text":
            return _bubble(key, "subscriber", text=entry.get("text"))
        return _bubble(key, "subscriber", attachment=OTHER_ATTACHMENTS.get(str(kind), str(kind)))

    def _bot(
        self,
        key: str,
        entry: dict[str, Any],
        message: dict[str, Any] | None,
        user_id: int,
        media_base: str,
    ) -> Bubble:
        current = message or entry
        message_id = entry.get("message_id")
        bubble = _bubble(
            key,
            "bot",
            text=current.get("text") or current.get("caption"),
            platform_id=str(message_id),
        )
        if "photo" in current or entry.get("kind") == "photo":
            bubble["image"] = f"{media_base}/{user_id}/{message_id}"
        sticker = current.get("sticker")
        if isinstance(sticker, dict) or entry.get("kind") == "sticker":
            bubble["sticker"] = str((sticker or {}).get("emoji") or "стикер")
        rows = []
        for row in _inline_rows(current):
            buttons: list[dict[str, Any]] = []
            for b in row:
                label = str(b.get("text") or "")
                url = _link(b.get("url"))
                if url is not None:
                    buttons.append({"label": label, "url": url})
                elif b.get("callback_data") is not None and isinstance(message_id, int):
                    press = {"message_id": message_id, "data": str(b["callback_data"])}
                    buttons.append({"label": label, "press": press})
            if buttons:
                rows.append(buttons)
        bubble["buttons"] = rows
        return bubble

    def media(self, user_id: int, ref: str) -> bytes | None:
        if not ref.isdigit():
            return None
        message = self._message(user_id, int(ref))
        sizes = (message or {}).get("photo") or []
        if not sizes:
            return None
        stored = self.emulator._s.files.get(str(sizes[-1].get("file_id")))
        return stored.content if stored is not None else None


def _contact_label(message: dict[str, Any] | None) -> str:
    """ "📱 мой номер +79110000001" for the sender's own contact, "👤 контакт Пётр: +7..." else."""
    message = message or {}
    contact = message.get("contact") or {}
    raw = str(contact.get("phone_number") or "")
    phone = normalise_phone(raw) or raw
    if contact.get("user_id") is not None and contact.get("user_id") == (
        message.get("from") or {}
    ).get("id"):
        return f"📱 мой номер {phone}"
    return f"👤 контакт {contact.get('first_name') or ''}: {phone}".replace(" :", ":")


def _inline_rows(message: dict[str, Any] | None) -> list[list[dict[str, Any]]]:
    markup = (message or {}).get("reply_markup") or {}
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    return [[b for b in row if isinstance(b, dict)] for row in rows or [] if isinstance(row, list)]


class VKPane(Pane):
    channel = "vk"
    title = "VK"
    start_text = "Начать"

    def __init__(self, emulator: VKEmulator) -> None:
        self.emulator = emulator

    def name(self, user_id: int) -> str:
        first, last = self.emulator.users.get(user_id, VK_NAME)
        return f"{first} {last}"

    def register(self, user_id: int) -> None:
        self.emulator.set_user(user_id, *VK_NAME)

    def known_users(self) -> set[int]:
        return {int(m["peer_id"]) for m in self.emulator.sent()} | set(self.emulator.users)

    def send_text(self, user_id: int, text: str) -> None:
        self.emulator.send_text(user_id, text)

    def start(self, user_id: int) -> None:
        # VK's "Начать" button of a new chat: a text with the start command as its payload
        self.emulator.send_text(user_id, self.start_text, payload='{"command":"start"}')

    def press(self, user_id: int, press: Press) -> None:
        kind, payload = press.get("type"), press.get("payload")
        if kind == "callback":
            cmid = press.get("cmid")
            if not isinstance(cmid, int) or not isinstance(payload, str):
                raise PressError("a callback press needs cmid (a number) and payload (JSON text)")
            try:
                json.loads(payload)
            except ValueError as exc:
                raise PressError("the button payload is not JSON") from exc
            self.emulator.press_callback(user_id, payload, cmid)
        elif kind == "text":
            label = press.get("label")
            if not isinstance(label, str) or not (payload is None or isinstance(payload, str)):
                raise PressError("a text button press needs its label")
            self.emulator.send_text(user_id, label, payload=payload)
        else:
            raise PressError("press type must be callback or text")

    def send_photo(self, user_id: int) -> None:
        self.emulator.send_photo(user_id)

    def send_sticker(self, user_id: int) -> None:
        self.emulator.send_sticker(user_id)

    def transcript(self, user_id: int, media_base: str) -> list[Bubble]:
        current = {m["message_id"]: m for m in self.emulator.sent(user_id)}  # after edits
        by_cmid = {m["conversation_message_id"]: m for m in current.values()}
        history = self.emulator.history(user_id)
        start = max(0, len(history) - MAX_BUBBLES)
        out: list[Bubble] = []
        for index, entry in enumerate(history[start:], start):
            key = f"v{index}"
            if entry.get("from") == "subscriber":
                out.append(self._subscriber(key, entry, by_cmid))
            else:
                record = current.get(entry.get("message_id"), entry)
                out.append(self._bot(key, record, user_id, media_base))
        return out

    def _subscriber(
        self, key: str, entry: dict[str, Any], by_cmid: dict[Any, dict[str, Any]]
    ) -> Bubble:
        if entry.get("event") == "message_event":
            payload = entry.get("payload")
            bot_message = by_cmid.get(entry.get("conversation_message_id")) or {}
            label = next(
                (
                    action.get("label")
                    for action in _vk_actions(bot_message)
                    if _same_payload(action.get("payload"), payload)
                ),
                None,
            )
            shown = label or json.dumps(payload, ensure_ascii=False)
            return _bubble(key, "subscriber", pressed=str(shown))
        attachments = [a for a in entry.get("attachments") or [] if isinstance(a, dict)]
        bubble = _bubble(key, "subscriber", text=entry.get("text") or None)
        for attachment in attachments:
            kind = attachment.get("type")
            if kind == "sticker":
                bubble["sticker"] = "стикер"
            elif kind == "photo":
                bubble["attachment"] = "📷 фото"
            else:
                bubble["attachment"] = OTHER_ATTACHMENTS.get(str(kind), str(kind))
        return bubble

    def _bot(self, key: str, record: dict[str, Any], user_id: int, media_base: str) -> Bubble:
        bubble = _bubble(
            key, "bot", text=record.get("text") or None, platform_id=str(record.get("message_id"))
        )
        for item in record.get("attachment") or []:
            found = _VK_PHOTO.match(str(item))
            if found is not None:
                bubble["image"] = f"{media_base}/{user_id}/{found.group(1)}"
        if record.get("sticker_id") is not None:
            bubble["sticker"] = f"стикер №{record['sticker_id']}"
        cmid = record.get("conversation_message_id")
        rows = []
        for row in _vk_rows(record):
            buttons: list[dict[str, Any]] = []
            for button in row:
                action = button.get("action") or {}
                label = str(action.get("label") or "")
                kind = action.get("type")
                payload = action.get("payload")
                if payload is not None and not isinstance(payload, str):
                    payload = json.dumps(payload, ensure_ascii=False)
                if kind == "open_link" and _link(action.get("link")):
                    buttons.append({"label": label, "url": action["link"]})
                elif kind == "callback" and isinstance(cmid, int):
                    press = {"type": "callback", "payload": payload or "{}", "cmid": cmid}
                    buttons.append({"label": label, "press": press})
                elif kind == "text":
                    press = {"type": "text", "label": label, "payload": payload}
                    buttons.append({"label": label, "press": press})
            if buttons:
                rows.append(buttons)
        bubble["buttons"] = rows
        return bubble

    def media(self, user_id: int, ref: str) -> bytes | None:
        if not _VK_PHOTO_REF.match(ref):
            return None
        data = self.emulator._photo_bytes.get(ref)  # no public accessor in the emulator
        return data if isinstance(data, bytes) else None


def _vk_rows(record: dict[str, Any]) -> list[list[dict[str, Any]]]:
    keyboard = record.get("keyboard") or {}
    rows = keyboard.get("buttons") if isinstance(keyboard, dict) else None
    return [[b for b in row if isinstance(b, dict)] for row in rows or [] if isinstance(row, list)]


def _vk_actions(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [b.get("action") or {} for row in _vk_rows(record) for b in row]


def _same_payload(button_payload: Any, pressed: Any) -> bool:
    if isinstance(button_payload, str):
        try:
            button_payload = json.loads(button_payload)
        except ValueError:
            return False
    return bool(button_payload == pressed)
