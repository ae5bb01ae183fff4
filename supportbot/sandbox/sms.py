"""The demo's SMS for the sandbox: what the demo backend's SMS gateway "sent" (table demo_sms),
newest first, as plain JSON rows {"phone", "text", "at"} (`at` in ISO 8601, UTC)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import DemoSms

SMS_LIMIT = 200  # the most GET /sandbox/sms answers with
SMS_SHOWN = 20  # how many the page's SMS panel lists


async def newest_sms(
    db: Database, *, phone: str | None = None, limit: int = SMS_LIMIT
) -> list[dict[str, Any]]:
    """The newest `limit` SMS (to `phone`, a normalised +7... number, if given)."""
    query = select(DemoSms).order_by(DemoSms.at.desc(), DemoSms.id.desc()).limit(limit)
    if phone is not None:
        query = query.where(DemoSms.phone == phone)
    async with db.session() as session:
        rows = (await session.scalars(query)).all()
    return [{"phone": r.phone, "text": r.text, "at": r.at.isoformat()} for r in rows]
