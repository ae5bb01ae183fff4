"""Bot API objects and small stores for the Telegram emulator (emulators/telegram.py).

Everything here builds plain dicts shaped exactly like the Bot API JSON, so the real aiogram
client parses them; nothing here does I/O.

The limits below are Telegram's as the emulator enforces them. They are our own copy on purpose,
not read from the product's table (dialogs/limits.py): the emulator plays the platform, so a test
fails if that table and the platform disagree.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

# Telegram's limits (see the module docstring: deliberately not imported from dialogs/limits.py).
MAX_TEXT = 4096  # sendMessage / editMessageText text (counted here in characters)
MAX_CAPTION = 1024  # sendPhoto caption
MAX_CALLBACK_DATA = 64  # bytes of an inline button's callback_data
MAX_PLACEHOLDER = 64  # characters of a reply keyboard's input_field_placeholder
MAX_PER_SECOND = 30  # sends per bot in any 1-second window (enforce_limits)
CHAT_BURST, CHAT_PER_SECOND = 3.0, 1.0  # per-chat token bucket (enforce_limits)

BOT_FIRST_NAME = "Supportbot"
# A tiny JPEG-looking blob: the emulator never decodes images, it only has to hand bytes back.
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00supportbot-emulator\xff\xd9"
PHOTO_SIZES = ((90, 67), (320, 240), (1280, 960))
# Fields aiogram (and other clients) send as JSON strings inside form data.
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "reply_parameters",
        "link_preview_options",
        "media",
    }
)


class ApiError(Exception):
    """A Bot API error answered with the real envelope."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def default_description(code: int, retry_after: int | None) -> str:
    if code == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(code, "Error")


def now() -> int:
    return int(time.time())


def user_obj(
    user_id: int,
    first_name: str,
    username: str | None = None,
    last_name: str | None = None,
    *,
    is_bot: bool = False,
) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    if not is_bot:
        user["language_code"] = "ru"
    return user


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    for key in ("last_name", "username"):
        if key in user:
            chat[key] = user[key]
    return chat


def parse_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    """Form data carries complex fields as JSON strings: decode them (bad JSON -> 400)."""
    out = dict(params)
    for key in JSON_FIELDS & out.keys():
        value = out[key]
        if isinstance(value, str):
            try:
                out[key] = json.loads(value) if value else None
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
    return out


def check_reply_markup(markup: Any, *, inline_only: bool = False) -> dict[str, Any] | None:
    """Validate reply_markup the way the Bot API does: an inline keyboard, a reply keyboard
    (ReplyKeyboardMarkup), ReplyKeyboardRemove or ForceReply. `inline_only`: the edit methods,
    which take nothing but an inline keyboard. None when there is no markup."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    if "inline_keyboard" in markup:
        return check_inline_keyboard(markup)
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        return check_reply_keyboard(markup)
    for flag, kind in (("remove_keyboard", "ReplyKeyboardRemove"), ("force_reply", "ForceReply")):
        if flag in markup:
            if not isinstance(markup[flag], bool):
                raise bad_request(f'field "{flag}" of the {kind} must be of the type Boolean')
            return markup if markup[flag] else None
    return None  # an object with none of the fields: Telegram sends the message without markup


def check_inline_keyboard(markup: dict[str, Any]) -> dict[str, Any]:
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    if not all(isinstance(r, list) for r in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not (1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                raise bad_request("BUTTON_URL_INVALID")
            kinds = [k for k in button if k != "text" and button[k] is not None]
            if not kinds:
                raise bad_request(
                    'can\'t find field "text"' if not button else "BUTTON_TYPE_INVALID"
                )
    return markup


# The optional Boolean fields of a ReplyKeyboardMarkup and of its KeyboardButtons.
_REPLY_KEYBOARD_FLAGS = ("resize_keyboard", "one_time_keyboard", "is_persistent", "selective")
_KEYBOARD_BUTTON_FLAGS = ("request_contact", "request_location")


def check_reply_keyboard(markup: dict[str, Any]) -> dict[str, Any] | None:
    """A ReplyKeyboardMarkup: rows of KeyboardButton (an object with `text`, or a bare string),
    with its Boolean options and an optional input field placeholder."""
    rows = markup["keyboard"]
    if not isinstance(rows, list):
        raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
    if not all(isinstance(r, list) for r in rows):
        raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
    for flag in _REPLY_KEYBOARD_FLAGS:
        if flag in markup and not isinstance(markup[flag], bool):
            raise bad_request(
                f'field "{flag}" of the ReplyKeyboardMarkup must be of the type Boolean'
            )
    placeholder = markup.get("input_field_placeholder")
    if placeholder is not None:
        if not isinstance(placeholder, str):
            raise bad_request('field "input_field_placeholder" must be of type String')
        if len(placeholder) > MAX_PLACEHOLDER:
            raise bad_request("input field placeholder is too long")
    for row in rows:
        for button in row:
            _check_keyboard_button(button)
    if not any(rows):
        return None  # no buttons at all: Telegram sends the message without a keyboard
    return markup


def _check_keyboard_button(button: Any) -> None:
    def fail(why: str) -> ApiError:
        return bad_request(f"can't parse keyboard button: {why}")

    if isinstance(button, str):
        text = button
    elif isinstance(button, dict):
        if "text" not in button:
            raise fail('Can\'t find field "text"')
        text = button["text"]
        if not isinstance(text, str):
            raise fail('Field "text" must be of type String')
        for flag in _KEYBOARD_BUTTON_FLAGS:
            if flag in button and not isinstance(button[flag], bool):
                raise fail(f'Field "{flag}" must be of type Boolean')
    else:
        raise fail("KeyboardButton must be a String or an Object")
    if not text.strip():
        raise bad_request("keyboard button text must be non-empty")


def keyboard_buttons(markup: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The buttons of a reply keyboard as objects (a bare string button becomes {"text": s})."""
    rows = (markup or {}).get("keyboard") or []
    return [{"text": b} if isinstance(b, str) else b for row in rows for b in row]


