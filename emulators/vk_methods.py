"""The API methods of the VK emulator (`/method/{name}`): groups, messages, users, photos.

A mixin of `emulators.vk.VKEmulator`, which owns the state declared below; split out only to
keep each file readable. Each method takes the request parameters (strings, as VK receives them)
and returns the `response` value or raises `VKAPIFailure`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from abc import ABC, abstractmethod
from typing import Any

from .vk_events import (
    API_VERSION,
    MAX_MESSAGE_LEN,
    VKAPIFailure,
    parse_attachments,
    parse_keyboard,
    photo_object,
)


def peers_of(params: dict[str, str]) -> list[int]:
    """The recipients of a call: `peer_ids`, `peer_id` or `user_id`."""
    raw = params.get("peer_ids") or params.get("peer_id") or params.get("user_id") or ""
    try:
        return [int(p) for p in str(raw).split(",") if p.strip()]
    except ValueError as e:
        raise VKAPIFailure(
            100, "One of the parameters specified was missing or invalid: peer_id"
        ) from e


class VKMethods(ABC):
    group_id: int
    users: dict[int, tuple[str, str]]
    event_answers: list[dict[str, Any]]
    _lp_key: str
    _next_message_id: int
    _cmid: dict[int, int]
    _media: set[tuple[str, int, int]]
    _blocked: set[int]
    _dedupe: dict[tuple[int, int], int]
    _sent: list[dict[str, Any]]
    _history: list[dict[str, Any]]
    _sent_changed: asyncio.Event
    _open_events: set[str]
    _uploads: dict[str, bytes]
    _photo_bytes: dict[str, bytes]

    # Provided by VKEmulator (declared here so the methods below type-check).
    @property
    @abstractmethod
    def base_url(self) -> str: ...

    @property
    @abstractmethod
    def _next_ts(self) -> int: ...

    @abstractmethod
    def _new_message(self, peer_id: int) -> tuple[int, int]: ...

    @abstractmethod
    def _new_media_id(self) -> int: ...

    def _methods(self) -> dict[str, Any]:
        return {
            "groups.getById": self._groups_get_by_id,
            "groups.getLongPollServer": self._groups_get_long_poll_server,
            "groups.getLongPollSettings": self._groups_get_long_poll_settings,
            "groups.setLongPollSettings": lambda p: 1,
            "messages.send": self._messages_send,
            "messages.sendMessageEventAnswer": self._messages_send_event_answer,
            "messages.edit": self._messages_edit,
            "messages.getConversationsById": self._messages_get_conversations_by_id,
            "users.get": self._users_get,
            "photos.getMessagesUploadServer": self._photos_get_messages_upload_server,
            "photos.saveMessagesPhoto": self._photos_save_messages_photo,
        }

    def _groups_get_by_id(self, p: dict[str, str]) -> dict[str, Any]:
        group = {
            "id": self.group_id,
            "name": "Поддержка (эмулятор)",
            "screen_name": f"club{self.group_id}",
            "is_closed": 0,
            "type": "group",
            "photo_50": f"{self.base_url}/photos/group_50.jpg",
            "photo_100": f"{self.base_url}/photos/group_100.jpg",
            "photo_200": f"{self.base_url}/photos/group_200.jpg",
        }
        return {"groups": [group], "profiles": []}

    def _check_group(self, p: dict[str, str]) -> None:
        if p.get("group_id") != str(self.group_id):
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: group_id"
            )

    def _groups_get_long_poll_server(self, p: dict[str, str]) -> dict[str, Any]:
        self._check_group(p)
        server = f"{self.base_url}/longpoll/{self.group_id}"
        return {"key": self._lp_key, "server": server, "ts": str(self._next_ts)}

    def _groups_get_long_poll_settings(self, p: dict[str, str]) -> dict[str, Any]:
        self._check_group(p)
        events = {"message_new": 1, "message_event": 1, "message_reply": 0}
        return {"is_enabled": True, "api_version": API_VERSION, "events": events}

    def _messages_send(self, p: dict[str, str]) -> Any:
        peers = peers_of(p)
        if not peers:
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: peer_id is undefined"
            )
        try:
            random_id = int(p["random_id"])
            sticker_id = int(p["sticker_id"]) if p.get("sticker_id") else None
        except (KeyError, ValueError) as e:
            raise VKAPIFailure(
                100,
                "One of the parameters specified was missing or invalid: random_id is a required parameter",
            ) from e
        text = p.get("message", "")
        if not text and not p.get("attachment") and sticker_id is None:
            raise VKAPIFailure(
                100,
                "One of the parameters specified was missing or invalid: message is empty or invalid",
            )
        if len(text) > MAX_MESSAGE_LEN:
            raise VKAPIFailure(914)
        keyboard = parse_keyboard(p["keyboard"]) if p.get("keyboard") else None
        attachment = parse_attachments(p["attachment"], self._media) if p.get("attachment") else []
        results: list[dict[str, Any]] = []
        for peer in peers:
            item: dict[str, Any] = {"peer_id": peer}
            if random_id and (peer, random_id) in self._dedupe:
                item["message_id"] = self._dedupe[(peer, random_id)]
                item["conversation_message_id"] = self._find_sent(peer, item["message_id"])[
                    "conversation_message_id"
                ]
            elif peer in self._blocked:
                item["error"] = {"code": 901, "description": VKAPIFailure(901).msg}
            else:
                message_id, cmid = self._new_message(peer)
                record = {
                    "message_id": message_id, "conversation_message_id": cmid, "peer_id": peer,
                    "text": text, "keyboard": keyboard, "attachment": attachment,
                    "sticker_id": sticker_id, "random_id": random_id, "at": time.monotonic(),
                }  # fmt: skip
                self._sent.append(record)
                self._history.append({"from": "bot", **record})
                if random_id:
                    self._dedupe[(peer, random_id)] = message_id
                item.update(message_id=message_id, conversation_message_id=cmid)
                self._sent_changed.set()
                self._sent_changed = asyncio.Event()
            results.append(item)
        if "peer_ids" in p:
            return results
        if "error" in results[0]:
            raise VKAPIFailure(901)
        return results[0]["message_id"]

    def _find_sent(self, peer_id: int, message_id: int) -> dict[str, Any]:
        for record in self._sent:
            if record["peer_id"] == peer_id and record["message_id"] == message_id:
                return record
        raise VKAPIFailure(
            100, "One of the parameters specified was missing or invalid: message_id"
        )

    def _messages_send_event_answer(self, p: dict[str, str]) -> int:
        event_id = p.get("event_id", "")
        if event_id not in self._open_events or not p.get("user_id") or not p.get("peer_id"):
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: event_id"
            )
        event_data = json.loads(p["event_data"]) if p.get("event_data") else None
        self.event_answers.append(
            {"event_id": event_id, "user_id": int(p["user_id"]), "peer_id": int(p["peer_id"]),
             "event_data": event_data, "at": time.monotonic()}
        )  # fmt: skip
        return 1

    def _messages_edit(self, p: dict[str, str]) -> int:
        peer = peers_of(p)[0] if peers_of(p) else 0
        record: dict[str, Any] | None = None
        for sent in self._sent:
            if sent["peer_id"] == peer and (
                str(sent["message_id"]) == p.get("message_id")
                or str(sent["conversation_message_id"]) == p.get("conversation_message_id")
            ):
                record = sent
        if record is None:
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: message_id"
            )
        if len(p.get("message", "")) > MAX_MESSAGE_LEN:
            raise VKAPIFailure(914)
        if "message" in p:
            record["text"] = p["message"]
        if "keyboard" in p:
            record["keyboard"] = parse_keyboard(p["keyboard"]) if p["keyboard"] else None
        record["edited"] = True
        return 1

    def _messages_get_conversations_by_id(self, p: dict[str, str]) -> dict[str, Any]:
        items = [
            {
                "peer": {"id": peer, "type": "user", "local_id": peer},
                "in_read": self._cmid.get(peer, 0),
                "out_read": self._cmid.get(peer, 0),
                "last_message_id": self._next_message_id - 1,
                "can_write": {"allowed": peer not in self._blocked}
                | ({} if peer not in self._blocked else {"reason": 901}),
            }
            for peer in peers_of(p)
        ]
        return {"count": len(items), "items": items}

    def _users_get(self, p: dict[str, str]) -> list[dict[str, Any]]:
        raw = p.get("user_ids") or p.get("user_id") or ""
        try:
            ids = [int(u) for u in raw.split(",") if u.strip()]
        except ValueError as e:
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: user_ids"
            ) from e
        users = []
        for uid in ids:
            first, last = self.users.get(uid, ("Абонент", str(uid)))
            users.append({"id": uid, "first_name": first, "last_name": last,
                          "can_access_closed": True, "is_closed": False})  # fmt: skip
        return users

    def _photos_get_messages_upload_server(self, p: dict[str, str]) -> dict[str, Any]:
        return {
            "album_id": -64,
            "upload_url": f"{self.base_url}/upload/photo?gid={self.group_id}&srv=1",
            "user_id": 0,
            "group_id": self.group_id,
        }

    def _photos_save_messages_photo(self, p: dict[str, str]) -> list[dict[str, Any]]:
        try:
            token = json.loads(p["photo"])[0]["photo"]
            data = self._uploads.pop(token)
        except (KeyError, ValueError, IndexError, TypeError) as e:
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: photo is undefined"
            ) from e
        if p.get("hash") != hashlib.md5(token.encode()).hexdigest():
            raise VKAPIFailure(
                100, "One of the parameters specified was missing or invalid: hash is invalid"
            )
        photo_id, owner = self._new_media_id(), -self.group_id
        self._media.add(("photo", owner, photo_id))
        self._photo_bytes[f"{owner}_{photo_id}"] = data
        url = f"{self.base_url}/photos/{owner}_{photo_id}.jpg"
        return [photo_object(photo_id, owner, url, secrets.token_hex(9))]
