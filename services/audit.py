"""The audit log: who did what to whose data (152-ФЗ, secrecy of communications).

Append-only (`audit_log`): `record` adds an entry in the caller's transaction, so an action and
its audit entry commit or vanish together. The app never changes or deletes an entry: changing or
deleting a loaded `AuditEntry` through the ORM raises `AppendOnly` (a retention job removing old
entries by age would do it with one explicit DELETE statement, not through loaded objects). Actors: `operator` (in the console or the Telegram
group), `bot` (acting on a subscriber's behalf: verified them, blocked their number, changed
their tariff), `system`, `cli`. Entries name ids, never message texts, so they survive erasure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, utcnow

ACTORS = ("operator", "bot", "system", "cli")


class AppendOnly(RuntimeError):
    """An attempt to change or delete an audit entry."""


def _refuse(_mapper: Any, _connection: Any, entry: AuditEntry) -> None:
    raise AppendOnly(f"audit entry {entry.id} can't be changed or deleted: the log is append-only")


event.listen(AuditEntry, "before_update", _refuse)
event.listen(AuditEntry, "before_delete", _refuse)


def record(
    session: AsyncSession,
    action: str,
    *,
    actor: str,
    operator_id: int | None = None,
    subscriber_id: int | None = None,
    conversation_id: int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add one entry (flushed with the transaction)."""
    if actor not in ACTORS:
        raise ValueError(f"audit actor must be one of {', '.join(ACTORS)}, not {actor!r}")
    entry = AuditEntry(
        at=utcnow(),
        actor=actor,
        operator_id=operator_id,
        action=action[:48],
        subscriber_id=subscriber_id,
        conversation_id=conversation_id,
        details=details or {},
        ip=ip,
    )
    session.add(entry)
    return entry
