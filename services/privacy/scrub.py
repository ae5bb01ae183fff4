"""Anonymising stored messages, the same way for an erasure and for retention.

A message row stays (its id, conversation, direction, author, operator, channel, time), so every
analytics figure computed from rows, authors, times and intents stays what it was; what a person
wrote or was told goes:
- `text`: "" (a /command keeps its bare command word, "/start": the analytics tell commands
  from questions by the first character, and a command word is no one's personal data); a
  message without text keeps None;
- `payload`: None, except a topic button's `intent:<name>` (the analytics' topic of a contact);
- `attachments`: only each one's kind ("photo", "sticker"); the file ids and paths go, and an
  operator's upload they point to is deleted (its `uploads` row, or a file an older version
  left on disk);
- `buttons`: [] (labels can carry what the bot said);
- `nlu`: only the intent, confidence, ranking, how the turn was handled and the engine; the
  text, entities (phones!) and the engine's raw extras go. `nlu["anonymised"]` records why
  ("erasure" or "retention"); retention uses it to know where it stopped;
- `platform_update_id` / `platform_message_id`: None (a VK fallback update id holds the
  user's id); the `processed_updates` row of that update is deleted;
- the editors' NLU review of the message (`nlu_reviews.text`, a copy of it) becomes "".
Outbox rows of those messages lose their body (a pending one is marked failed first, so it is
never sent).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    UPLOAD_NAME,
    Conversation,
    Message,
    NluReview,
    OutboxItem,
    OutboxStatus,
    ProcessedUpdate,
    Upload,
)

MARK = "anonymised"  # the key in messages.nlu
ERASURE = "erasure"
RETENTION = "retention"
KEEP_NLU = ("intent", "confidence", "ranking", "handled_as", "engine")
TOPIC_PAYLOAD = "intent:"
_COMMAND = re.compile(r"/[A-Za-z][A-Za-z0-9_]{0,31}(?![A-Za-z0-9_])")
UNSENT = (OutboxStatus.PENDING, OutboxStatus.SENDING)
CHUNK = 500  # ids per IN (...) list


def marker() -> Any:
    """`messages.nlu -> anonymised` as a SQL expression (NULL for a message never anonymised)."""
    return Message.nlu[MARK].as_string()


def has_json(column: Any) -> Any:
    """SQL: a JSON column holds something (not {}, [] or null). Compared as text: PostgreSQL's
    `json` type has no equality, and SQLAlchemy writes empty values exactly like this."""
    return cast(column, String).not_in(("{}", "[]", "null"))


def scrub_text(text: str | None) -> str | None:
    if text is None:
        return None
    if text.startswith("/"):
        command = _COMMAND.match(text)
        return command.group() if command else "/"
    return ""


def scrub_payload(payload: str | None) -> str | None:
    if payload and payload.startswith(TOPIC_PAYLOAD) and len(payload) <= 100:
        return payload
    return None


def scrub_attachments(items: Any) -> list[Any]:
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out.append({"kind": str(item.get("kind") or item.get("type") or "file")[:32]})
    return out


def scrub_nlu(nlu: Any, why: str) -> dict[str, Any]:
    kept = {k: v for k, v in (nlu or {}).items() if k in KEEP_NLU} if isinstance(nlu, dict) else {}
    kept[MARK] = why
    return kept


def upload_paths(attachments: Any, uploads: Path | None) -> list[Path]:
    """The operator uploads (files directly in `uploads`) that `attachments` point to."""
    if uploads is None:
        return []
    found = []
    for item in attachments or []:
        ref = item.get("ref") if isinstance(item, dict) else None
        if isinstance(ref, str) and ref and not ref.startswith(("http://", "https://")):
            path = Path(ref)
            if path.is_absolute() and path.parent == uploads:
                found.append(path)
    return found


def upload_names(attachments: Any) -> set[str]:
    """The names of the stored operator uploads (`uploads` rows) `attachments` point to."""
    found = set()
    for item in attachments or []:
        ref = item.get("ref") if isinstance(item, dict) else None
        if isinstance(ref, str) and ref and not ref.startswith(("http://", "https://")):
            name = Path(ref).name
            if UPLOAD_NAME.match(name):
                found.add(name)
    return found


@dataclass(slots=True)
class Scrubbed:
    """What one or more `scrub_messages` calls changed."""

    messages: int = 0
    outbox: int = 0
    outbox_cancelled: int = 0
    processed_updates: int = 0
    nlu_reviews: int = 0
    files: list[Path] = field(default_factory=list)
    upload_rows: set[str] = field(default_factory=set)  # `uploads` rows deleted

    def add(self, other: Scrubbed) -> None:
        self.messages += other.messages
        self.outbox += other.outbox
        self.outbox_cancelled += other.outbox_cancelled
        self.processed_updates += other.processed_updates
        self.nlu_reviews += other.nlu_reviews
        self.files += other.files
        self.upload_rows |= other.upload_rows


async def scrub_messages(
    session: AsyncSession, ids: Sequence[int], *, why: str, uploads: Path | None
) -> Scrubbed:
    """Anonymise messages `ids` (a batch: at most a few hundred) in the caller's transaction.
    Upload rows go in this transaction; the upload files found are returned in `files`, not
    deleted: `delete_uploads` does that."""
    done = Scrubbed()
    for start in range(0, len(ids), CHUNK):
        done.add(await _scrub_chunk(session, list(ids[start : start + CHUNK]), why, uploads))
    return done


async def _scrub_chunk(
    session: AsyncSession, ids: list[int], why: str, uploads: Path | None
) -> Scrubbed:
    done = Scrubbed()
    if not ids:
        return done
    m, c = Message, Conversation
    rows = (
        await session.execute(
            select(
                m.id,
                m.text,
                m.payload,
                m.attachments,
                m.nlu,
                m.platform_update_id,
                func.coalesce(m.channel, c.channel),
            )
            .join(c, c.id == m.conversation_id)
            .where(m.id.in_(ids))
        )
    ).all()
    updates = []
    updates_by_channel: dict[str, list[str]] = defaultdict(list)
    names: set[str] = set()
    for msg_id, text, payload, attachments, nlu, update_id, channel in rows:
        done.files += upload_paths(attachments, uploads)
        names |= upload_names(attachments)
        if update_id:
            updates_by_channel[str(channel)].append(str(update_id))
        updates.append(
            {
                "id": msg_id,
                "text": scrub_text(text),
                "payload": scrub_payload(payload),
                "attachments": scrub_attachments(attachments),
                "buttons": [],
                "nlu": scrub_nlu(nlu, why),
                "platform_update_id": None,
                "platform_message_id": None,
            }
        )
    if updates:
        await session.execute(update(Message), updates)  # executemany by primary key
        done.messages = len(updates)
    if names:
        rows_gone = await session.scalars(
            delete(Upload).where(Upload.name.in_(sorted(names))).returning(Upload.name)
        )
        done.upload_rows = set(rows_gone.all())
    for channel, update_ids in updates_by_channel.items():
        gone = await session.execute(
            delete(ProcessedUpdate).where(
                ProcessedUpdate.channel == channel, ProcessedUpdate.update_id.in_(update_ids)
            )
        )
        done.processed_updates += _count(gone)
    reviews = await session.execute(
        update(NluReview).where(NluReview.message_id.in_(ids), NluReview.text != "").values(text="")
    )
    done.nlu_reviews = _count(reviews)
    cleared = await scrub_outbox(session, OutboxItem.message_id.in_(ids), reason=why)
    done.outbox, done.outbox_cancelled = cleared
    return done


async def scrub_outbox(session: AsyncSession, where: Any, *, reason: str) -> tuple[int, int]:
    """Empty the body (and the chat id) of the outbox rows `where` selects; a row not sent yet
    is marked failed first, so no worker sends it. Returns (rows emptied, of them cancelled)."""
    o = OutboxItem
    has_content = or_(has_json(o.body), o.chat_id != "")
    cancelled = await session.execute(
        update(o)
        .where(where, o.status.in_(UNSENT))
        .values(
            status=OutboxStatus.FAILED,
            last_error=f"{reason}: personal data removed before sending",
            lease_until=None,
            body={},
            chat_id="",
        )
    )
    emptied = await session.execute(update(o).where(where, has_content).values(body={}, chat_id=""))
    n_cancelled = _count(cancelled)
    return n_cancelled + _count(emptied), n_cancelled


async def delete_uploads(scrubbed: Scrubbed) -> int:
    """Delete the upload files `scrubbed` found (its rows went in its transaction); returns
    how many uploads went, each counted once."""
    unique = sorted(set(scrubbed.files))

    def unlink() -> set[str]:
        gone = set()
        for path in unique:
            try:
                path.unlink()
                gone.add(path.name)
            except FileNotFoundError:
                pass
        return gone

    files = await asyncio.to_thread(unlink) if unique else set()
    return len(files | scrubbed.upload_rows)


def _count(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
