"""Retention: personal data is kept no longer than needed (152-ФЗ, art. 5).

Per kind of data, an age after which it goes (`Policy`; None = kept forever):
- `messages`: messages older than this are anonymised like an erasure (services/privacy/
  scrub.py: texts, payloads, attachments, NLU text and entities, outbox bodies, uploads they
  reference), and conversations idle that long lose their slots, rating comment and transfer
  notes. Rows are kept, not deleted: the analytics (containment, fallback rate, SLA, CSAT) of
  past periods are counted from them and must not change when their texts go;
- `processed_updates`: the platform update ids kept to drop redeliveries are deleted (the
  platforms redeliver within hours: Telegram keeps an update 24 h);
- `outbox`: finished rows (sent, failed, unreachable) are deleted; pending ones never are;
- `uploads`: operator uploads stored longer than this are deleted (their `uploads` rows; files
  older versions left in the uploads directory, by their modification time).

`run_retention` does one pass in small batches, each its own short transaction (at most
`batch` rows), yielding to the event loop between them. Safe with several app processes: on
PostgreSQL each batch first takes a transaction-level advisory lock and a process that can't
get it stops its pass (another one is doing the work); every step is idempotent anyway.

Messages are anonymised oldest first, and the newest one retention anonymised tells the next
pass where to start (`nlu.anonymised = "retention"`), so a pass reads only the messages that
aged since the last one, not the whole history (`full=True` scans everything, e.g. after
messages were imported with old times).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.privacy.scrub import (
    RETENTION,
    Scrubbed,
    delete_uploads,
    has_json,
    marker,
    scrub_messages,
)
from storage.db import Database
from storage.models import (
    Conversation,
    ConversationEvent,
    Message,
    OutboxItem,
    OutboxStatus,
    ProcessedUpdate,
    Upload,
    utcnow,
)

log = logging.getLogger(__name__)

BATCH = 500
LOCK_KEY = 0x5B_7E7E_0001  # pg advisory lock: "supportbot retention"
FINISHED = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.UNREACHABLE)
ACTION = "retention"


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each kind of data is kept (None: forever). Defaults: README, Retention."""

    messages: timedelta | None = timedelta(days=365)
    processed_updates: timedelta | None = timedelta(days=30)
    outbox: timedelta | None = timedelta(days=30)
    uploads: timedelta | None = timedelta(days=365)


