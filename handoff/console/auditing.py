"""What the console itself writes to the audit log (`services.audit`): logins and failed logins
(the login name and IP, never the password), logouts, and operators opening a chat.

`chat_opened` is written once per operator and chat per `CHAT_OPENED_EVERY` (10 minutes): the
page and its script re-read the chat on every live event, and a log line per re-read would
bury everything else. The first view of a chat in a 10-minute window is recorded (page or API,
`details.via`), with what the role saw in full (`details.unmasked`, see
`handoff.console.privacy`). A process remembers its recent entries, and before writing one
checks the log, so several app processes write one entry per window too.

Desk actions (take, reply without its text, transfer, return to the bot, close) are recorded by
`handoff.desk`, account management by `handoff.auth`, so the CLI and the Telegram operator group
are covered as well.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.console.privacy import policy_for
from handoff.console.security import Me, client_ip
from handoff.console.state import Console
from services import audit
from storage.models import AuditEntry, Operator, utcnow

log = logging.getLogger(__name__)
CHAT_OPENED_EVERY = 600.0  # seconds
_MEMO_LIMIT = 20_000
KNOWN_ADDRESS_DAYS = 90  # an address a login used this recently is never held back for it


async def chat_opened(
    state: Console, request: web.Request, who: Me, data: dict[str, Any], *, via: str
) -> bool:
    """Record that `who` was shown the chat `data` (a `chat_view`), unless they already were in
    the last `CHAT_OPENED_EVERY` seconds; True if an entry was written."""
    conv = data["conversation"]
    key = (who.id, int(conv["id"]))
    now = time.monotonic()
    seen = state.opened.get(key)
    if seen is not None and now - seen < CHAT_OPENED_EVERY:
        return False
    if len(state.opened) > _MEMO_LIMIT:  # forget old keys so the dict can't grow forever
        for old in [k for k, at in state.opened.items() if now - at >= CHAT_OPENED_EVERY]:
            del state.opened[old]
    async with state.db.transaction() as session:
        since = utcnow() - timedelta(seconds=CHAT_OPENED_EVERY)
        recent = await session.scalar(
            select(AuditEntry.id)
            .where(
                AuditEntry.at > since,
                AuditEntry.action == "chat_opened",
                AuditEntry.operator_id == who.id,
                AuditEntry.conversation_id == key[1],
            )
            .limit(1)
        )
        if recent is None:
            audit.record(
                session,
                "chat_opened",
                actor="operator",
                operator_id=who.id,
                subscriber_id=conv.get("subscriber_id"),
                conversation_id=key[1],
                ip=client_ip(request),
                details={"via": via, "role": who.role, "unmasked": policy_for(who.role).unmasked},
            )
    state.opened[key] = now
    return recent is None


def logged_in(session: AsyncSession, request: web.Request, op: Operator, state: Console) -> None:
    """In the transaction that creates the session."""
    known = state.known.get(op.login)
    if known is not None:
        known[1].add(client_ip(request))
    audit.record(
        session,
        "login",
        actor="operator",
        operator_id=op.id,
        ip=client_ip(request),
        details={"login": op.login},
    )


async def login_failed(
    state: Console, request: web.Request, login_name: str, reason: str, *, limited: bool = False
) -> None:
    """A refused login, in its own transaction (the attempt's was rolled back). `operator_id`
    names the account the login names, if there is one; `reason`: wrong_password (or an unknown
    login: then no operator_id) or disabled. `limited`: this failure reached the rate limit; the
    attempts refused unchecked until the window passes are not written (a flood of them would
    be a flood of rows), the limit's start is."""
    details: dict[str, Any] = {"login": login_name, "reason": reason}
    if limited:
        details["rate_limited"] = True
    async with state.db.transaction() as session:
        op_id = await session.scalar(select(Operator.id).where(Operator.login == login_name))
        audit.record(
            session,
            "login_failed",
            actor="operator",
            operator_id=op_id,
            ip=client_ip(request),
            details=details,
        )


async def known_addresses(state: Console, login_name: str) -> set[str]:
    """The addresses this login logged in from within `KNOWN_ADDRESS_DAYS` (the audit log's
    `login` entries, so every app process and a restart agree). Read once per login per
    `handoff.login_window` (only while that login is under a distributed guess), then kept."""
    now = time.monotonic()
    cached = state.known.get(login_name)
    if cached is not None and now - cached[0] < state.limiter.window:
        return cached[1]
    since = utcnow() - timedelta(days=KNOWN_ADDRESS_DAYS)
    async with state.db.session() as session:
        operator = select(Operator.id).where(Operator.login == login_name).scalar_subquery()
        rows = await session.scalars(
            select(AuditEntry.ip)
            .where(
                AuditEntry.action == "login",
                AuditEntry.at > since,
                AuditEntry.operator_id == operator,
            )
            .distinct()
        )
        found = {ip for ip in rows if ip}
    if len(state.known) > _MEMO_LIMIT:
        state.known.clear()
    state.known[login_name] = (now, found)
    return found


def logged_out(session: AsyncSession, request: web.Request, who: Me) -> None:
    audit.record(
        session,
        "logout",
        actor="operator",
        operator_id=who.id,
        ip=client_ip(request),
        details={"login": who.login},
    )
