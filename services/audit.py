"""The audit log: who did what to whose data (152-ФЗ, secrecy of communications).

Append-only (`audit_log`): `record` adds an entry in the caller's transaction, so an action and
its audit entry commit or vanish together. Actors: `operator` (in the console or the Telegram
group), `bot` (acting on a subscriber's behalf: verified them, blocked their number, changed
their tariff), `system`, `cli`. Entries name ids, never message texts, so they survive erasure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, utcnow

ACTORS = ("operator", "bot", "system", "cli")


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
