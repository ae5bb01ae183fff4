"""Wire-format pieces of the VK emulator: v5.199 event envelopes, attachment objects, and the
keyboard / attachment checks VK applies to `messages.send` (errors 911, 100).

Kept apart from emulators/vk.py (the HTTP server and its state) so both stay readable.

The limits below (message length, keyboard shape, label and payload length) are VK's as the
emulator enforces them. They are our own copy on purpose, not read from the product's table
(dialogs/limits.py): the emulator plays the platform, so a test fails if that table and the
platform disagree.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

API_VERSION = "5.199"

ERROR_MESSAGES: dict[int, str] = {
    1: "Unknown error occurred",
    3: "Unknown method passed",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
    14: "Captcha needed",
    15: "Access denied",
    100: "One of the parameters specified was missing or invalid",
    901: "Can't send messages for users without permission",
    902: "Can't send messages to this user due to their privacy settings",
    911: "Keyboard format is invalid",
    914: "Message is too long",
}

# VK's limits (see the module docstring: deliberately not imported from dialogs/limits.py).
MAX_MESSAGE_LEN = 4096
KEYBOARD_ROWS, INLINE_ROWS, ROW_BUTTONS = 10, 6, 5
LABEL_LEN, PAYLOAD_LEN = 40, 255
BUTTON_TYPES = {"text", "open_link", "location", "vkpay", "open_app", "callback"}
CLIENT_INFO: dict[str, Any] = {
    "button_actions": [
        "text",
        "vkpay",
        "open_app",
        "location",
        "open_link",
        "callback",
        "intent_subscribe",
        "intent_unsubscribe",
    ],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}

_ATTACHMENT_RE = re.compile(
    r"^(photo|video|audio|doc|wall|market|poll|audio_message)(-?\d+)_(\d+)(?:_(\w+))?$"
)


class VKAPIFailure(Exception):
    """An API error the emulator answers with `{"error": {...}}`."""

    def __init__(self, code: int, msg: str | None = None, **extra: Any) -> None:
        self.code = code
        self.msg = msg or ERROR_MESSAGES.get(code, "Unknown error occurred")
        self.extra = extra
        super().__init__(f"{code}: {self.msg}")


def new_event_id() -> str:
    """VK event ids are 40 hex chars."""
    return secrets.token_hex(20)


def envelope(event_type: str, obj: dict[str, Any], group_id: int) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "type": event_type,
        "event_id": new_event_id(),
        "v": API_VERSION,
        "object": obj,
    }


def message_object(
    *,
    message_id: int,
    peer_id: int,
    from_id: int,
    cmid: int,
    text: str,
    payload: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "date": int(time.time()),
        "from_id": from_id,
        "id": message_id,
        "out": 0,
        "version": 10_000_000 + message_id,
        "attachments": attachments or [],
        "conversation_message_id": cmid,
        "fwd_messages": [],
        "important": False,
        "is_hidden": False,
        "peer_id": peer_id,
        "random_id": 0,
        "text": text,
    }
    if payload is not None:
        message["payload"] = payload
    return message


def photo_object(photo_id: int, owner_id: int, url: str, access_key: str) -> dict[str, Any]:
    sizes = [
        {"height": h, "width": w, "type": t, "url": f"{url}?size={t}"}
        for t, w, h in (("s", 75, 56), ("m", 130, 97), ("x", 604, 453))
    ]
    return {
        "album_id": -3,
        "date": int(time.time()),
        "id": photo_id,
        "owner_id": owner_id,
        "access_key": access_key,
        "sizes": sizes,
        "text": "",
        "has_tags": False,
    }


def sticker_object(sticker_id: int, base_url: str) -> dict[str, Any]:
    images = [
        {"url": f"{base_url}/stickers/{sticker_id}/{size}.png", "width": size, "height": size}
        for size in (64, 128, 256)
    ]
    return {
        "product_id": 1,
        "sticker_id": sticker_id,
        "images": images,
        "images_with_background": images,
        "is_allowed": True,
    }


def media_object(kind: str, item_id: int, owner_id: int, base_url: str) -> dict[str, Any]:
    """An audio_message / doc / video / audio attachment body as VK sends it to a bot."""
    key = secrets.token_hex(9)
    if kind == "audio_message":
        return {
            "duration": 3,
            "id": item_id,
            "owner_id": owner_id,
            "access_key": key,
            "waveform": [0, 3, 7, 12, 7, 3, 0],
            "link_ogg": f"{base_url}/media/{item_id}.ogg",
            "link_mp3": f"{base_url}/media/{item_id}.mp3",
        }
    if kind == "doc":
        return {
            "id": item_id,
            "owner_id": owner_id,
            "title": "contract.pdf",
            "size": 1024,
            "ext": "pdf",
            "url": f"{base_url}/media/{item_id}.pdf",
            "date": int(time.time()),
            "type": 1,
            "access_key": key,
        }
    if kind == "video":
        return {
            "id": item_id,
            "owner_id": owner_id,
            "title": "video.mp4",
            "duration": 10,
            "date": int(time.time()),
            "access_key": key,
        }
    if kind == "audio":
        return {
            "id": item_id,
            "owner_id": owner_id,
            "artist": "Artist",
            "title": "Song",
            "duration": 180,
            "url": f"{base_url}/media/{item_id}.mp3",
        }
    raise ValueError(f"unknown attachment kind {kind!r}")


def parse_keyboard(raw: str) -> dict[str, Any]:
    """Validate a `keyboard` parameter like VK does; raise error 911 when it breaks a rule."""

    def bad(why: str) -> VKAPIFailure:
        return VKAPIFailure(911, f"Keyboard format is invalid: {why}")

    try:
        keyboard = json.loads(raw)
    except ValueError as e:
        raise bad("not JSON") from e
    if not isinstance(keyboard, dict) or not isinstance(keyboard.get("buttons"), list):
        raise bad("buttons is not an array")
    rows = keyboard["buttons"]
    max_rows = INLINE_ROWS if keyboard.get("inline") else KEYBOARD_ROWS
    if len(rows) > max_rows:
        raise bad(f"too many rows ({len(rows)} > {max_rows})")
    for row in rows:
        if not isinstance(row, list) or not row:
            raise bad("row is not a non-empty array")
        if len(row) > ROW_BUTTONS:
            raise bad(f"too many buttons in a row ({len(row)} > {ROW_BUTTONS})")
        for button in row:
            action = button.get("action") if isinstance(button, dict) else None
            if not isinstance(action, dict) or action.get("type") not in BUTTON_TYPES:
                raise bad("action.type is invalid")
            label = action.get("label")
            if action["type"] in ("text", "callback", "open_link"):
                if not isinstance(label, str) or not label:
                    raise bad("action.label is required")
                if len(label) > LABEL_LEN:
                    raise bad(f"action.label is longer than {LABEL_LEN}")
            if action["type"] == "open_link" and not str(action.get("link", "")).startswith(
                ("http://", "https://")
            ):
                raise bad("action.link is invalid")
            payload = action.get("payload")
            if payload is not None:
                if not isinstance(payload, str):
                    payload = json.dumps(payload)
                if len(payload) > PAYLOAD_LEN:
                    raise bad(f"action.payload is longer than {PAYLOAD_LEN}")
                try:
                    json.loads(payload)
                except ValueError as e:
                    raise bad("action.payload is not JSON") from e
    return keyboard


def parse_attachments(raw: str, exists: set[tuple[str, int, int]]) -> list[str]:
    """Split `attachment` ("photo-1_2,doc3_4") and check each item exists (else error 100)."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    for item in items:
        match = _ATTACHMENT_RE.match(item)
        if not match:
            raise VKAPIFailure(
                100,
                f"One of the parameters specified was missing or invalid: attachment {item!r} is invalid",
            )
        kind, owner, item_id = match.group(1), int(match.group(2)), int(match.group(3))
        if (kind, owner, item_id) not in exists:
            raise VKAPIFailure(
                100,
                f"One of the parameters specified was missing or invalid: attachment {item!r} not found",
            )
    return items