@dataclass(slots=True)
class Pass:
    """What one pass did. `busy`: another process held the lock, this one stopped early."""

    messages: int = 0
    conversations: int = 0
    processed_updates: int = 0
    outbox: int = 0
    uploads: int = 0
    busy: bool = False

    @property
    def changed(self) -> int:
        return (
            self.messages + self.conversations + self.processed_updates + self.outbox + self.uploads
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Busy(Exception):
    pass


async def run_retention(
    db: Database,
    policy: Policy,
    uploads: Path | None,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    full: bool = False,
    actor: str = "system",
) -> Pass:
    """One retention pass (see the module docstring). `uploads`: the operator uploads
    directory, resolved (None: files are left alone). Records an audit entry when it changed
    anything."""
    now = now or utcnow()
    done = Pass()
    cutoffs: dict[str, Any] = {}
    try:
        if policy.messages is not None:
            cutoffs["messages_before"] = cut = now - policy.messages
            await _messages(db, cut, uploads, batch, full, done)
            await _conversations(db, cut, batch, done)
        if policy.processed_updates is not None:
            cutoffs["processed_updates_before"] = cut = now - policy.processed_updates
            await _processed_updates(db, cut, batch, done)
        if policy.outbox is not None:
            cutoffs["outbox_before"] = cut = now - policy.outbox
            await _outbox(db, cut, batch, done)
        if policy.uploads is not None:
            cutoffs["uploads_before"] = cut = now - policy.uploads
            await _upload_rows(db, cut, batch, done)
            done.uploads += await _old_uploads(uploads, cut)
    except _Busy:
        done.busy = True
        log.info("retention: another process is running it; this one stops here")
    if done.changed:
        async with db.transaction() as session:
            details = {**done.to_json(), **{k: v.isoformat() for k, v in cutoffs.items()}}
            audit.record(session, ACTION, actor=actor, details=details)
        log.info("retention: %s", ", ".join(f"{k} {v}" for k, v in done.to_json().items() if v))
    return done


async def retention_loop(
    db: Database,
    policy: Policy,
    uploads: Path | None,
    *,
    every: timedelta,
    first_after: float = 60.0,
) -> None:
    """`run_retention` every `every`, forever (the app spawns it; cancelled at stop). A failed
    pass is logged and tried again next time. The first waits `first_after` seconds plus a
    random minute, so processes started together don't all start at once."""
    await asyncio.sleep(first_after + random.uniform(0, 60))
    while True:
        try:
            await run_retention(db, policy, uploads)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention pass failed; trying again in %s", every)
        await asyncio.sleep(every.total_seconds())


async def _lock(session: AsyncSession) -> None:
    """PostgreSQL: this batch's transaction takes the advisory lock, or _Busy."""
    if session.get_bind().dialect.name != "postgresql":
        return
    got = await session.scalar(select(text(f"pg_try_advisory_xact_lock({LOCK_KEY})")))
    if not got:
        raise _Busy


def _not_retained() -> Any:
    return or_(marker().is_(None), marker() != RETENTION)


async def _messages(
    db: Database, cutoff: datetime, uploads: Path | None, batch: int, full: bool, done: Pass
) -> None:
    m = Message
    since: datetime | None = None
    if not full:
        async with db.session() as session:
            since = await session.scalar(
                select(m.created_at)
                .where(m.created_at < cutoff, marker() == RETENTION)
                .order_by(m.created_at.desc())
                .limit(1)
            )
    while True:
        async with db.transaction() as session:
            await _lock(session)
            query = select(m.id, m.created_at).where(m.created_at < cutoff, _not_retained())
            if since is not None:
                query = query.where(m.created_at >= since)
            rows = (await session.execute(query.order_by(m.created_at, m.id).limit(batch))).all()
            if not rows:
                return
            scrubbed: Scrubbed = await scrub_messages(
                session, [r[0] for r in rows], why=RETENTION, uploads=uploads
            )
            files = await delete_uploads(scrubbed)
        done.messages += scrubbed.messages
        done.processed_updates += scrubbed.processed_updates
        done.uploads += files
        since = rows[-1][1]
        if len(rows) < batch:
            return
        await asyncio.sleep(0)


async def _conversations(db: Database, cutoff: datetime, batch: int, done: Pass) -> None:
    """Conversations idle since before `cutoff` with slots, a rating comment or notes left."""
    c, e = Conversation, ConversationEvent
    has_note = (
        select(e.id)
        .where(e.conversation_id == c.id, e.data["note"].as_string().is_not(None))
        .exists()
    )
    last = 0
    while True:
        async with db.transaction() as session:
            await _lock(session)
            ids = list(
                (
                    await session.scalars(
                        select(c.id)
                        .where(
                            c.id > last,
                            c.updated_at < cutoff,
                            or_(has_json(c.slots), c.csat_comment.is_not(None), has_note),
                        )
                        .order_by(c.id)
                        .limit(batch)
                    )
                ).all()
            )
            if not ids:
                return
            await session.execute(
                update(c)
                .where(c.id.in_(ids))
                .values(slots={}, csat_comment=None, updated_at=c.updated_at)
                .execution_options(synchronize_session=False)
            )
            notes = (
                await session.execute(
                    select(e.id, e.data).where(
                        e.conversation_id.in_(ids), e.data["note"].as_string().is_not(None)
                    )
                )
            ).all()
            if notes:
                await session.execute(
                    update(e),
                    [
                        {"id": i, "data": {k: v for k, v in (d or {}).items() if k != "note"}}
                        for i, d in notes
                    ],
                )
        done.conversations += len(ids)
        last = ids[-1]
        if len(ids) < batch:
            return
        await asyncio.sleep(0)


async def _processed_updates(db: Database, cutoff: datetime, batch: int, done: Pass) -> None:
    p = ProcessedUpdate
    while True:
        async with db.transaction() as session:
            await _lock(session)
            old = select(p.channel, p.update_id).where(p.processed_at < cutoff).limit(batch)
            gone = await session.execute(
                delete(p)
                .where(tuple_(p.channel, p.update_id).in_(old))
                .execution_options(synchronize_session=False)
            )
        n = max(int(getattr(gone, "rowcount", 0) or 0), 0)
        done.processed_updates += n
        if n < batch:
            return
        await asyncio.sleep(0)


async def _delete_in_batches(db: Database, key: Any, where: Any, batch: int) -> int:
    """Delete the rows of `key`'s table matching `where`, `batch` keys per transaction (each
    under the retention lock); how many went."""
    gone = 0
    while True:
        async with db.transaction() as session:
            await _lock(session)
            keys = list(
                (await session.scalars(select(key).where(where).order_by(key).limit(batch))).all()
            )
            if keys:
                await session.execute(
                    delete(key.class_)
                    .where(key.in_(keys))
                    .execution_options(synchronize_session=False)
                )
        gone += len(keys)
        if len(keys) < batch:
            return gone
        await asyncio.sleep(0)


async def _outbox(db: Database, cutoff: datetime, batch: int, done: Pass) -> None:
    """Delete finished outbox rows created before `cutoff`."""
    o = OutboxItem
    where = o.status.in_(FINISHED) & (o.created_at < cutoff)
    done.outbox += await _delete_in_batches(db, o.id, where, batch)


async def _upload_rows(db: Database, cutoff: datetime, batch: int, done: Pass) -> None:
    """Delete the stored uploads created before `cutoff`."""
    done.uploads += await _delete_in_batches(db, Upload.name, Upload.created_at < cutoff, batch)


async def _old_uploads(directory: Path | None, cutoff: datetime) -> int:
    """Delete the files in the uploads directory last modified before `cutoff`."""
    if directory is None:
        return 0
    limit = cutoff.timestamp()

    def sweep() -> int:
        gone = 0
        try:
            entries = list(directory.iterdir())
        except FileNotFoundError:
            return 0
        for path in entries:
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime < limit:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        return gone

    return await asyncio.to_thread(sweep)