def callback_datas(markup: dict[str, Any] | None) -> list[str]:
    if not markup:
        return []
    return [
        str(b["callback_data"])
        for row in markup.get("inline_keyboard") or []
        for b in row
        if b.get("callback_data") is not None
    ]


@dataclass(eq=False)
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    kind: str

    def file_obj(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
            "file_path": self.file_path,
        }


@dataclass
class FileStore:
    """Files the emulator knows: what subscribers sent and what the bot uploaded."""

    by_id: dict[str, StoredFile] = field(default_factory=dict)
    by_path: dict[str, StoredFile] = field(default_factory=dict)
    counter: int = 0

    def add(self, content: bytes, kind: str, ext: str, file_id: str | None = None) -> StoredFile:
        self.counter += 1
        prefix = {"photo": "AgACAgIAAxk", "sticker": "CAACAgIAAxk"}.get(kind, "BQACAgIAAxk")
        fid = file_id or prefix + secrets.token_urlsafe(30)
        stored = StoredFile(
            file_id=fid,
            file_unique_id=f"AQAD{self.counter:07d}",
            file_path=f"{kind}s/file_{self.counter}.{ext}",
            content=content,
            kind=kind,
        )
        self.by_id[fid] = stored
        self.by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self.by_id.get(file_id)

    def photo_sizes(self, content: bytes) -> list[dict[str, Any]]:
        sizes = []
        for width, height in PHOTO_SIZES:
            stored = self.add(content, "photo", "jpg")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(content),
                    "width": width,
                    "height": height,
                }
            )
        return sizes

    def sticker(self, emoji: str, file_id: str | None = None) -> dict[str, Any]:
        stored = self.get(file_id) if file_id else None
        if stored is None:
            stored = self.add(b"RIFF-webp-sticker", "sticker", "webp", file_id=file_id)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "SupportbotEmulator",
            "file_size": len(stored.content),
        }

    def media(self, kind: str) -> dict[str, Any]:
        """A voice/video/document object with a file_id that getFile resolves."""
        ext = {"voice": "oga", "video": "mp4", "document": "pdf"}[kind]
        stored = self.add(f"{kind}-content".encode(), kind, ext)
        obj: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if kind == "voice":
            obj.update(duration=3, mime_type="audio/ogg")
        elif kind == "video":
            obj.update(duration=5, width=640, height=360, mime_type="video/mp4")
        else:
            obj.update(file_name="bill.pdf", mime_type="application/pdf")
        return obj


def message_kind(message: dict[str, Any]) -> str:
    for kind in ("text", "photo", "sticker", "voice", "video", "document", "location", "contact"):
        if kind in message:
            return kind
    return "other"


def update_type(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "unknown")
